"""Sine table and NCO: the C table is the generator's, C == model, and the error bound holds."""
import pathlib
import subprocess
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import core
from hge_embedded._hge_core import ffi, lib
from hge_embedded.reference import fixed

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_c_table_is_generated_from_model():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_sine_table.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert np.array_equal(core.sine_table(), fixed.sine_table())


def test_table_fits_2kib():
    # The size of the object the C side defines (the cdef declares it as
    # hge_sine_table[...], so cffi takes the length from the compiled C), not a
    # formula. The firmware's own symbol size (arm-none-eabi-nm -S) is checked in
    # tests/test_firmware.py.
    size = ffi.sizeof(lib.hge_sine_table)
    assert size <= 2048
    assert size == core.sine_table().nbytes  # every entry is readable, none beyond


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=200))
def test_sin_c_equals_model(phases):
    assert np.array_equal(core.sin_q22(phases), fixed.sin_q22(phases))


def test_sin_error_within_derived_bound():
    # Every quadrant boundary, every table node and random phases in between.
    rng = np.random.default_rng(0)
    nodes = np.arange(4 * 256, dtype=np.uint64) << np.uint64(22)
    ph = np.concatenate([nodes, nodes + np.uint64(1), nodes - np.uint64(1) & np.uint64(2**32 - 1),
                         rng.integers(0, 2**32, 400_000, dtype=np.uint64)])
    err = fixed.sin_q22(ph) - fixed.SINE_AMPLITUDE * np.sin(2 * np.pi * ph.astype(float) / 2**32)
    assert np.max(np.abs(err)) <= fixed.REF_ERROR_BOUND * fixed.SINE_AMPLITUDE
    # The bound is not loose by orders of magnitude: interpolation error is real.
    assert np.max(np.abs(err)) > 0.5 * fixed.REF_ERROR_BOUND * fixed.SINE_AMPLITUDE


def test_quadrature_is_quarter_turn():
    ph = np.arange(0, 2**32, 2**20, dtype=np.uint64)
    s = fixed.sin_q22(ph + np.uint64(2**30))
    c = fixed.SINE_AMPLITUDE * np.cos(2 * np.pi * ph / 2**32)
    assert np.max(np.abs(s - c)) <= fixed.REF_ERROR_BOUND * fixed.SINE_AMPLITUDE


def test_nco_init_status():
    nco = ffi.new("hge_nco_t *")
    assert lib.hge_nco_init(nco, 1000, 7) == lib.HGE_OK and nco.phase == 7 and nco.step == 1000
    assert lib.hge_nco_init(ffi.NULL, 1000, 0) == lib.HGE_ERR_NULL
    assert lib.hge_nco_init(nco, 0, 0) == lib.HGE_ERR_FREQ
    assert lib.hge_nco_init(nco, 2**31, 0) == lib.HGE_ERR_FREQ
    assert lib.hge_nco_init(nco, 2**31 - 1, 0) == lib.HGE_OK
