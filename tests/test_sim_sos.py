"""The noise filter's second-order sections in C (``csrc/host/hge_sim_sos.h``, ``noise._sos_c``):
scipy.signal.sosfilt's output and final state bit for bit, in place; NoiseSource.take the same samples as through scipy, for a run
split into any calls; the C under ASan/UBSan (tests/c/sim_sos_check.c)."""
import sys
from pathlib import Path

import numpy as np
import scipy.signal as sig
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded.devices import noise as nz
from hge_embedded.devices.simulated import SimulatedDNPU

sys.path.insert(0, str(Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402


@settings(max_examples=80)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 600), sections=st.integers(1, 9))
def test_sos_c_equals_scipys_sosfilt(seed, n, sections):
    rng = np.random.default_rng(seed)
    sos = sig.butter(2 * sections, rng.uniform(0.01, 0.4), output="sos")
    x, zi = rng.standard_normal(n), rng.standard_normal((sos.shape[0], 2))
    y1, z1 = sig.sosfilt(sos, x, zi=zi)
    x2, z2 = x.copy(), zi.copy()
    y2 = nz._sos_c(sos, x2, z2)
    assert y2 is x2   # in place
    assert np.array_equal(y1, y2) and np.array_equal(z1, z2)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), beta=st.floats(0.0, 2.0), corner=st.sampled_from([1e-3, 0.01, 1.0]))
def test_sos_c_on_the_pinking_filter(seed, beta, corner):
    sos = nz.pinking_sos(nz.NoiseModel(beta=beta, f_corner=corner), 1e4)
    rng = np.random.default_rng(seed)
    x, zi = rng.standard_normal(1000), rng.standard_normal((sos.shape[0], 2))
    y1, z1 = sig.sosfilt(sos, x, zi=zi)
    z2 = zi.copy()
    y2 = nz._sos_c(sos, x.copy(), z2)
    assert np.array_equal(y1, y2) and np.array_equal(z1, z2)


def test_take_equals_the_scipy_path_for_any_split():
    """Two sources made alike: one through take (C), one by hand through scipy.signal.sosfilt; calls of
    different lengths on each side give one and the same run."""
    a = nz.NoiseSource(nz.NoiseModel(white=1e-6), 1e4, np.random.default_rng(3))
    b = nz.NoiseSource(nz.NoiseModel(white=1e-6), 1e4, np.random.default_rng(3))
    got = np.concatenate([a.take(k) for k in (1, 999, 1000, 37, 2963)])
    zi, parts = b._zi.copy(), []
    for k in (5000,):
        y, zi = sig.sosfilt(b.sos, b.rng.standard_normal(k), zi=zi)
        parts.append(y + b.white_sd * b.rng_white.standard_normal(k))
    assert np.array_equal(got, np.concatenate(parts))
    assert np.array_equal(a._zi, zi)


def test_set_state_takes_its_own_copy_of_zi():
    """take() updates the state in place: a state given as an array stays the caller's."""
    a = nz.NoiseSource(nz.NoiseModel(), 1e4, np.random.default_rng(1))
    st_ = a.get_state()
    zi = np.array(st_["zi"])
    st_["zi"] = zi
    a.set_state(st_)
    before = zi.copy()
    a.take(100)
    assert np.array_equal(zi, before)


def test_simulator_noise_resumes_bit_for_bit():
    """A device's state saved and restored mid-run: the same measurements after it."""
    d = SimulatedDNPU(seed=4)
    v = np.zeros((7, 500))
    d.measure(v)
    st_ = d.get_state()
    first = d.measure(v)
    d.set_state(st_)
    assert np.array_equal(d.measure(v), first)


def test_sim_sos_under_sanitizers(tmp_path):
    out = run_sanitized(tmp_path, "sim_sos_check", ["csrc/host/hge_sim_sos.c", "tests/c/sim_sos_check.c"],
                        extra_flags=["-Itests/c"])
    assert out.startswith("PASS sim sos")
