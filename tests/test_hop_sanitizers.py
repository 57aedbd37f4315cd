"""The hopping network's C kernel (csrc/host/hge_hop_solve.c) under AddressSanitizer and
UndefinedBehaviorSanitizer: tests/c/hop_solve_check.c allocates every buffer to its exact size
(the workspace to hge_hop_work_doubles, outputs with strides equal to the point count) and runs
networks of 2, 10 and 64 sites, the tensors, and the refusals. Built at -O0 (the sanitizers'
checks, not speed)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402

SOURCES = ["csrc/host/hge_hop_solve.c", "tests/c/hop_solve_check.c"]


def test_hop_kernel_under_sanitizers(tmp_path):
    assert run_sanitized(tmp_path, "hop_solve_check", SOURCES).startswith("PASS hop kernel: ")
