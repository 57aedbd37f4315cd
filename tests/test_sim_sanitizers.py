"""The simulator's C kernels (csrc/host/hge_sim_*.c) under AddressSanitizer and
UndefinedBehaviorSanitizer: tests/c/sim_kernels_check.c allocates every buffer to its exact
size and runs windows and ramps that end on the last sample, partial blocks, every isa of the
Taylor kernel (bit for bit) and the refusals. Built at -O0 (the sanitizers' checks, not speed)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402

SOURCES = ["csrc/host/hge_sim_taylor.c", "csrc/host/hge_sim_ramp.c", "csrc/host/hge_sim_runs.c",
           "csrc/host/hge_sim_dac.c", "csrc/host/hge_sim_chain.c", "tests/c/sim_kernels_check.c"]


def test_sim_kernels_under_sanitizers(tmp_path):
    assert run_sanitized(tmp_path, "sim_kernels_check", SOURCES).startswith("PASS sim kernels: ")
