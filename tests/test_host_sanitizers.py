"""The host fast paths (csrc/host) under AddressSanitizer and UndefinedBehaviorSanitizer:
tests/c/host_paths_check.c runs every path (isa, threads, no cache / row cache / lane
cache) against the portable C99 path, bit for bit, on random plans, inputs beyond 24 bits,
block splits and three coefficient sets (a design, one that saturates both sections, one
just past the saturation edge). tools/firmware's host-check runs the same sanitizers over
the firmware vectors, but calls only the row-cache entry points; this covers the rest.
Built at -O0 (the sanitizers' checks, not speed; -O1 takes several times longer to build)."""
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["csrc/hge_lockin.c", "csrc/hge_nco.c", "csrc/hge_sine_table.c", "csrc/host/hge_lockin_host.c",
           "csrc/host/hge_host_pool.c", "tests/c/host_paths_check.c"]


def test_host_paths_under_sanitizers(tmp_path):
    out = run_sanitized(tmp_path, "host_paths_check", SOURCES, args=[40], extra_flags=["-pthread"])
    assert out.startswith("PASS host paths: 40 cases")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_host_paths_under_thread_sanitizer(tmp_path):
    """The persistent worker pool (csrc/host/hge_host_pool.c) and the per-call threads
    under ThreadSanitizer: every hand-off of a job to a worker and back must be ordered
    (a data race on the jobs, the instance or the results aborts the run)."""
    exe = tmp_path / "host_paths_check_tsan"
    build = subprocess.run(
        ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=thread", "-Wall", "-Wextra", "-Werror", "-pthread",
         "-Icsrc", "-Icsrc/host", *SOURCES, "-o", str(exe)], cwd=ROOT, capture_output=True, text=True)
    if build.returncode != 0 and "tsan" in build.stderr:
        pytest.skip("gcc has no ThreadSanitizer runtime here")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), "12"], capture_output=True, text=True, timeout=120,
                         env={"TSAN_OPTIONS": "halt_on_error=1"})
    if "FATAL: ThreadSanitizer" in run.stderr and "memory layout" in run.stderr:
        pytest.skip("ThreadSanitizer cannot run under this kernel's address-space layout")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("PASS host paths: 12 cases")
