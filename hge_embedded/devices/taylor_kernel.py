"""The simulator's Taylor windows in C (``csrc/host/hge_sim_taylor.c``): packing and the call.

``FastEvaluator`` evaluates every HGE window of a record as the third-order Taylor expansion
about its box centre. This module packs each window's derivatives (I, gradient, Hessian, third
derivatives) into the kernel's distinct-monomial coefficients and evaluates all windows in one
C call. The numpy formula (``FastEvaluator._cubic``) stays the reference: the two evaluate the
same polynomial in different orders, so they differ by round-off only, at most
``roundoff_bound`` (derived there, tested in ``tests/test_sim_taylor.py``).
"""
from __future__ import annotations

import functools

import numpy as np


def _addr(ffi, ctype: str, a: np.ndarray):
    """``ffi.cast(ctype, a.ctypes.data)``: the address of ``a``'s first element. For a C-contiguous,
    non-empty array through ``ffi.from_buffer`` (the same address, without numpy's ctypes object:
    a few microseconds less per pointer; ~15 pointers per simulated window)."""
    if a.size and a.flags.c_contiguous:
        return ffi.cast(ctype, ffi.from_buffer(a))
    return ffi.cast(ctype, a.ctypes.data)

U = 2.0 ** -53   # unit round-off of IEEE double


def gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): the relative error bound of k roundings."""
    return k * U / (1.0 - k * U)


@functools.lru_cache(maxsize=None)
def coefficient_map(n: int):
    """(src (n_coef, 6), div (n_coef,)) for ``n`` electrodes: coefficient i of a window is
    ``(flat[src[i, 0]] + ... + flat[src[i, 5]]) / div[i]`` summed left to right, with
    ``flat = [I, g (n), H (n*n, row-major), T (n^3, row-major), 0]``, in the kernel's nested order:
    I, then for j: g_j, then for k >= j: Q_jk, then for l >= k: C_jkl (``hge_sim_taylor.h``).

    Each distinct monomial collects every tensor entry that multiplies it: Q_jk = (H_jk + H_kj) / 2
    (j < k) and H_jj / 2; C_jkl = (the sum of T over the distinct orderings of j, k, l) / 6 (6, 3
    or 1 entries). So the packed polynomial is I + g.d + d.H.d / 2 + T[d, d, d] / 6 for any H and
    T, symmetric or not (the hopping network's difference tensors are symmetric only to their
    truncation error; the surrogate's to round-off). Unused slots point at the trailing 0."""
    from itertools import permutations
    zero = 1 + n + n * n + n ** 3
    rows, div = [[0]], [1.0]

    def h(j, k):
        return 1 + n + j * n + k

    def t(j, k, m):
        return 1 + n + n * n + (j * n + k) * n + m
    for j in range(n):
        rows.append([1 + j])
        div.append(1.0)
        for k in range(j, n):
            rows.append(sorted({h(j, k), h(k, j)}))
            div.append(2.0)
            for m in range(k, n):
                rows.append(sorted({t(*p) for p in permutations((j, k, m))}))
                div.append(6.0)
    src = np.array([r + [zero] * (6 - len(r)) for r in rows])
    div = np.array(div)
    src.flags.writeable = div.flags.writeable = False
    return src, div


def pack(I, g, H, T) -> np.ndarray:
    """Coefficients (k, n_coef) of ``k`` windows from I (k,), g (n, k), H (k, n, n), T (k, n, n, n)
    (:func:`coefficient_map`: any H and T; each coefficient is a sum of at most 6 entries and one
    division, at most 6 roundings)."""
    I = np.asarray(I, float)
    k = I.size
    n = np.asarray(g).shape[0]
    flat = np.concatenate([I.reshape(k, 1), np.asarray(g, float).T, np.asarray(H, float).reshape(k, n * n),
                           np.asarray(T, float).reshape(k, n ** 3), np.zeros((k, 1))], axis=1)
    src, div = coefficient_map(n)
    acc = flat[:, src[:, 0]]
    for c in range(1, src.shape[1]):
        acc += flat[:, src[:, c]]      # + 0.0 in the unused slots: exact
    acc /= div
    return acc


def roundoff_bound(v, centres, I, g, H, T) -> np.ndarray:
    """Per sample of one window: a bound of |kernel - numpy formula| (nA), both in double.

    Derivation. Both evaluate P(d) = I + g.d + d.H.d / 2 + T[d, d, d] / 6 at the same d
    (``v - centre``: the same rounded subtraction in both). Each is a sum of the terms of P (every
    tensor entry times its d's), every term computed with a bounded number k of roundings, so
    |fl(P) - P| <= gamma_k S with S the sum of the terms' magnitudes, S = |I| + sum |g_j d_j| +
    sum_jk |H_jk d_j d_k| / 2 + sum_jkl |T_jkl d_j d_k d_l| / 6 (Higham, Accuracy and Stability,
    3.1-3.5; H and T need not be symmetric).
    The kernel: packing sums at most 6 entries and divides once (6 roundings), then one multiply
    and at most n adds per nesting level (3 n + 3): k_C = 3 n + 9.
    The numpy formula: A = (T / 6) d (1 division, 1 multiply, n - 1 adds in any order) + H / 2
    (1 add), B = A d (1 multiply, n - 1 adds), B . d (1 multiply, n - 1 adds); y = I + g . d (one
    multiply, n adds); y += cubic (1 add): k_np = 3 n + 4 (the matrix product and einsum may sum
    in any order: the bound holds for any order). So |kernel - numpy| <= (gamma_{3n+9} +
    gamma_{3n+4}) S."""
    d = np.asarray(v, float) - np.asarray(centres, float)[:, None]
    a = np.abs(d)
    n = d.shape[0]
    S = (abs(float(I)) + np.abs(g) @ a + np.einsum("jk,jn,kn->n", np.abs(H), a, a) / 2.0
         + np.einsum("jkl,jn,kn,ln->n", np.abs(T), a, a, a) / 6.0)
    # The bound itself is computed in floating point: 1 % over it covers its own rounding.
    return (gamma(3 * n + 9) + gamma(3 * n + 4)) * S * 1.01


def evaluate(v: np.ndarray, bounds: np.ndarray, centres: np.ndarray, coefs: np.ndarray, out: np.ndarray,
             isa: int = 0) -> None:
    """``out[s:e]`` = the Taylor expansion of window w at ``v[:, s:e]``, for (s, e) = ``bounds[w]``.

    ``v`` (n, N) float64 with unit sample stride, ``bounds`` (W, 2) int64, ``centres`` (W, n),
    ``coefs`` (W, n_coef) from :func:`pack`, ``out`` (N,) float64 contiguous. ``isa``: 0 the fastest
    available, 1 plain C, 2 vectors of 2 doubles, 3 AVX2 (the same bits on each; tests force them).
    Raises ``ValueError`` (naming the argument) for what the C kernel refuses."""
    from .._hge_core import ffi, lib
    v = np.asarray(v)
    if v.ndim != 2:
        raise ValueError(f"v must be (electrodes, samples), got shape {v.shape}")
    n, N = v.shape
    if v.dtype != np.float64 or v.strides[1] != 8 or v.strides[0] % 8 or v.strides[0] < 8 * N:
        v = np.ascontiguousarray(v, dtype=np.float64)   # the kernel's layout: rows of unit stride
    st = ffi.new("hge_sim_taylor_t *")
    status = lib.hge_sim_taylor_init(st, n)
    if status != lib.HGE_OK:
        raise ValueError(f"v has {n} electrodes; the kernel takes 1..{lib.HGE_SIM_MAX_DIM} (status {status})")
    if not lib.hge_sim_taylor_isa_available(isa):
        raise ValueError(f"isa {isa!r} is not available on this build or CPU")
    st.isa = isa
    bounds = np.ascontiguousarray(bounds, dtype=np.int64).reshape(-1, 2)
    W = bounds.shape[0]
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    coefs = np.ascontiguousarray(coefs, dtype=np.float64)
    n_coef = int(lib.hge_sim_taylor_coefs(n))
    if centres.shape != (W, n):
        raise ValueError(f"centres must have shape {(W, n)}, got {centres.shape}")
    if coefs.shape != (W, n_coef):
        raise ValueError(f"coefs must have shape {(W, n_coef)}, got {coefs.shape}")
    if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 1 and out.size == N
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writeable contiguous float64 array of {N} samples")
    if W == 0:
        return
    status = lib.hge_sim_taylor_process(
        st, _addr(ffi, "const double *", v), N, v.strides[0] // 8,
        _addr(ffi, "const int64_t *", bounds), W,
        _addr(ffi, "const double *", centres), _addr(ffi, "const double *", coefs),
        _addr(ffi, "double *", out))
    if status == lib.HGE_ERR_RANGE:
        raise ValueError(f"bounds: a window outside [0, {N}] or ending before it starts")
    if status != lib.HGE_OK:  # pragma: no cover - the checks above leave nothing else
        raise RuntimeError(f"hge_sim_taylor_process: status {status}")


def ramps(v: np.ndarray, ramp_rows: np.ndarray, knots: np.ndarray, I: np.ndarray, G: np.ndarray,
          out: np.ndarray) -> None:
    """Hermite ramps in C (``csrc/host/hge_sim_ramp.h``): the same operations in the same order as
    ``FastEvaluator._fill_ramp_block``, so the same bits. ``ramp_rows`` (R, 4) int64: start, end,
    first knot's index, number of knots; ``knots``, ``I`` (n_pts,), ``G`` (n, n_pts)."""
    from .._hge_core import ffi, lib
    v = np.asarray(v)
    n, N = v.shape
    if v.dtype != np.float64 or v.strides[1] != 8 or v.strides[0] % 8 or v.strides[0] < 8 * N:
        v = np.ascontiguousarray(v, dtype=np.float64)
    ramp_rows = np.ascontiguousarray(ramp_rows, dtype=np.int64).reshape(-1, 4)
    knots = np.ascontiguousarray(knots, dtype=np.float64)
    I = np.ascontiguousarray(I, dtype=np.float64)
    G = np.ascontiguousarray(G, dtype=np.float64)
    n_pts = I.size
    if knots.shape != (n_pts,) or G.shape != (n, n_pts):
        raise ValueError(f"knots {knots.shape} and G {G.shape} must match I ({n_pts} points) and v ({n} electrodes)")
    if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.ndim == 1 and out.size == N
            and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writeable contiguous float64 array of {N} samples")
    status = lib.hge_sim_ramp_process(
        _addr(ffi, "const double *", v), n, N, v.strides[0] // 8,
        _addr(ffi, "const int64_t *", ramp_rows), ramp_rows.shape[0],
        _addr(ffi, "const double *", knots), _addr(ffi, "const double *", I),
        _addr(ffi, "const double *", G), n_pts, n_pts, _addr(ffi, "double *", out))
    if status == lib.HGE_ERR_RANGE:
        raise ValueError("ramp_rows: a ramp outside the record or its knots outside the points")
    if status == lib.HGE_ERR_SIZE:
        raise ValueError(f"v has {n} electrodes; the ramp kernel takes 1..{lib.HGE_SIM_RAMP_MAX_DIM}")
    if status != lib.HGE_OK:  # pragma: no cover - the checks above leave nothing else
        raise RuntimeError(f"hge_sim_ramp_process: status {status}")


def run_arrays(v: np.ndarray, chunk: int, lim: float):
    """``FastEvaluator._runs`` in C (``csrc/host/hge_sim_runs.h``): the same runs and boxes (min
    and max are exact), as arrays: bounds (R, 2) int64 [start, end), lo (R, n), hi (R, n)."""
    from .._hge_core import ffi, lib
    v = _rows(v)
    n, N = v.shape
    if int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1 sample, got {chunk!r}")
    cap = max(1, -(-N // chunk))
    bounds = np.empty((cap, 2), np.int64)
    lo = np.empty((cap, n))
    hi = np.empty((cap, n))
    count = ffi.new("uint64_t *")
    status = lib.hge_sim_runs(_addr(ffi, "const double *", v), n, N, v.strides[0] // 8, chunk, lim,
                              _addr(ffi, "int64_t *", bounds), _addr(ffi, "double *", lo),
                              _addr(ffi, "double *", hi), cap, count)
    if status == lib.HGE_ERR_SIZE:
        raise ValueError(f"v has {n} electrodes; the kernel takes 1..{lib.HGE_SIM_RUNS_MAX_DIM}")
    if status == lib.HGE_ERR_RANGE:
        raise ValueError(f"lim must be >= 0, got {lim!r}")
    if status != lib.HGE_OK:  # pragma: no cover - the checks above leave nothing else
        raise RuntimeError(f"hge_sim_runs: status {status}")
    k = int(count[0])
    return bounds[:k], lo[:k], hi[:k]


def runs(v: np.ndarray, chunk: int, lim: float) -> list:
    """:func:`run_arrays` as ``FastEvaluator._runs`` gives them: a list of [start, end, lo, hi]."""
    bounds, lo, hi = run_arrays(v, chunk, lim)
    b = bounds.tolist()
    return [[b[r][0], b[r][1], lo[r], hi[r]] for r in range(len(b))]


def lines(v: np.ndarray, segs: np.ndarray, tol: float) -> np.ndarray:
    """``FastEvaluator._line_segments`` in C: for each segment (S, 2) [start, end), at least 3
    samples and every second difference within ``tol`` (bool (S,); the same subtractions)."""
    from .._hge_core import ffi, lib
    v = _rows(v)
    n, N = v.shape
    segs = np.ascontiguousarray(segs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(segs.shape[0], np.uint8)
    status = lib.hge_sim_lines(_addr(ffi, "const double *", v), n, N, v.strides[0] // 8,
                               _addr(ffi, "const int64_t *", segs), segs.shape[0], float(tol),
                               _addr(ffi, "uint8_t *", out))
    if status == lib.HGE_ERR_RANGE:
        raise ValueError(f"segs: a segment outside [0, {N}] or ending before it starts")
    if status != lib.HGE_OK:
        raise ValueError(f"v of shape {v.shape} refused by the line test (status {status})")
    return out.astype(bool)


def _rows(v) -> np.ndarray:
    """``v`` as the kernels read it: float64 rows of unit sample stride, row stride >= the samples."""
    v = np.asarray(v)
    if v.ndim != 2:
        raise ValueError(f"v must be (electrodes, samples), got shape {v.shape}")
    if v.dtype != np.float64 or v.strides[1] != 8 or v.strides[0] % 8 or v.strides[0] < 8 * v.shape[1]:
        v = np.ascontiguousarray(v, dtype=np.float64)
    return v


def gate_and_quantise(v: np.ndarray, limits: np.ndarray, lsb: float, code_lo: np.ndarray,
                      code_hi: np.ndarray) -> np.ndarray | None:
    """The voltage gate and the DAC in one C pass (``csrc/host/hge_sim_dac.h``): a new (n, N)
    array of ``clip(round(v / lsb), code_lo, code_hi) * lsb``, or ``None`` when a sample is
    outside its limits or not finite (the caller then raises with ``check_volts``'s message).
    ``v`` float64 (n, N) with unit sample stride; ``limits`` (n, 2) checked by the caller."""
    from .._hge_core import ffi, lib
    n, N = v.shape
    if v.dtype != np.float64 or v.strides[1] != 8 or v.strides[0] % 8 or v.strides[0] < 8 * N:
        v = np.ascontiguousarray(v, dtype=np.float64)
    out = np.empty((n, N))
    lim_lo = np.ascontiguousarray(limits[:, 0], dtype=np.float64)
    lim_hi = np.ascontiguousarray(limits[:, 1], dtype=np.float64)
    code_lo = np.ascontiguousarray(code_lo, dtype=np.float64)
    code_hi = np.ascontiguousarray(code_hi, dtype=np.float64)
    if not (lim_lo.size == lim_hi.size == code_lo.size == code_hi.size == n):
        raise ValueError(f"limits and codes must have one entry per electrode ({n})")
    status = lib.hge_sim_dac(_addr(ffi, "const double *", v), n, N, v.strides[0] // 8,
                             _addr(ffi, "const double *", lim_lo), _addr(ffi, "const double *", lim_hi),
                             float(lsb), _addr(ffi, "const double *", code_lo),
                             _addr(ffi, "const double *", code_hi), _addr(ffi, "double *", out), N)
    if status == lib.HGE_ERR_RANGE:
        return None
    if status == lib.HGE_ERR_COEF:
        raise ValueError(f"DAC: lsb {lsb!r} must be finite and > 0, and each electrode's code range "
                         f"[{code_lo.tolist()}, {code_hi.tolist()}] non-empty")
    if status != lib.HGE_OK:
        raise ValueError(f"DAC: v of shape {v.shape} refused by the kernel (status {status})")
    return out
