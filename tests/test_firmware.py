"""The core on Cortex-M0+ and Cortex-M4 under QEMU: bit-exact against the Python model.

Skips only when the cross toolchain or QEMU is absent outside CI; in CI (CI=true)
their absence is a failure, since .ci/run installs them.
"""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

FIRMWARE = pathlib.Path(__file__).resolve().parents[1] / "tools" / "firmware"
HAVE = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("make")

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def firmware_run():
    if not HAVE:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have gcc-arm-none-eabi and qemu-system-arm (.ci/run installs them)")
        pytest.skip("gcc-arm-none-eabi or qemu-system-arm not installed (apt-get install gcc-arm-none-eabi "
                    "libnewlib-arm-none-eabi qemu-system-arm)")
    r = subprocess.run(["make", "-C", str(FIRMWARE), "clean", "size"], capture_output=True, text=True, timeout=900)
    return r


def test_every_target_passes_bit_exact(firmware_run):
    out = firmware_run.stdout + firmware_run.stderr
    assert firmware_run.returncode == 0, out[-3000:]
    passes = re.findall(r"^PASS (\S+): (\d+) vectors, (\d+) output words", out, re.M)
    # m0-*: the same harness on QEMU's micro:bit, a real Cortex-M0 (ARMv6-M).
    assert {"m0-O2", "m0-Os", "m0plus-O2", "m0plus-Os", "m4-O2", "m4-Os"} <= {p[0] for p in passes}
    assert all(int(p[1]) >= 20 and int(p[2]) >= 400 for p in passes)


def test_every_target_self_tests_its_kernels(firmware_run):
    # The harness compares the kernels the core selects on each target (Cortex-M4 asm,
    # Cortex-M0 asm, or portable C) with int64 references over random states and the exact
    # saturation edges. One SELFTEST line per target that passed: a vanished line fails.
    out = firmware_run.stdout
    selftests = re.findall(r"^SELFTEST (\S+): (\d+) kernel runs equal", out, re.M)
    passed = re.findall(r"^PASS (\S+): \d+ vectors", out, re.M)
    assert sorted(t for t, _ in selftests) == sorted(passed), out[-3000:]
    assert all(int(n) >= 2000 for _, n in selftests)


def test_state_and_flash_targets_from_the_target(firmware_run):
    out = firmware_run.stdout
    states = re.findall(r"^STATE (\S+) bytes per terminal: bw3 (\d+), boxcar (\d+)", out, re.M)
    passed = re.findall(r"^PASS (\S+): \d+ vectors", out, re.M)
    # One line per lock-in target that passed: a vanished line must fail, not pass vacuously.
    assert sorted(t for t, _, _ in states) == sorted(passed), out[-3000:]
    assert {"m0-O2", "m0-Os", "m0plus-O2", "m0plus-Os", "m4-O2", "m4-Os"} <= set(passed)
    for _, bw3, box in states:
        assert int(bw3) <= 72 and int(box) <= 24
    row = re.search(r"^m4-Os\s+(\d+)\s+(\d+)", out, re.M)
    assert row, out
    assert int(row.group(1)) <= 4096  # core flash at -Os for Cortex-M4
    assert int(row.group(2)) <= 2048  # the sine table
