"""The simulator's C kernels (csrc/host/hge_sim_*.c) under AddressSanitizer and
UndefinedBehaviorSanitizer: tests/c/sim_kernels_check.c allocates every buffer to its exact
size and runs windows and ramps that end on the last sample, partial blocks, every isa of the
Taylor kernel (bit for bit) and the refusals. Built at -O0 (the sanitizers' checks, not speed)."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["csrc/host/hge_sim_taylor.c", "csrc/host/hge_sim_ramp.c", "csrc/host/hge_sim_runs.c",
           "csrc/host/hge_sim_dac.c", "csrc/host/hge_sim_chain.c", "tests/c/sim_kernels_check.c"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_sim_kernels_under_sanitizers(tmp_path):
    exe = tmp_path / "sim_kernels_check"
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
    assert run.stdout.startswith("PASS sim kernels: ")
