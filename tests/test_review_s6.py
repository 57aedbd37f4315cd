"""Review of session 6 (the trainer's trust checks and the block exponent for dE/dI): regression tests."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import tasks
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.reproduce.common import paper_train_kwargs
from hge_embedded.train import Trainer, task_seed


_TRAINERS = {}


def _paper_nor_trainer(max_step):
    """One trainer per max_step (built once: it calibrates the chain); updated_codes does not change it."""
    if max_step in _TRAINERS:
        return _TRAINERS[max_step]
    task = tasks.gate("nor")
    kw = {**paper_train_kwargs(task), "max_step": max_step}
    tr = Trainer(SimulatedDNPU(seed=0), task, seed=task_seed(0, 8, 16), **kw)
    tr.codes = np.array([(lo + hi) // 2 for lo, hi in zip(tr.w_min, tr.w_max)], np.int64)
    _TRAINERS[max_step] = tr
    return tr


@given(st.floats(12.0, 18.0), st.lists(st.floats(-200.0, 200.0), min_size=5, max_size=5))
def test_max_step_keeps_the_direction_when_dE_dV_exceeds_q32(e, G1):
    """--paper-mode --max-step: dE/dI ~1e17 (the paper's loss at a separation of -40 nA) makes dE/dV
    pass 2^31 /V, beyond int64 in Q32. The step must still be the float step scaled down to max_step
    (its direction kept, as --max-step promises), not every large component saturated to one value
    (which turned it into a sign step: [65 65 -65 65 -65] codes for a gradient of [100 50 -10 1 -0.5])."""
    tr = _paper_nor_trainer(0.02)
    dE = np.array([10.0**e, 0.0, 0.0, 0.0])
    G = np.zeros((4, 5))
    G[0] = G1
    s = dE @ G                                        # dE/dV, 1/V (dI/dV rounds to 2^-8: relative 2^-9 / |G|)
    if np.max(np.abs(s)) == 0.0:
        return
    step = tr.codes - tr.updated_codes(dE, G)
    want = s / np.max(np.abs(s)) * tr.max_step_codes   # the float step scaled to max_step, codes
    # Rounding: dI/dV to 2^-9 absolute per component moves the direction by at most 2^-9 / max|G1|
    # relative to the largest component (the block exponent's dE/dI rounding is 2^-31 relative), the
    # scaling's floor division by one code and the rule's rounding by half a code: <= 1.5 codes +
    # max_step_codes * 2 * 2^-9 / max|G1| (the ratio of two rounded quantities).
    bound = 1.5 + tr.max_step_codes * 2 * 2.0**-9 / np.max(np.abs(G1)) + 1e-9
    assert np.all(np.abs(step - want) <= bound), (step, want)
