"""Thin binding of the C lock-in core (``csrc/``): numpy arrays in, numpy arrays out.

No per-sample Python work: each call hands whole buffers to C. Arguments are
validated here, once, so the C status codes only fire for direct ``lib`` use;
``check_status`` still turns any non-zero status into an ``HGEStatusError``.
"""
from __future__ import annotations

import numpy as np

from . import _validate as v
from ._hge_core import ffi, lib

STATUS_NAMES = {
    lib.HGE_OK: "HGE_OK",
    lib.HGE_ERR_NULL: "HGE_ERR_NULL",
    lib.HGE_ERR_SIZE: "HGE_ERR_SIZE",
    lib.HGE_ERR_FREQ: "HGE_ERR_FREQ",
    lib.HGE_ERR_TERMINALS: "HGE_ERR_TERMINALS",
    lib.HGE_ERR_RANGE: "HGE_ERR_RANGE",
    lib.HGE_ERR_COEF: "HGE_ERR_COEF",
}
MAX_TERMINALS = lib.HGE_MAX_TERMINALS
BOXCAR_MAX_SAMPLES = lib.HGE_BOXCAR_MAX_SAMPLES
SAMPLE_MIN, SAMPLE_MAX = -(1 << 23), (1 << 23) - 1


class HGEStatusError(ValueError):
    """A C core entry point returned a negative ``hge_status``."""

    def __init__(self, func: str, status: int):
        self.func, self.status = func, status
        super().__init__(f"{func} returned {STATUS_NAMES.get(status, status)} ({status})")


def check_status(func: str, status: int) -> None:
    if status != lib.HGE_OK:
        raise HGEStatusError(func, status)


def _ptr(ctype: str, arr: np.ndarray):
    return ffi.cast(ctype, ffi.from_buffer(arr)) if arr.size else ffi.NULL


def state_bytes_per_terminal(filter: str = "butterworth3") -> int:  # noqa: A002 - name in docs/design.md section 3
    """Bytes of per-terminal state in the C core (``sizeof`` on the C side)."""
    v.choice("filter", filter, {"butterworth3", "boxcar"})
    if filter == "butterworth3":
        return int(lib.hge_lockin_bw3_state_bytes())
    return int(lib.hge_lockin_boxcar_state_bytes())


def sine_table() -> np.ndarray:
    """The C core's quarter-wave table as int32."""
    return np.array([lib.hge_sine_table[i] for i in range(lib.HGE_SINE_TABLE_SIZE + 1)], np.int32)


def sin_q22(phases) -> np.ndarray:
    """``hge_sin_q22`` of each uint32 phase (one C call per value: for tests)."""
    ph = v.int_array("phases", phases, np.uint32)
    return np.array([lib.hge_sin_q22_exported(int(p)) for p in ph], np.int64)


def _terminal_args(steps, phases):
    steps = v.int_array("steps", steps, np.uint32)
    m = steps.size
    if m == 0 or m > MAX_TERMINALS:
        raise ValueError(f"steps: need 1..{MAX_TERMINALS} terminals, got {m}")
    bad = (steps == 0) | (steps >= 1 << 31)
    if bad.any():
        raise ValueError(f"steps: each must be in (0, 2^31) (0 < f < fs/2), got {int(steps[bad][0])}")
    phases = np.zeros(m, np.uint32) if phases is None else v.int_array("phases", phases, np.uint32, length=m)
    return steps, phases


def _codes(x) -> np.ndarray:
    return v.int_array("x", x, np.int32)


def _blocks(n: int, block_sizes):
    """Split n samples into consecutive blocks (None: one block)."""
    if block_sizes is None:
        return [n]
    sizes = [int(b) for b in block_sizes]
    if any(b < 0 for b in sizes) or sum(sizes) != n:
        raise ValueError(f"block_sizes must be >= 0 and sum to {n}, got {sizes}")
    return sizes


def _feed(name: str, process, inst, x: np.ndarray, block_sizes) -> None:
    """Hand ``x`` to a C ``_process`` function in consecutive blocks (one block by default)."""
    start = 0
    for size in _blocks(x.size, block_sizes):
        if size:
            check_status(name, process(inst, _ptr("int32_t *", x[start:start + size]), size))
        start += size


def _dc(dc) -> int:
    dc = int(dc)
    if not SAMPLE_MIN <= dc <= SAMPLE_MAX:
        raise ValueError(f"dc must be a 24-bit code in [{SAMPLE_MIN}, {SAMPLE_MAX}], got {dc}")
    return dc


def mean_code(x) -> int:
    """``hge_mean_q0``: round-half-up mean of the codes (24-bit saturated)."""
    x = _codes(x)
    if x.size == 0 or x.size > lib.HGE_MEAN_MAX_SAMPLES:
        raise ValueError(f"x: need 1..{lib.HGE_MEAN_MAX_SAMPLES} samples, got {x.size}")
    out = ffi.new("int32_t *")
    check_status("hge_mean_q0", lib.hge_mean_q0(_ptr("int32_t *", x), x.size, out))
    return int(out[0])


def bw3_coeffs_struct(coeffs):
    """Pack ``(b0, b1, b2, a1, a2, c0, c1, d1, b_shift)`` into an ``hge_bw3_coeffs_t``."""
    c = v.int_array("coeffs", coeffs, np.int64, length=9)
    v.int_array("coeffs[:8]", c[:8], np.int32)
    v.int_array("coeffs[8] (b_shift)", c[8:], np.uint32)
    k = ffi.new("hge_bw3_coeffs_t *")
    k.b[0], k.b[1], k.b[2], k.a[0], k.a[1], k.c[0], k.c[1], k.d, k.b_shift = (int(q) for q in c)
    return k


def lockin_bw3(x, steps, phases, coeffs, *, dc: int = 0, block_sizes=None):
    """Butterworth lock-in over codes ``x``; returns Q6 ``(out_i, out_q)`` as int64 (M,)."""
    x = _codes(x)
    steps, phases = _terminal_args(steps, phases)
    m = steps.size
    k = bw3_coeffs_struct(coeffs)
    inst = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", m)
    check_status("hge_lockin_bw3_init", lib.hge_lockin_bw3_init(
        inst, k, terms, m, _ptr("uint32_t *", steps), _ptr("uint32_t *", phases)))
    check_status("hge_lockin_bw3_set_dc", lib.hge_lockin_bw3_set_dc(inst, _dc(dc)))
    _feed("hge_lockin_bw3_process", lib.hge_lockin_bw3_process, inst, x, block_sizes)
    out_i = np.empty(m, np.int32)
    out_q = np.empty(m, np.int32)
    check_status("hge_lockin_bw3_output", lib.hge_lockin_bw3_output(
        inst, _ptr("int32_t *", out_i), _ptr("int32_t *", out_q)))
    return out_i.astype(np.int64), out_q.astype(np.int64)


def lockin_boxcar(x, steps, phases, *, dc: int = 0, block_sizes=None):
    """Integrate-and-dump lock-in; returns the Q22 sums ``(out_i, out_q)`` as int64 (M,)."""
    x = _codes(x)
    if x.size > BOXCAR_MAX_SAMPLES:
        raise ValueError(f"x: integrate-and-dump takes at most {BOXCAR_MAX_SAMPLES} samples, got {x.size}")
    steps, phases = _terminal_args(steps, phases)
    m = steps.size
    inst = ffi.new("hge_lockin_boxcar_t *")
    terms = ffi.new("hge_lockin_boxcar_term_t[]", m)
    check_status("hge_lockin_boxcar_init", lib.hge_lockin_boxcar_init(
        inst, terms, m, _ptr("uint32_t *", steps), _ptr("uint32_t *", phases)))
    check_status("hge_lockin_boxcar_set_dc", lib.hge_lockin_boxcar_set_dc(inst, _dc(dc)))
    _feed("hge_lockin_boxcar_process", lib.hge_lockin_boxcar_process, inst, x, block_sizes)
    out_i = np.empty(m, np.int64)
    out_q = np.empty(m, np.int64)
    count = ffi.new("uint32_t *")
    check_status("hge_lockin_boxcar_output", lib.hge_lockin_boxcar_output(
        inst, _ptr("int64_t *", out_i), _ptr("int64_t *", out_q), count))
    return out_i, out_q


class UpdateRule:
    """``hge_update_t``: ``w <- clamp(w - round(eta g / 2^shift), w_min, w_max)`` on DAC codes."""

    def __init__(self, w_min, w_max, *, eta: int, shift: int):
        self.w_min = v.int_array("w_min", w_min, np.int32)
        self.w_max = v.int_array("w_max", w_max, np.int32, length=self.w_min.size)
        n = self.w_min.size
        if n == 0 or n > MAX_TERMINALS:
            raise ValueError(f"w_min: need 1..{MAX_TERMINALS} electrodes, got {n}")
        if np.any(self.w_min > self.w_max):
            i = int(np.argmax(self.w_min > self.w_max))
            raise ValueError(f"w_min[{i}] = {self.w_min[i]} exceeds w_max[{i}] = {self.w_max[i]}")
        eta = int(eta)
        if not -(1 << 31) <= eta < (1 << 31):
            raise ValueError(f"eta must fit int32, got {eta}")
        if not 0 <= int(shift) <= 62:
            raise ValueError(f"shift must be in [0, 62], got {shift}")
        self.eta, self.shift, self.n = eta, int(shift), n
        self._u = ffi.new("hge_update_t *")
        check_status("hge_update_init", lib.hge_update_init(
            self._u, _ptr("int32_t *", self.w_min), _ptr("int32_t *", self.w_max), n, eta, self.shift))

    def accumulate(self, dEdI, dIdV, g=None) -> np.ndarray:
        """Return ``g + sum_k dEdI[k] dIdV[k, :]`` (saturating int64); dIdV shape (K, n)."""
        dEdI = v.int_array("dEdI", dEdI, np.int32)
        dIdV = v.int_array("dIdV", dIdV, np.int32, ndim=2, length=dEdI.size)
        if dIdV.shape[1] != self.n:
            raise ValueError(f"dIdV must have {self.n} columns, got {dIdV.shape[1]}")
        g = np.zeros(self.n, np.int64) if g is None else v.int_array("g", g, np.int64, length=self.n).copy()
        if dEdI.size:
            check_status("hge_update_accumulate", lib.hge_update_accumulate(
                self._u, _ptr("int64_t *", g), _ptr("int32_t *", dEdI), _ptr("int32_t *", dIdV), dEdI.size))
        return g

    def step(self, w, g) -> np.ndarray:
        """One update of the codes ``w`` with gradient ``g``; returns the new codes."""
        w = v.int_array("w", w, np.int32, length=self.n).copy()
        g = v.int_array("g", g, np.int64, length=self.n)
        check_status("hge_update_process", lib.hge_update_process(
            self._u, _ptr("int32_t *", w), _ptr("int64_t *", g)))
        return w
