"""Build a C check program with AddressSanitizer + UndefinedBehaviorSanitizer and run it (the tests of the
C kernels with exact-size buffers). One place for the flags, the skip when gcc has no sanitizer runtime,
and the run's environment. Built at -O0: the sanitizers' checks, not speed."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = ["-std=c99", "-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Werror", "-Icsrc", "-Icsrc/host"]
ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def run_sanitized(tmp_path, name: str, sources, *, args=(), extra_flags=(), timeout: float = 120.0):
    """Compile ``sources`` (paths from the repository root) into ``tmp_path / name``, run it with ``args``
    and return its stdout; the test fails on a build error or a non-zero exit (a sanitizer report)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    exe = tmp_path / name
    build = subprocess.run(["gcc", *FLAGS, *extra_flags, *sources, "-lm", "-o", str(exe)], cwd=ROOT,
                           capture_output=True, text=True)
    if build.returncode != 0 and "cannot find" in build.stderr and "asan" in build.stderr:
        pytest.skip("gcc has no sanitizer runtime here")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout
