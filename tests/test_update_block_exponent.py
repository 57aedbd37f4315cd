"""The trainer's fixed-point step when dE/dI does not fit Q24 (the paper's loss without a scale).

Before: ``hge train --task all-gates --paper-mode --seed 0`` ended with ``OverflowError: dE/dI does
not fit its fixed-point format (max 1.1e17)`` at NOR: ``(1 - rho) e^(-y_sep / 1 nA)`` at a separation
of about -40 nA. Now dE/dI carries a block exponent (``train.dEdI_codes``) and the step is the
paper's float step clamped to the control range, within the rounding bound derived below."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import tasks
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.reproduce.common import paper_train_kwargs
from hge_embedded.train import DEDI_FRAC, DIDV_FRAC, Trainer, dEdI_codes, shift_left_sat64, task_seed, train_task

magnitudes = st.floats(-300.0, 300.0)   # log10 of |dE/dI|: from far below one code to near float's limit


@given(st.lists(st.tuples(magnitudes, st.booleans()), min_size=1, max_size=12))
def test_dEdI_codes_fit_int32_with_the_smallest_exponent(xs):
    dE = np.array([(-1.0 if neg else 1.0) * 10.0**e for e, neg in xs])
    codes, k = dEdI_codes(dE)
    assert codes.dtype == np.int64 and np.all(np.abs(codes) < 2**31)
    assert k >= 0
    # Round to nearest: each code is within half a unit of 2^(k - DEDI_FRAC) of dE/dI.
    assert np.all(np.abs(codes * 2.0**(k - DEDI_FRAC) - dE) <= 2.0**(k - DEDI_FRAC - 1) * (1 + 1e-12))
    if k > 0:   # one exponent less would not fit
        assert np.max(np.abs(np.round(dE * 2.0**(DEDI_FRAC - k + 1)))) >= 2**31


def test_dEdI_codes_keep_q24_where_it_fits():
    dE = np.array([127.99, -3.5, 1e-9, 0.0])
    codes, k = dEdI_codes(dE)
    assert k == 0 and np.array_equal(codes, np.round(dE * 2.0**DEDI_FRAC).astype(np.int64))


@given(st.lists(st.integers(-2**63 + 1, 2**63 - 1), min_size=1, max_size=8), st.integers(0, 70))
def test_shift_left_saturates_like_python_integers(g, k):
    hi = 2**63 - 1
    want = [max(-hi, min(hi, x << k)) for x in g]
    assert shift_left_sat64(np.array(g, np.int64), k).tolist() == want


def _nor_trainer():
    task = tasks.gate("nor")
    return Trainer(SimulatedDNPU(seed=0), task, seed=task_seed(0, 8, 16), **paper_train_kwargs(task))


@given(st.lists(st.floats(-18.0, 18.0), min_size=4, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4),
       st.lists(st.floats(-60.0, 60.0), min_size=20, max_size=20))
def test_the_step_is_the_float_step_clamped_within_its_rounding(exps, negs, G):
    tr = _nor_trainer()
    tr.codes = np.array([(lo + hi) // 2 for lo, hi in zip(tr.w_min, tr.w_max)], np.int64)
    dE = np.array([(-1.0 if n else 1.0) * 10.0**e for e, n in zip(exps, negs)])
    G = np.array(G).reshape(4, 5)
    new = tr.updated_codes(dE, G)
    ratio = tr.lr / tr.lsb                      # codes per unit of dE/dV
    s = ratio * (dE @ G)                        # the paper's float step, codes
    _, k = dEdI_codes(dE)
    # |g 2^(k-32) - dE.G| per electrode <= sum_k 2^(k-25)|G| + 2^-(DIDV_FRAC+1)|dE| + 2^(k-25) 2^-(DIDV_FRAC+1)
    # (dE/dI rounded to 2^(k-24), dI/dV to 2^-8, and their product). The rule multiplies by
    # eta 2^-shift = ratio 2^-32 (1 + r), |r| <= 1/eta (eta is ratio 2^(shift-32) rounded, >= 1),
    # then rounds half up (0.5 code). Clamping both to the control range is 1-Lipschitz.
    h_e, h_g = 2.0**(k - DEDI_FRAC - 1), 2.0**-(DIDV_FRAC + 1)
    B = (h_e * np.abs(G) + h_g * np.abs(dE)[:, None] + h_e * h_g).sum(axis=0)
    bound = ratio * B * (1 + 1 / tr.eta) + np.abs(s) / tr.eta + 0.5
    want = np.clip(tr.codes - s, tr.w_min, tr.w_max)
    assert np.all(np.abs(new - want) <= bound + 1e-9 * np.abs(want)), (new, want, bound)
    assert np.all((new >= tr.w_min) & (new <= tr.w_max))


def test_paper_mode_nor_trains_where_it_overflowed(monkeypatch):
    """The gate where all-gates --paper-mode --seed 0 stopped: its first steps now run (their dE/dI
    needs the block exponent) and the controls stay inside the control range."""
    task = tasks.gate("nor")
    seen = []
    orig = dEdI_codes

    def spy(dE):
        out = orig(dE)
        seen.append(out[1])
        return out
    monkeypatch.setattr("hge_embedded.train.dEdI_codes", spy)
    r, tr = train_task(SimulatedDNPU(seed=0), task, seed=task_seed(0, 8, 16), max_iter=3, **paper_train_kwargs(task))
    assert max(seen) > 0   # premise: the overflow case is reached (k = 0 everywhere would not test it)
    assert len(r.losses) == 3 and np.all(np.isfinite(r.losses))
    assert np.all((tr.codes >= tr.w_min) & (tr.codes <= tr.w_max))
