"""Thin binding of the C lock-in core (``csrc/``): numpy arrays in, numpy arrays out.

No per-sample Python work: each call hands whole buffers to C. The lock-ins run the
host's fast paths (``csrc/host``: runtime ISA dispatch, threads over terminals, an
optional :class:`References` cache) unless ``isa="portable"`` asks for the portable
C99 path the firmware runs; every path gives the same integers. Arguments are
validated here, once, so the C status codes only fire for direct ``lib`` use;
``check_status`` still turns any non-zero status into an ``HGEStatusError``.
"""
from __future__ import annotations

import os

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


def _c_ready(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself if C-contiguous and aligned for its dtype, else an aligned copy.

    ``v.int_array`` returns a contiguous array, but numpy calls a contiguous view at an
    odd byte offset (``np.frombuffer(buf, offset=1)``) contiguous too; C may not read
    an ``int32_t *`` there (undefined behaviour; a fault on Cortex-M0 and with some
    SIMD loads). ``np.require`` copies exactly when a flag is missing (checked here first:
    ``np.require`` itself costs a few microseconds per window).
    """
    flags = arr.flags
    if flags.c_contiguous and flags.aligned:
        return arr
    return np.require(arr, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _ptr(ctype: str, arr: np.ndarray):
    """A C pointer to ``arr``'s data; refuses memory C must not read as ``ctype``."""
    if not arr.size:
        return ffi.NULL
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        raise ValueError(f"internal: array for {ctype} is not contiguous and aligned (flags {arr.flags})")
    return ffi.cast(ctype, ffi.from_buffer(arr))


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
    return _c_ready(steps), _c_ready(phases)


def _codes(x) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.int32 and x.ndim == 1:
        return _c_ready(x)  # every int32 is a valid code (C saturates): no range scan per window
    return _c_ready(v.int_array("x", x, np.int32))


def _blocks(n: int, block_sizes):
    """Split n samples into consecutive blocks (None: one block)."""
    if block_sizes is None:
        return [n]
    sizes = [int(b) for b in block_sizes]
    if any(b < 0 for b in sizes) or sum(sizes) != n:
        raise ValueError(f"block_sizes must be >= 0 and sum to {n}, got {sizes}")
    return sizes




def _dc(dc) -> int:
    dc = int(dc)
    if not SAMPLE_MIN <= dc <= SAMPLE_MAX:
        raise ValueError(f"dc must be a 24-bit code in [{SAMPLE_MIN}, {SAMPLE_MAX}], got {dc}")
    return dc


def mean_code(x, *, isa: str = "auto") -> int:
    """``hge_mean_q0``: round-half-up mean of the codes (24-bit saturated).

    ``isa``: "portable" calls ``hge_mean_q0`` (the firmware's); "auto" (default),
    "generic" or "avx2" call ``hge_host_mean_q0`` (the same sum and rounding, vectorised).
    All give the same integer.
    """
    x = _codes(x)
    if x.size == 0 or x.size > lib.HGE_MEAN_MAX_SAMPLES:
        raise ValueError(f"x: need 1..{lib.HGE_MEAN_MAX_SAMPLES} samples, got {x.size}")
    v.choice("isa", isa, {"portable", *ISAS})
    out = ffi.new("int32_t *")
    if isa == "portable":
        check_status("hge_mean_q0", lib.hge_mean_q0(_ptr("int32_t *", x), x.size, out))
    else:
        if not lib.hge_host_isa_available(ISAS[isa]):
            raise ValueError(f"isa: {isa!r} is not available on this CPU")
        check_status("hge_host_mean_q0", lib.hge_host_mean_q0(_ptr("int32_t *", x), x.size, out, ISAS[isa]))
    return int(out[0])


def bw3_coeffs_struct(coeffs):
    """Pack ``(b0, b1, b2, a1, a2, c0, c1, d1, b_shift)`` into an ``hge_bw3_coeffs_t``."""
    c = v.int_array("coeffs", coeffs, np.int64, length=9)
    v.int_array("coeffs[:8]", c[:8], np.int32)
    v.int_array("coeffs[8] (b_shift)", c[8:], np.uint32)
    k = ffi.new("hge_bw3_coeffs_t *")
    k.b[0], k.b[1], k.b[2], k.a[0], k.a[1], k.c[0], k.c[1], k.d, k.b_shift = (int(q) for q in c)
    return k


ISAS = {"auto": lib.HGE_ISA_AUTO, "generic": lib.HGE_ISA_GENERIC, "avx2": lib.HGE_ISA_AVX2}
#: LockinPlan's largest "scaled" reference cache (bytes); above it the "packed" one.
SCALED_CACHE_MAX_BYTES = 8 << 20
#: Below this many terminal-samples a call stays on one thread. (Set when each call started
#: its threads, ~50 us each; the worker pool hands a job to an awake worker in ~10 us, but a
#: worker asleep after 0.3 ms idle takes a wake-up; not re-measured, so kept.)
THREAD_MIN_WORK = 1 << 18


def isa_available(isa: str) -> bool:
    """Whether the host path ``isa`` ("portable", "auto", "generic", "avx2") can run here."""
    v.choice("isa", isa, {"portable", *ISAS})
    return isa == "portable" or bool(lib.hge_host_isa_available(ISAS[isa]))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _aligned_empty(shape, dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary
    (lane-cache rows then never straddle a cache line)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + nbytes].view(dtype).reshape(shape)


class References:
    """Reference cache of a plan: the C core's Q22 sin and cos of every terminal at every
    sample of a window (the same NCO walk the core makes), computed once and reused by
    every window of that plan and length.

    Parameters
    ----------
    steps, phases : array_like of uint32, shape (M,)
        The plan's phase steps and start phases (``phases=None``: all 0).
    n : int
        Window length in samples; a call with a cache must process exactly ``n`` samples.
    layout : {"lanes", "packed", "scaled", "rows"}
        ``"lanes"`` (default, ``hge_refs_fill_lanes``): terminals in batches of
        ``HGE_HOST_LANES`` (4); per batch and sample one 32-byte row, the 4 sines then
        the 4 cosines, which the AVX2 path reads as one vector (terminals in SIMD
        lanes). Shape ``(ceil(M / 4), n, 8)``. ``"rows"`` (``hge_refs_fill``): one row
        of ``n`` per channel, shape ``(2M, n)``; the earlier layout, kept for the C API.
        ``"packed"`` (``hge_refs_fill_packed``): the lane layout's values as 24-bit
        two's complement, 3 bytes each (24-byte rows), uint8 of shape
        ``(ceil(M / 4), n, 24)``: a quarter less memory to stream, unpacked in registers.
        ``"scaled"`` (``hge_refs_fill_scaled``, Butterworth only): the lane layout with
        every value times 256, which the AVX2 kernel multiplies as loaded (the fewest
        operations per sample; 32-byte rows like "lanes").

    Notes
    -----
    Memory: ``8 M n`` bytes for "rows", ``32 ceil(M / 4) n`` for "lanes" and "scaled", ``24 ceil(M / 4) n``
    for "packed" (M = 64,
    n = 1e5: 51 MB). The table is read-only; a cache only serves calls whose steps and
    phases equal its own (checked on every call).
    """

    def __init__(self, steps, phases, n: int, layout: str = "lanes"):
        self.steps, self.phases = _terminal_args(steps, phases)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, got {type(n).__name__}")
        self.n = int(n)
        if self.n < 1 or self.n >= 1 << 32:
            raise ValueError(f"n must be in [1, 2^32), got {n}")
        v.choice("layout", layout, {"lanes", "packed", "scaled", "rows"})
        self.layout = layout
        m = self.steps.size
        if layout == "rows":
            self.table = np.empty((2 * m, self.n), np.int32)
            self.stride = self.n
            fill, fill_name = lib.hge_refs_fill, "hge_refs_fill"
        elif layout == "packed":
            row = lib.HGE_PACKED_ROW
            if row * self.n >= 1 << 32:
                raise ValueError(f"n: a packed cache holds at most {((1 << 32) - 1) // row} samples, got {n}")
            batches = -(-m // lib.HGE_HOST_LANES)
            self.table = _aligned_empty((batches, self.n, row), np.uint8)
            self.stride = row * self.n
            fill, fill_name = lib.hge_refs_fill_packed, "hge_refs_fill_packed"
        else:
            row = lib.HGE_LANE_ROW
            if row * self.n >= 1 << 32:
                raise ValueError(f"n: a lane cache holds at most {((1 << 32) - 1) // row} samples, got {n}")
            batches = -(-m // lib.HGE_HOST_LANES)
            self.table = _aligned_empty((batches, self.n, row), np.int32)
            self.stride = row * self.n
            fill, fill_name = ((lib.hge_refs_fill_scaled, "hge_refs_fill_scaled") if layout == "scaled"
                               else (lib.hge_refs_fill_lanes, "hge_refs_fill_lanes"))
        check_status(fill_name, fill(
            _ptr("uint8_t *" if layout == "packed" else "int32_t *", self.table), self.stride, m, _ptr("uint32_t *", self.steps),
            _ptr("uint32_t *", self.phases), self.n))
        self.table.flags.writeable = False
        self.steps.flags.writeable = self.phases.flags.writeable = False

    def pointer(self, start: int):
        """C pointer to the cache entry of sample ``start`` (batch 0 / row 0)."""
        if self.layout == "packed":
            return ffi.cast("uint8_t *", ffi.from_buffer(self.table)) + lib.HGE_PACKED_ROW * start
        per_sample = 1 if self.layout == "rows" else lib.HGE_LANE_ROW
        return ffi.cast("int32_t *", ffi.from_buffer(self.table)) + per_sample * start

    def check(self, steps, phases, n: int) -> None:
        """Raise ``ValueError`` unless this cache is for ``steps``, ``phases`` and ``n`` samples."""
        if n != self.n:
            raise ValueError(f"references: cache is for {self.n} samples, got x of {n}")
        if not (np.array_equal(steps, self.steps) and np.array_equal(phases, self.phases)):
            raise ValueError("references: cache was built for other steps or phases")


WORKERS = {"pool": lib.HGE_POOL_WORKERS, "spawn": lib.HGE_POOL_SPAWN}


def _host_opts(isa: str, threads, work: int, m: int, workers: str = "pool"):
    v.choice("isa", isa, {"portable", *ISAS})
    v.choice("workers", workers, set(WORKERS))
    if isa != "portable" and not lib.hge_host_isa_available(ISAS[isa]):
        raise ValueError(f"isa: {isa!r} is not available on this CPU")
    if threads is None:
        threads = 1 if work < THREAD_MIN_WORK or isa == "portable" else min(_cpus(), m, lib.HGE_HOST_MAX_THREADS)
    threads = int(threads)
    if not 1 <= threads <= lib.HGE_HOST_MAX_THREADS:
        raise ValueError(f"threads must be in [1, {lib.HGE_HOST_MAX_THREADS}], got {threads}")
    if isa == "portable" and threads != 1:
        raise ValueError(f"threads: the portable path runs on one thread, got {threads}")
    opts = ffi.new("hge_host_opts_t *")
    opts.isa = ISAS.get(isa, 0)
    opts.threads = threads
    opts.pool = WORKERS[workers]
    return opts


def _feed_host(name: str, portable, host, host_lanes, inst, x, block_sizes, isa, opts, refs,
               host_packed=None, host_scaled=None) -> None:
    """Hand ``x`` to the portable or a host ``_process`` in consecutive blocks; with a
    cache, each block gets the cache entry of its first sample (the ``_lanes`` entry
    point for a lane-interleaved cache)."""
    start = 0
    for size in _blocks(x.size, block_sizes):
        if size:
            xp = _ptr("int32_t *", x[start:start + size])
            if isa == "portable":
                st = portable(inst, xp, size)
            elif refs is None:
                st = host(inst, xp, size, ffi.NULL, 0, opts)
            else:
                fn = {"lanes": host_lanes, "packed": host_packed, "scaled": host_scaled, "rows": host}[refs.layout]
                st = fn(inst, xp, size, refs.pointer(start), refs.stride, opts)
            check_status(name, st)
        start += size


def _checked_refs(references, steps, phases, n, isa, filter="butterworth3"):  # noqa: A002
    if references is None:
        return None
    if not isinstance(references, References):
        raise TypeError(f"references must be a core.References, got {type(references).__name__}")
    if filter == "boxcar" and references.layout == "scaled":
        raise ValueError("references: the 'scaled' layout serves the Butterworth only; "
                         "use layout='lanes' for integrate-and-dump")
    if isa == "portable":
        raise ValueError("references: the portable path computes its references; use isa='auto'")
    references.check(steps, phases, n)
    return references


def lockin_bw3(x, steps, phases, coeffs, *, dc: int = 0, block_sizes=None, isa: str = "auto",
               threads=None, references=None, workers: str = "pool"):
    """Butterworth lock-in over codes ``x``; returns Q6 ``(out_i, out_q)`` as int64 (M,).

    ``isa``: "auto" (default; AVX2 when the CPU has it), "generic", "avx2", or
    "portable" (the C99 path the firmware runs). ``threads``: threads over terminals
    (None: one below THREAD_MIN_WORK terminal-samples, else one per CPU).
    ``references``: a :class:`References` for these steps, phases and ``x.size``.
    ``workers``: where threads beyond the calling one come from: "pool" (default: the
    persistent workers of ``csrc/host/hge_host_pool.h``) or "spawn" (started and joined
    per call). All choices give identical integers.
    """
    x = _codes(x)
    steps, phases = _terminal_args(steps, phases)
    m = steps.size
    opts = _host_opts(isa, threads, m * x.size, m, workers)
    refs = _checked_refs(references, steps, phases, x.size, isa)
    k = bw3_coeffs_struct(coeffs)
    inst = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", m)
    check_status("hge_lockin_bw3_init", lib.hge_lockin_bw3_init(
        inst, k, terms, m, _ptr("uint32_t *", steps), _ptr("uint32_t *", phases)))
    check_status("hge_lockin_bw3_set_dc", lib.hge_lockin_bw3_set_dc(inst, _dc(dc)))
    _feed_host("hge_lockin_bw3_process", lib.hge_lockin_bw3_process, lib.hge_host_bw3_process,
               lib.hge_host_bw3_process_lanes, inst, x, block_sizes, isa, opts, refs,
               lib.hge_host_bw3_process_packed, lib.hge_host_bw3_process_scaled)
    out_i = np.empty(m, np.int32)
    out_q = np.empty(m, np.int32)
    check_status("hge_lockin_bw3_output", lib.hge_lockin_bw3_output(
        inst, _ptr("int32_t *", out_i), _ptr("int32_t *", out_q)))
    return out_i.astype(np.int64), out_q.astype(np.int64)


def lockin_boxcar(x, steps, phases, *, dc: int = 0, block_sizes=None, isa: str = "auto", threads=None,
                  references=None, workers: str = "pool"):
    """Integrate-and-dump lock-in; returns the Q22 sums ``(out_i, out_q)`` as int64 (M,).

    ``isa``, ``threads``, ``references``, ``workers`` as for :func:`lockin_bw3` (a
    "scaled" cache serves the Butterworth only).
    """
    x = _codes(x)
    if x.size > BOXCAR_MAX_SAMPLES:
        raise ValueError(f"x: integrate-and-dump takes at most {BOXCAR_MAX_SAMPLES} samples, got {x.size}")
    steps, phases = _terminal_args(steps, phases)
    m = steps.size
    opts = _host_opts(isa, threads, m * x.size, m, workers)
    refs = _checked_refs(references, steps, phases, x.size, isa, "boxcar")
    inst = ffi.new("hge_lockin_boxcar_t *")
    terms = ffi.new("hge_lockin_boxcar_term_t[]", m)
    check_status("hge_lockin_boxcar_init", lib.hge_lockin_boxcar_init(
        inst, terms, m, _ptr("uint32_t *", steps), _ptr("uint32_t *", phases)))
    check_status("hge_lockin_boxcar_set_dc", lib.hge_lockin_boxcar_set_dc(inst, _dc(dc)))
    _feed_host("hge_lockin_boxcar_process", lib.hge_lockin_boxcar_process, lib.hge_host_boxcar_process,
               lib.hge_host_boxcar_process_lanes,
               inst, x, block_sizes, isa, opts, refs, lib.hge_host_boxcar_process_packed)
    out_i = np.empty(m, np.int64)
    out_q = np.empty(m, np.int64)
    count = ffi.new("uint32_t *")
    check_status("hge_lockin_boxcar_output", lib.hge_lockin_boxcar_output(
        inst, _ptr("int64_t *", out_i), _ptr("int64_t *", out_q), count))
    return out_i, out_q


class LockinPlan:
    """A lock-in prepared once per plan and window length, then called on each window.

    Validation, the coefficient block, the host options and the :class:`References`
    cache are made once here, so a call does only the per-window work (checking the
    codes, the C calls). Results equal :func:`lockin_bw3` / :func:`lockin_boxcar`.

    Parameters
    ----------
    steps, phases : array_like of uint32, shape (M,)
        Phase steps and start phases (``phases=None``: all 0).
    n : int
        Window length in samples; each call takes exactly ``n`` codes.
    filter : {"butterworth3", "boxcar"}
    coeffs : sequence of 9 ints, required for ``"butterworth3"``
        ``(b0, b1, b2, a1, a2, c0, c1, d1, b_shift)`` as :func:`lockin_bw3`.
    isa, threads, workers : as :func:`lockin_bw3`.
    cache : bool
        Build the reference cache (:class:`References`: from 3 terminals up, for
        "butterworth3" the scaled lane layout up to ``SCALED_CACHE_MAX_BYTES`` and the
        packed one above, for "boxcar" the lane layout; the row layout below 3
        terminals) and use it on every call.
    layout : {None, "lanes", "packed", "scaled", "rows"}
        The cache's layout (None: the choice above; "scaled" serves the Butterworth only).
    """

    def __init__(self, steps, phases, n: int, *, filter: str = "butterworth3", coeffs=None,  # noqa: A002
                 isa: str = "auto", threads=None, cache: bool = True, workers: str = "pool", layout=None):
        v.choice("filter", filter, {"butterworth3", "boxcar"})
        if layout is not None:
            v.choice("layout", layout, {"lanes", "packed", "scaled", "rows"})
            if layout == "scaled" and filter != "butterworth3":
                raise ValueError("layout: the 'scaled' cache serves the Butterworth only")
        self.steps, self.phases = _terminal_args(steps, phases)
        self.m = self.steps.size
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) < 1 << 32:
            raise ValueError(f"n must be an integer in [1, 2^32), got {n!r}")
        self.n, self.filter, self.isa = int(n), filter, isa
        if filter == "boxcar" and self.n > BOXCAR_MAX_SAMPLES:
            raise ValueError(f"n: integrate-and-dump takes at most {BOXCAR_MAX_SAMPLES} samples, got {n}")
        if filter == "butterworth3":
            if coeffs is None:
                raise ValueError("coeffs: required for filter='butterworth3'")
            self._k = bw3_coeffs_struct(coeffs)
        self._opts = _host_opts(isa, threads, self.m * self.n, self.m, workers)
        # Lane layout from 3 terminals up; below, most of its 4 SIMD lanes would idle and the
        # row layout (samples in lanes) is faster (measured, CPU time, N = 1e5: M = 1
        # 2.7 vs 3.4 ns per terminal-sample, M = 2 equal; M = 4 1.5 vs 0.9). Of the lane
        # layouts the packed one (24-bit values, 24-byte rows): less memory to stream and
        # fewer operations per sample in its AVX2 kernel (measured, interleaved A/B, best of
        # 25 rounds, wall clock, Butterworth, N = 1e5, 2 threads, ns per terminal-sample,
        # packed vs lanes, three runs: M = 7 0.586/0.639/0.562 vs 0.597/0.637/0.600,
        # M = 64 0.492/0.516/0.551 vs 0.563/0.620/0.652; M = 3, 4, 16 equal or better). Not
        # for integrate-and-dump: its packed path unpacks in scalar code (bench core, M = 7,
        # N = 1e5: 1.9 ns per terminal-sample, several times the lane layout).
        # For the Butterworth, the scaled lane layout while its cache stays small (it needs
        # the fewest operations per sample, but takes a third more memory than packed):
        # measured, interleaved A/B, best of 5-8 runs, CPU time, one thread, N = 1e5, C
        # only (load 4-5 on 2 cores): M = 7 (6.4 MB) 374-398 vs 413-422 us, packed faster
        # from M = 12 (9.6 MB: 1412 vs 827 us, the cache no longer stays in L3) and at M = 16, 64.
        if layout is not None:
            pass   # forced (tests: every cache layout through every entry)
        elif self.m < 3:
            layout = "rows"
        elif filter != "butterworth3":
            layout = "lanes"
        else:
            scaled_bytes = 4 * lib.HGE_LANE_ROW * self.n * -(-self.m // lib.HGE_HOST_LANES)
            layout = "scaled" if scaled_bytes <= SCALED_CACHE_MAX_BYTES else "packed"
        self.references = References(self.steps, self.phases, self.n, layout) if cache and isa != "portable" else None
        self._psteps, self._pphases = _ptr("uint32_t *", self.steps), _ptr("uint32_t *", self.phases)
        # For windows(): the cache's layout code, base pointer and stride; its host options per thread count.
        refs = self.references
        self._refs_args = ((lib.HGE_REFS_NONE, ffi.NULL, 0) if refs is None else
                           (_LAYOUT_CODES[refs.layout], ffi.cast("void *", refs.pointer(0)), refs.stride))
        self._window_opts = {}

    def __call__(self, x, *, dc: int = 0):
        """Demodulate one window of ``n`` codes; returns ``(out_i, out_q)`` int64 (M,) as the functions do."""
        x = _codes(x)
        if x.size != self.n:
            raise ValueError(f"x: this plan takes windows of {self.n} samples, got {x.size}")
        m = self.m
        if self.filter == "butterworth3":
            inst = ffi.new("hge_lockin_bw3_t *")
            terms = ffi.new("hge_lockin_bw3_term_t[]", m)
            check_status("hge_lockin_bw3_init", lib.hge_lockin_bw3_init(
                inst, self._k, terms, m, self._psteps, self._pphases))
            check_status("hge_lockin_bw3_set_dc", lib.hge_lockin_bw3_set_dc(inst, _dc(dc)))
            _feed_host("hge_lockin_bw3_process", lib.hge_lockin_bw3_process, lib.hge_host_bw3_process,
                       lib.hge_host_bw3_process_lanes, inst, x, None, self.isa, self._opts, self.references,
                       lib.hge_host_bw3_process_packed, lib.hge_host_bw3_process_scaled)
            out_i, out_q = np.empty(m, np.int32), np.empty(m, np.int32)
            check_status("hge_lockin_bw3_output", lib.hge_lockin_bw3_output(
                inst, _ptr("int32_t *", out_i), _ptr("int32_t *", out_q)))
            return out_i.astype(np.int64), out_q.astype(np.int64)
        inst = ffi.new("hge_lockin_boxcar_t *")
        terms = ffi.new("hge_lockin_boxcar_term_t[]", m)
        check_status("hge_lockin_boxcar_init", lib.hge_lockin_boxcar_init(inst, terms, m, self._psteps,
                                                                          self._pphases))
        check_status("hge_lockin_boxcar_set_dc", lib.hge_lockin_boxcar_set_dc(inst, _dc(dc)))
        _feed_host("hge_lockin_boxcar_process", lib.hge_lockin_boxcar_process, lib.hge_host_boxcar_process,
               lib.hge_host_boxcar_process_lanes,
                   inst, x, None, self.isa, self._opts, self.references, lib.hge_host_boxcar_process_packed)
        out_i, out_q = np.empty(m, np.int64), np.empty(m, np.int64)
        count = ffi.new("uint32_t *")
        check_status("hge_lockin_boxcar_output", lib.hge_lockin_boxcar_output(
            inst, _ptr("int64_t *", out_i), _ptr("int64_t *", out_q), count))
        return out_i, out_q


    def windows(self, x, dcs=None, *, threads=None):
        """Demodulate K windows in one C call (``hge_host_{bw3,boxcar}_windows``).

        ``x``: codes (K, n) (int32 used as they are, as for a call); ``dcs``: the windows'
        DC codes (K,), or None for 0. Returns ``(out_i, out_q)`` int64 (K, M): row k equals
        ``self(x[k], dc=dcs[k])`` bit for bit (the C entry makes the same calls per window;
        tested). ``threads``: threads over windows (None: one below ``THREAD_MIN_WORK``
        terminal-samples in all, else one per CPU, at most K). The portable isa (the
        firmware's path has no batched entry) calls the plan once per window.
        """
        if not (isinstance(x, np.ndarray) and x.dtype == np.int32 and x.ndim == 2):
            x = v.int_array("x", x, np.int32, ndim=2)
        K = x.shape[0]
        if x.shape[1] != self.n:
            raise ValueError(f"x: this plan takes windows of {self.n} samples, got shape {x.shape}")
        if dcs is not None:
            if not (isinstance(dcs, np.ndarray) and dcs.dtype == np.int32):
                dcs = v.int_array("dcs", dcs, np.int32)   # fits int32 (no wrap); C checks the 24 bits
            if dcs.shape != (K,):
                raise ValueError(f"dcs: one DC code per window ({K}), got shape {dcs.shape}")
        if K == 0:
            return np.empty((0, self.m), np.int64), np.empty((0, self.m), np.int64)
        if self.isa == "portable":
            rows = [self(x[k], dc=0 if dcs is None else int(dcs[k])) for k in range(K)]
            return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        if threads is None:
            threads = 1 if K * self.m * self.n < THREAD_MIN_WORK else min(_cpus(), K, lib.HGE_HOST_MAX_THREADS)
        opts = self._window_opts.get(threads)
        if opts is None:
            if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or \
                    not 1 <= threads <= lib.HGE_HOST_MAX_THREADS:
                raise ValueError(f"threads must be an integer in [1, {lib.HGE_HOST_MAX_THREADS}], got {threads!r}")
            opts = ffi.new("hge_host_opts_t *")   # read-only to C: shared by calls
            opts.isa, opts.threads, opts.pool = self._opts.isa, int(threads), self._opts.pool
            self._window_opts[threads] = opts
        m, jobs = self.m, min(threads, K)
        layout, pref, stride = self._refs_args
        xp = _ptr("int32_t *", _c_ready(x))
        dp = ffi.NULL if dcs is None else _ptr("int32_t *", _c_ready(dcs))
        if self.filter == "butterworth3":
            terms = ffi.new("hge_lockin_bw3_term_t[]", m * jobs)   # per call: calls may run at once
            out_i, out_q = np.empty((K, m), np.int32), np.empty((K, m), np.int32)
            st = lib.hge_host_bw3_windows(self._k, terms, m, self._psteps, self._pphases, xp, self.n, K, dp, pref,
                                          layout, stride, opts, _ptr("int32_t *", out_i), _ptr("int32_t *", out_q))
            name = "hge_host_bw3_windows"
        else:
            terms = ffi.new("hge_lockin_boxcar_term_t[]", m * jobs)
            out_i, out_q = np.empty((K, m), np.int64), np.empty((K, m), np.int64)
            st = lib.hge_host_boxcar_windows(terms, m, self._psteps, self._pphases, xp, self.n, K, dp, pref, layout,
                                             stride, opts, _ptr("int64_t *", out_i), _ptr("int64_t *", out_q))
            name = "hge_host_boxcar_windows"
        if st == lib.HGE_ERR_RANGE and dcs is not None:
            bad = np.flatnonzero((dcs < SAMPLE_MIN) | (dcs > SAMPLE_MAX))
            if bad.size:
                raise ValueError(f"dcs[{bad[0]}] must be a 24-bit code in [{SAMPLE_MIN}, {SAMPLE_MAX}], "
                                 f"got {dcs[bad[0]]}")
        check_status(name, st)
        if self.filter == "butterworth3":
            return out_i.astype(np.int64), out_q.astype(np.int64)
        return out_i, out_q


def codes_windows(x, full_scale=None, *, mean: bool = True):
    """``hge_host_codes``: float windows (K, n) -> 24-bit codes (K, n) int32, the unit per code (K,)
    and, with ``mean``, each window's DC code (K,) int32 (``mean_code`` of its codes), else None.

    The codes are ``demod.to_codes``'s, bit for bit (tested): ``full_scale`` maps to code 2^23 - 1
    (when None, each window's largest magnitude, 1 if 0, maps to 2^22 - 1: demod.AUTO_CODE), rounding to nearest with ties to
    even, clipped to +-(2^23 - 1). Refuses (``ValueError``) non-finite samples and, with
    ``full_scale``, samples beyond it, naming the largest.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must be a 2-D (K, n) array with n >= 1, got shape {x.shape}")
    K, n = x.shape
    fs = 0.0 if full_scale is None else float(v.positive("full_scale", full_scale))
    codes = np.empty((K, n), np.int32)
    scale = np.empty(K, np.float64)
    dcs = np.empty(K, np.int32) if mean else None
    if K == 0:
        return codes, scale, dcs
    st = lib.hge_host_codes(_ptr("double *", x), K, n, fs, _ptr("int32_t *", codes), _ptr("double *", scale),
                            ffi.NULL if dcs is None else _ptr("int32_t *", dcs), lib.HGE_ISA_AUTO)
    if st == lib.HGE_ERR_RANGE:
        peak = np.max(np.abs(x), axis=1)
        if not np.isfinite(peak).all():
            raise ValueError("samples must be finite, got non-finite values")
        over = np.flatnonzero(peak > fs * (1 + 1e-12))
        raise ValueError(f"samples exceed full_scale = {full_scale} (largest |sample| {peak[over[0]]})")
    check_status("hge_host_codes", st)
    return codes, scale, dcs


_LAYOUT_CODES = {"rows": lib.HGE_REFS_ROWS, "lanes": lib.HGE_REFS_LANES, "packed": lib.HGE_REFS_PACKED,
                 "scaled": lib.HGE_REFS_SCALED}


class UpdateRule:
    """``hge_update_t``: ``w <- clamp(w - round(eta g / 2^shift), w_min, w_max)`` on DAC codes."""

    def __init__(self, w_min, w_max, *, eta: int, shift: int):
        # Own read-only copies: the C instance borrows the limits for its lifetime
        # (hge_update.h), so nothing outside may change them under it.
        self.w_min = np.array(v.int_array("w_min", w_min, np.int32), order="C")
        self.w_max = np.array(v.int_array("w_max", w_max, np.int32, length=self.w_min.size), order="C")
        self.w_min.flags.writeable = self.w_max.flags.writeable = False
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
        dEdI = _c_ready(v.int_array("dEdI", dEdI, np.int32))
        dIdV = _c_ready(v.int_array("dIdV", dIdV, np.int32, ndim=2, length=dEdI.size))
        if dIdV.shape[1] != self.n:
            raise ValueError(f"dIdV must have {self.n} columns, got {dIdV.shape[1]}")
        g = np.zeros(self.n, np.int64) if g is None else np.array(v.int_array("g", g, np.int64, length=self.n))
        if dEdI.size:
            check_status("hge_update_accumulate", lib.hge_update_accumulate(
                self._u, _ptr("int64_t *", g), _ptr("int32_t *", dEdI), _ptr("int32_t *", dIdV), dEdI.size))
        return g

    def step(self, w, g) -> np.ndarray:
        """One update of the codes ``w`` with gradient ``g``; returns the new codes."""
        w = np.array(v.int_array("w", w, np.int32, length=self.n))
        g = _c_ready(v.int_array("g", g, np.int64, length=self.n))
        check_status("hge_update_process", lib.hge_update_process(
            self._u, _ptr("int32_t *", w), _ptr("int64_t *", g)))
        return w
