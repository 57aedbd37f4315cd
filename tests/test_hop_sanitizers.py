"""The hopping network's C kernel (csrc/host/hge_hop_solve.c) under AddressSanitizer and
UndefinedBehaviorSanitizer: tests/c/hop_solve_check.c allocates every buffer to its exact size
(the workspace to hge_hop_work_doubles, outputs with strides equal to the point count) and runs
networks of 2, 10 and 64 sites, the tensors, and the refusals. Built at -O0 (the sanitizers'
checks, not speed)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["csrc/host/hge_hop_solve.c", "tests/c/hop_solve_check.c"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_hop_kernel_under_sanitizers(tmp_path):
    exe = tmp_path / "hop_solve_check"
    build = subprocess.run(
        ["gcc", "-std=c99", "-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Werror", "-Icsrc", "-Icsrc/host", *SOURCES, "-lm",
         "-o", str(exe)], cwd=ROOT, capture_output=True, text=True)
    if build.returncode != 0 and "cannot find" in build.stderr and "asan" in build.stderr:
        pytest.skip("gcc has no sanitizer runtime here")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                         env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                              "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("PASS hop kernel: ")
