"""Every C status code and every Python argument error is exercised."""
import numpy as np
import pytest

from hge_embedded import core, demodulate, design
from hge_embedded._hge_core import ffi, lib

FS = 10_000.0
OK_COEFFS = design.lockin_filter(FS, 0.1).coeffs


def coeffs_struct(c=OK_COEFFS):
    return core.bw3_coeffs_struct(c)


def test_bw3_init_status_codes():
    s = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", 2)
    steps = ffi.new("uint32_t[]", [1000, 2000])
    k = coeffs_struct()
    assert lib.hge_lockin_bw3_init(ffi.NULL, k, terms, 2, steps, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_init(s, ffi.NULL, terms, 2, steps, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_init(s, k, ffi.NULL, 2, steps, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_init(s, k, terms, 2, ffi.NULL, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_init(s, k, terms, 0, steps, ffi.NULL) == lib.HGE_ERR_TERMINALS
    assert lib.hge_lockin_bw3_init(s, k, terms, lib.HGE_MAX_TERMINALS + 1, steps, ffi.NULL) == lib.HGE_ERR_TERMINALS
    bad = ffi.new("uint32_t[]", [1000, 2**31])
    assert lib.hge_lockin_bw3_init(s, k, terms, 2, bad, ffi.NULL) == lib.HGE_ERR_FREQ
    zero = ffi.new("uint32_t[]", [0, 5])
    assert lib.hge_lockin_bw3_init(s, k, terms, 2, zero, ffi.NULL) == lib.HGE_ERR_FREQ
    one = 1 << 30
    for unstable in [(1, 2, 1, 0, one, 1, 1, 0, 0),            # |a2| = 1: poles on the circle
                     (1, 2, 1, -2 * one + 1, one - 1, 1, 1, 0, 0),  # |a1| >= 1 + a2
                     (1, 2, 1, 0, 0, 1, 1, one, 0),            # first-order pole at 1
                     (1, 2, 1, 0, 0, 1, 1, 0, 33)]:            # b_shift too large
        assert lib.hge_lockin_bw3_init(s, coeffs_struct(unstable), terms, 2, steps, ffi.NULL) == lib.HGE_ERR_COEF
    assert lib.hge_lockin_bw3_init(s, k, terms, 2, steps, ffi.NULL) == lib.HGE_OK


def test_bw3_runtime_status_codes():
    s = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", 1)
    steps = ffi.new("uint32_t[]", [1000])
    k = coeffs_struct()
    assert lib.hge_lockin_bw3_init(s, k, terms, 1, steps, ffi.NULL) == lib.HGE_OK
    x = ffi.new("int32_t[]", 4)
    out = ffi.new("int32_t[]", 1)
    assert lib.hge_lockin_bw3_set_dc(ffi.NULL, 0) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_set_dc(s, 2**23) == lib.HGE_ERR_RANGE
    assert lib.hge_lockin_bw3_set_dc(s, -2**23 - 1) == lib.HGE_ERR_RANGE
    assert lib.hge_lockin_bw3_set_dc(s, -2**23) == lib.HGE_OK
    assert lib.hge_lockin_bw3_process(ffi.NULL, x, 4) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_process(s, ffi.NULL, 4) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_process(s, x, 0) == lib.HGE_OK
    assert lib.hge_lockin_bw3_output(s, ffi.NULL, out) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_output(ffi.NULL, out, out) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_reset(ffi.NULL, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_bw3_reset(s, ffi.NULL) == lib.HGE_OK


def test_boxcar_status_codes():
    s = ffi.new("hge_lockin_boxcar_t *")
    terms = ffi.new("hge_lockin_boxcar_term_t[]", 1)
    steps = ffi.new("uint32_t[]", [1000])
    assert lib.hge_lockin_boxcar_init(ffi.NULL, terms, 1, steps, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_boxcar_init(s, terms, 0, steps, ffi.NULL) == lib.HGE_ERR_TERMINALS
    assert lib.hge_lockin_boxcar_init(s, terms, 1, ffi.new("uint32_t[]", [2**31]), ffi.NULL) == lib.HGE_ERR_FREQ
    assert lib.hge_lockin_boxcar_init(s, terms, 1, steps, ffi.NULL) == lib.HGE_OK
    assert lib.hge_lockin_boxcar_set_dc(s, 2**23) == lib.HGE_ERR_RANGE
    assert lib.hge_lockin_boxcar_set_dc(ffi.NULL, 0) == lib.HGE_ERR_NULL
    big = np.zeros(lib.HGE_BOXCAR_MAX_SAMPLES, np.int32)
    p = ffi.cast("int32_t *", ffi.from_buffer(big))
    assert lib.hge_lockin_boxcar_process(s, p, lib.HGE_BOXCAR_MAX_SAMPLES) == lib.HGE_OK
    # One more sample would allow the 64-bit sums to overflow: refused, nothing processed.
    assert lib.hge_lockin_boxcar_process(s, p, 1) == lib.HGE_ERR_SIZE
    assert lib.hge_lockin_boxcar_process(s, ffi.NULL, 1) == lib.HGE_ERR_NULL
    oi, oq, cnt = ffi.new("int64_t[]", 1), ffi.new("int64_t[]", 1), ffi.new("uint32_t *")
    assert lib.hge_lockin_boxcar_output(s, oi, oq, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_lockin_boxcar_output(s, oi, oq, cnt) == lib.HGE_OK and cnt[0] == lib.HGE_BOXCAR_MAX_SAMPLES
    assert lib.hge_lockin_boxcar_reset(s, ffi.NULL) == lib.HGE_OK
    assert lib.hge_lockin_boxcar_output(s, oi, oq, cnt) == lib.HGE_OK and cnt[0] == 0
    assert lib.hge_lockin_boxcar_reset(ffi.NULL, ffi.NULL) == lib.HGE_ERR_NULL


def test_mean_status_codes():
    x = ffi.new("int32_t[]", [1, 2, 2])
    m = ffi.new("int32_t *")
    assert lib.hge_mean_q0(ffi.NULL, 3, m) == lib.HGE_ERR_NULL
    assert lib.hge_mean_q0(x, 3, ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_mean_q0(x, 0, m) == lib.HGE_ERR_SIZE
    assert lib.hge_mean_q0(x, lib.HGE_MEAN_MAX_SAMPLES + 1, m) == lib.HGE_ERR_SIZE
    assert lib.hge_mean_q0(x, 3, m) == lib.HGE_OK and m[0] == 2  # 5/3 rounds to 2
    assert core.mean_code([-1, -2]) == -1  # -1.5 rounds half-up to -1


def test_status_error_names_function_and_code():
    with pytest.raises(core.HGEStatusError, match="hge_x returned HGE_ERR_FREQ"):
        core.check_status("hge_x", lib.HGE_ERR_FREQ)


@pytest.mark.parametrize("kwargs, match", [
    (dict(engine="gpu"), "engine must be one of"),
    (dict(filter="bessel"), "filter must be one of"),
    (dict(T=0.0), "T must be finite and > 0"),
    (dict(T=-1.0), "T must be finite and > 0"),
    (dict(phases=[0.1, 0.2]), "phases must have one entry per frequency"),
    (dict(full_scale=-1.0), "full_scale must be finite and > 0"),
    (dict(full_scale=0.5), "samples exceed full_scale"),
    (dict(block_sizes=[10, 10]), "block_sizes must be >= 0 and sum to 1000"),
])
def test_demodulate_argument_errors(kwargs, match):
    x = np.sin(np.arange(1000) / 7.0)
    with pytest.raises((ValueError, TypeError), match=match):
        demodulate(x, FS, [100.0], **kwargs)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(0), FS, [100.0]), "samples must be a non-empty 1-D array"),
    ((np.zeros((2, 5)), FS, [100.0]), "samples must be a non-empty 1-D array"),
    ((np.array([0] * 999 + [2**23]), FS, [100.0]), "integer samples are 24-bit ADC codes"),
    ((np.array([np.nan] + [1.0] * 999), FS, [100.0]), "samples must be finite"),
    ((np.ones(2), FS, [100.0]), "the Butterworth lock-in needs at least 8 samples, got 2"),
    ((np.ones(16), FS, [100.0]), "T = 0.0016 s is too short for the Butterworth"),
    ((np.ones(1004), FS, [100.0]), "the window must be a multiple of 8, got 1004"),
    ((np.ones(10), FS, [5000.0]), r"freqs must lie in \(0, fs/2"),
    ((np.ones(10), FS, [-1.0]), r"freqs must lie in \(0, fs/2"),
    ((np.ones(10), 0.0, [100.0]), "fs must be finite and > 0"),
    ((np.ones(10), "fast", [100.0]), "fs must be a number"),
])
def test_demodulate_input_errors(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        demodulate(*args)


def test_core_wrapper_errors():
    with pytest.raises(ValueError, match="steps: need 1..256 terminals, got 0"):
        core.lockin_boxcar([1, 2], [], None)
    with pytest.raises(ValueError, match="steps: need 1..256 terminals, got 257"):
        core.lockin_boxcar([1, 2], np.full(257, 1000), None)
    with pytest.raises(ValueError, match=r"steps: each must be in \(0, 2\^31\)"):
        core.lockin_bw3([1, 2], [0], None, OK_COEFFS)
    with pytest.raises(ValueError, match="dc must be a 24-bit code"):
        core.lockin_bw3([1, 2], [10], None, OK_COEFFS, dc=2**23)
    with pytest.raises(ValueError, match="x must fit int32"):
        core.lockin_bw3([2**31], [10], None, OK_COEFFS)
    with pytest.raises(TypeError, match="x must hold integers"):
        core.lockin_bw3([0.5], [10], None, OK_COEFFS)
    with pytest.raises(ValueError, match="coeffs must have length 9"):
        core.lockin_bw3([1], [10], None, OK_COEFFS[:8])
    with pytest.raises(ValueError, match="integrate-and-dump takes at most 131072"):
        core.lockin_boxcar(np.zeros(2**17 + 1, np.int32), [10], None)
    with pytest.raises(ValueError, match="x: need 1..16777216 samples, got 0"):
        core.mean_code([])
    with pytest.raises(ValueError, match="filter must be one of"):
        core.state_bytes_per_terminal("fir")
    with pytest.raises(ValueError, match=r"w_min\[1\] = 5 exceeds w_max\[1\] = 4"):
        core.UpdateRule([0, 5], [1, 4], eta=1, shift=0)
    with pytest.raises(ValueError, match=r"shift must be in \[0, 62\], got 63"):
        core.UpdateRule([0], [1], eta=1, shift=63)
    with pytest.raises(ValueError, match="eta must fit int32"):
        core.UpdateRule([0], [1], eta=2**31, shift=0)
    rule = core.UpdateRule([0, 0], [9, 9], eta=1, shift=0)
    with pytest.raises(ValueError, match="dIdV must have 2 columns, got 3"):
        rule.accumulate([1], [[1, 2, 3]])
    with pytest.raises(ValueError, match="w must have length 2, got 1"):
        rule.step([1], [0, 0])


def test_design_errors():
    with pytest.raises(ValueError, match="fc must be below fs/2"):
        design.butterworth3_sos(6000.0, FS)
    with pytest.raises(ValueError, match=r"sos must have shape \(2, 6\)"):
        design.quantize_butterworth3(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="integrate-and-dump needs f \\* T whole"):
        design.check_boxcar_window([45.0], FS, 0.1)
    with pytest.raises(ValueError, match="T: integrate-and-dump needs T \\* fs whole"):
        design.check_boxcar_window([40.0], FS, 0.10005)


@pytest.mark.parametrize("layout", ["rows", "lanes", "packed", "scaled"])
def test_reference_cache_fills_refuse_bad_arguments(layout):
    """Every cache layout's fill returns the status naming what is wrong, and writes nothing
    when the row stride cannot hold n samples (a stride one element short)."""
    fill, ctype, row = {"rows": (lib.hge_refs_fill, "int32_t[]", 1),
                        "lanes": (lib.hge_refs_fill_lanes, "int32_t[]", lib.HGE_LANE_ROW),
                        "packed": (lib.hge_refs_fill_packed, "uint8_t[]", lib.HGE_PACKED_ROW),
                        "scaled": (lib.hge_refs_fill_scaled, "int32_t[]", lib.HGE_LANE_ROW)}[layout]
    n = 16
    stride = row * n
    size = 4 * stride   # rows: a sine and a cosine row per terminal; lanes/packed: one batch row
    buf = ffi.new(ctype, size)
    steps = ffi.new("uint32_t[]", [1 << 24, 1 << 25])
    assert fill(buf, stride, 2, steps, ffi.NULL, n) == lib.HGE_OK
    assert fill(ffi.NULL, stride, 2, steps, ffi.NULL, n) == lib.HGE_ERR_NULL
    assert fill(buf, stride, 2, ffi.NULL, ffi.NULL, n) == lib.HGE_ERR_NULL
    assert fill(buf, stride, 0, steps, ffi.NULL, n) == lib.HGE_ERR_TERMINALS
    assert fill(buf, stride, lib.HGE_MAX_TERMINALS + 1, steps, ffi.NULL, n) == lib.HGE_ERR_TERMINALS
    for bad in (0, 2**31):
        assert fill(buf, stride, 2, ffi.new("uint32_t[]", [1 << 24, bad]), ffi.NULL, n) == lib.HGE_ERR_FREQ
    fresh = ffi.new(ctype, size)
    assert fill(fresh, stride - 1, 2, steps, ffi.NULL, n) == lib.HGE_ERR_SIZE
    assert all(fresh[i] == 0 for i in range(size))


def test_a_window_too_long_for_memory_is_refused_by_name():
    """-T 1e9 used to end in a MemoryError (exit 1) after the plan was built; now the window's length is
    refused first, naming T, and the CLI says so as a usage error (exit 2)."""
    from hge_embedded.cli import main
    from hge_embedded.gradient import MAX_WINDOW_SAMPLES, window_samples
    assert window_samples(1e4, MAX_WINDOW_SAMPLES / 1e4, "boxcar") == MAX_WINDOW_SAMPLES
    with pytest.raises(ValueError, match=r"T = 1e\+?0?9 s|T = 1000000000"):
        window_samples(1e4, 1e9, "boxcar")
    assert main(["gradient", "-T", "1e9", "--filter", "boxcar"]) == 2


@pytest.mark.parametrize("argv", [["train", "--task", "xor", "--out", ""], ["calibrate", "--out", " "],
                                  ["reproduce", "--out", ""]])
def test_an_empty_out_is_a_usage_error(argv, capsys):
    """An empty --out fell back to the default directory (train) or file (calibrate) without a word."""
    from hge_embedded.cli import main
    assert main(argv) == 2
    assert "argument --out: must be a path" in capsys.readouterr().err
