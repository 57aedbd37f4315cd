"""Closed-loop training with nothing but the firmware image (QEMU): Cortex-M0 on -M microbit and
Cortex-M4 on -M mps2-an386 train XOR against the integer device model, and their loss
trajectories equal the Python model's word for word.

Skips only when the cross toolchain or QEMU is absent outside CI (as tests/test_firmware.py).
"""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from hge_embedded.reference import toy_device as td
from hge_embedded.reference import trainer_fixed as tf

FIRMWARE = pathlib.Path(__file__).resolve().parents[1] / "tools" / "firmware"
HAVE = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and shutil.which("make")
TARGETS = ["m0-Os", "m4-O2"]

pytestmark = pytest.mark.firmware


@pytest.fixture(scope="module")
def loop_run():
    if not HAVE:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have gcc-arm-none-eabi and qemu-system-arm (.ci/run installs them)")
        pytest.skip("gcc-arm-none-eabi or qemu-system-arm not installed")
    for t in TARGETS:  # run the images again even when the build is up to date
        (FIRMWARE / "build" / f"train-{t}" / "run.log").unlink(missing_ok=True)
    return subprocess.run(["make", "-C", str(FIRMWARE), "train-size"], capture_output=True, text=True, timeout=900)


def test_both_images_train_xor(loop_run):
    out = loop_run.stdout + loop_run.stderr
    assert loop_run.returncode == 0, out[-3000:]
    found = dict(re.findall(r"^PASS train-(\S+): xor \(0110\) found in (\d+) iterations", out, re.M))
    assert sorted(found) == TARGETS


def test_image_trajectory_equals_the_python_model(loop_run):
    """The Python model of the same closed loop (run here, not read from the image)."""
    assert loop_run.returncode == 0
    cfg, inputs, targets = td.closed_loop_config("0110", max_iter=100)
    model = tf.TrainerModel(cfg, inputs, targets)
    want = td.run_closed_loop(model, td.ToyDevice(), block=64)
    assert want[-1] < cfg["stop_loss"] <= want[0]  # it trained, from above the stop
    for t in TARGETS:
        log = (FIRMWARE / "build" / f"train-{t}" / "run.log").read_text()
        got = [int(v) for v in re.findall(rf"^LOSS {t} \d+ (-?\d+)$", log, re.M)]
        assert got == want, t
        assert f"found in {model.iteration} iterations" in log


def test_size_report_fits_the_microbit(loop_run):
    out = loop_run.stdout
    rows = {m.group(1): [int(x) for x in m.groups()[2:]] for m in re.finditer(
        r"^(m0-Os|m4-O2)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.M)}
    assert sorted(rows) == TARGETS, out
    flash, libgcc, inst, per_point, stack, ips = rows["m0-Os"]
    assert flash + libgcc < 256 * 1024 and inst + stack + 300 * per_point < 16 * 1024  # sphere fits, too
    assert 0 < ips < 5000
