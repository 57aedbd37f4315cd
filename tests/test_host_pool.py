"""The host's persistent worker pool (csrc/host/hge_host_pool.h) as a user reaches it:
the default ``workers="pool"`` of every threaded call. Results must equal the integer
model whether a call gets the pool, finds it busy (another Python thread is inside: cffi
releases the GIL, so two calls can run at once and one falls back to threads of its
own), or runs in a child after ``fork`` (the child has none of the parent's workers and
must start its own instead of waiting forever on them)."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from hge_embedded import core, design
from hge_embedded.reference import fixed

FS = 10_000.0


def _case(seed, m=7, n=3000):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2**23, 2**23, n)
    steps = design.freq_to_step(rng.uniform(1, 4999, m), FS)
    uph = rng.integers(0, 2**32, m, dtype=np.uint64)
    coeffs = design.lockin_filter(FS, 0.1).coeffs
    return x, steps, uph, coeffs


def test_concurrent_calls_share_the_pool_and_agree():
    """Four Python threads run 2-thread calls at once, 20 windows each: some find the pool
    busy and spawn; every result equals the model's."""
    cases = [_case(s) for s in range(4)]
    want = [fixed.lockin_bw3(x, st, ph, k) for x, st, ph, k in cases]
    plans = [core.LockinPlan(st, ph, x.size, coeffs=k, threads=2) for x, st, ph, k in cases]
    bad = []

    def worker(i):
        x = cases[i][0].astype(np.int32)
        for _ in range(20):
            got = plans[i](x)
            if not all(np.array_equal(a, b) for a, b in zip(got, want[i])):
                bad.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a call did not return (deadlock?)"
    assert bad == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_in_a_forked_child():
    """A process that used the pool forks; the child's 2-thread call must finish (not wait
    on workers it does not have) and equal the model. Run in a fresh interpreter so this
    test's own threads are not forked; a timeout means a deadlock."""
    script = r"""
import os, sys
import numpy as np
from hge_embedded import core, design
from hge_embedded.reference import fixed
rng = np.random.default_rng(5)
x = rng.integers(-2**23, 2**23, 4000)
steps = design.freq_to_step(rng.uniform(1, 4999, 9), 1e4)
coeffs = design.lockin_filter(1e4, 0.1).coeffs
want = fixed.lockin_bw3(x, steps, np.zeros(9, np.uint32), coeffs)
plan = core.LockinPlan(steps, None, x.size, coeffs=coeffs, threads=3)
ok = lambda: all(np.array_equal(a, b) for a, b in zip(plan(x.astype(np.int32)), want))
assert ok()  # the parent's pool is running now
pid = os.fork()
if pid == 0:
    os._exit(0 if ok() and ok() else 3)
_, status = os.waitpid(pid, 0)
assert ok()  # and the parent's pool still is
sys.exit(os.waitstatus_to_exitcode(status))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stdout + run.stderr


def test_workers_argument_is_checked():
    with pytest.raises(ValueError, match="workers"):
        core.lockin_bw3(np.zeros(16, np.int32), [1 << 20], None, design.lockin_filter(FS, 0.1).coeffs,
                        workers="fork")
    with pytest.raises(ValueError, match="workers"):
        core.LockinPlan([1 << 20], None, 16, coeffs=design.lockin_filter(FS, 0.1).coeffs, workers=None)


def test_scaled_cache_is_butterworth_only():
    refs = core.References([1 << 20, 1 << 21, 1 << 22], None, 64, layout="scaled")
    with pytest.raises(ValueError, match="scaled"):
        core.lockin_boxcar(np.zeros(64, np.int32), [1 << 20, 1 << 21, 1 << 22], None, references=refs)


def test_plan_takes_packed_cache_above_the_scaled_limit(monkeypatch):
    """LockinPlan's layout rule: scaled up to SCALED_CACHE_MAX_BYTES, packed above; both exact."""
    x, steps, uph, coeffs = _case(9, m=5, n=500)
    want = fixed.lockin_bw3(x, steps, uph, coeffs)
    small = core.LockinPlan(steps, uph, x.size, coeffs=coeffs)
    monkeypatch.setattr(core, "SCALED_CACHE_MAX_BYTES", 32 * 2 * 500 - 1)  # 2 batches of 500 rows, one byte short
    big = core.LockinPlan(steps, uph, x.size, coeffs=coeffs)
    assert (small.references.layout, big.references.layout) == ("scaled", "packed")
    for plan in (small, big):
        assert all(np.array_equal(a, b) for a, b in zip(plan(x), want))


def test_host_call_status_codes_for_pool_and_scaled_cache():
    """Direct C use: an unknown pool mode is HGE_ERR_RANGE (before any work), the scaled entry
    point refuses a NULL cache and a stride that cannot hold the block, like the other layouts."""
    from hge_embedded._hge_core import ffi, lib
    m, n = 3, 32
    steps = ffi.new("uint32_t[]", [1 << 24, 1 << 25, 1 << 26])
    coeffs = core.bw3_coeffs_struct(design.lockin_filter(FS, 0.1).coeffs)
    inst = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", m)
    assert lib.hge_lockin_bw3_init(inst, coeffs, terms, m, steps, ffi.NULL) == lib.HGE_OK
    x = ffi.new("int32_t[]", [int(v) for v in np.random.default_rng(2).integers(-2**23, 2**23, n)])
    refs = ffi.new("int32_t[]", lib.HGE_LANE_ROW * n)
    assert lib.hge_refs_fill_scaled(refs, lib.HGE_LANE_ROW * n, m, steps, ffi.NULL, n) == lib.HGE_OK
    opts = ffi.new("hge_host_opts_t *")
    opts.isa, opts.threads, opts.pool = lib.HGE_ISA_AUTO, 2, lib.HGE_POOL_SPAWN + 1
    assert lib.hge_host_bw3_process_scaled(inst, x, n, refs, lib.HGE_LANE_ROW * n, opts) == lib.HGE_ERR_RANGE
    opts.pool = lib.HGE_POOL_WORKERS
    assert lib.hge_host_bw3_process_scaled(inst, x, n, ffi.NULL, lib.HGE_LANE_ROW * n, opts) == lib.HGE_ERR_NULL
    assert lib.hge_host_bw3_process_scaled(inst, x, n, refs, lib.HGE_LANE_ROW * n - 1, opts) == lib.HGE_ERR_SIZE
    assert lib.hge_host_bw3_process_scaled(inst, x, n, refs, lib.HGE_LANE_ROW * n, opts) == lib.HGE_OK
    # The refused calls changed nothing: the result is one clean pass over x.
    out_i, out_q = ffi.new("int32_t[]", m), ffi.new("int32_t[]", m)
    assert lib.hge_lockin_bw3_output(inst, out_i, out_q) == lib.HGE_OK
    want = core.lockin_bw3(np.frombuffer(ffi.buffer(x), np.int32), [1 << 24, 1 << 25, 1 << 26], None,
                           design.lockin_filter(FS, 0.1).coeffs, isa="portable")
    assert list(out_i) == list(want[0]) and list(out_q) == list(want[1])
