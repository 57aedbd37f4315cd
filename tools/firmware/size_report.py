#!/usr/bin/env python3
"""Flash, RAM and stack of the core per target, and the cycle estimate, from a `make check` build.

Flash: .text* + .rodata* of the core's own objects (not the harness or vectors), from
`arm-none-eabi-size -A`. Sine table: its symbol size. RAM per terminal: the sizeof the
target itself printed (STATE line). Stack: the largest `-fstack-usage` figure of the
process functions. Cycles: instructions per terminal-sample counted under QEMU
-icount (TIMING line: 7 terminals x 1000 samples, SysTick ticks x virtual ns per tick, to 0.1),
converted with the Cortex-M4's 1-2 cycles per instruction
(single-cycle ALU and 32x32->64 MAC, two-cycle loads/stores, pipelined in runs).
m0-* targets run on QEMU's micro:bit, a real Cortex-M0 (ARMv6-M); their
line says how many terminals at 10 kHz a 48 MHz Cortex-M0+ carries at 1 and at 1.5
cycles per instruction (single-cycle multiply and ALU, two-cycle loads, stores and
taken branches; the emulator counts instructions, not cycles).
selftest: the harness's SELFTEST line (the target's own kernels against int64 references).
"""
import pathlib
import re
import subprocess
import sys

CORE = ["hge_lockin", "hge_nco", "hge_sine_table", "hge_update"]


def flash_bytes(obj: pathlib.Path) -> int:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (parts[0].startswith(".text") or parts[0].startswith(".rodata")):
            total += int(parts[1])
    return total


def main() -> int:
    build = pathlib.Path(sys.argv[1])
    print(f"{'target':10s} {'core flash':>10s} {'sine table':>10s} {'bw3 B/term':>10s} {'box B/term':>10s} "
          f"{'stack bw3':>9s} {'stack box':>9s} {'bw3 insn/ts':>11s} {'box insn/ts':>11s} {'selftest':>8s}")
    for target in sys.argv[2:]:
        d = build / target
        flash = sum(flash_bytes(d / f"{c}.o") for c in CORE)
        nm = subprocess.run(["arm-none-eabi-nm", "-S", str(d / "hge_sine_table.o")], capture_output=True,
                            text=True, check=True).stdout
        table = int(nm.split()[1], 16)
        log = (d / "run.log").read_text()
        bw3, box = re.search(r"bw3 (\d+), boxcar (\d+)", log).groups()
        t_bw3 = re.search(r"bw3 instructions per terminal-sample: ([\d.]+)", log).group(1)
        t_box = re.search(r"boxcar instructions per terminal-sample: ([\d.]+)", log).group(1)
        selftest = "yes" if re.search(r"^SELFTEST \S+: \d+ kernel runs equal", log, re.M) else "NO"
        stacks = {}
        for su in d.glob("*.su"):
            for line in su.read_text().splitlines():
                fn, size = line.split("\t")[0].split(":")[-1], int(line.split("\t")[1])
                stacks[fn] = size
        print(f"{target:10s} {flash:10d} {table:10d} {bw3:>10s} {box:>10s} "
              f"{stacks.get('hge_lockin_bw3_process', -1):9d} {stacks.get('hge_lockin_boxcar_process', -1):9d} "
              f"{t_bw3:>11s} {t_box:>11s} {selftest:>8s}")
        per_ts = float(t_bw3)
        if target.startswith("m0"):
            fit = [int(48e6 / (10_000 * per_ts * cpi)) for cpi in (1.0, 1.5)]
            print(f"{'':10s} Cortex-M0+ at 48 MHz, Butterworth at 10 kHz: {per_ts:.1f} instructions per "
                  f"terminal-sample -> {fit[0]} terminals at 1 cycle/instruction, {fit[1]} at 1.5; "
                  f"7 terminals take {100 * 7 * 10_000 * per_ts / 48e6:.0f}-"
                  f"{150 * 7 * 10_000 * per_ts / 48e6:.0f} % of the core")
        if target.startswith("m4"):
            fit = [int(100e6 / (10_000 * per_ts * cpi)) for cpi in (1.0, 2.0)]
            load = 7 * 10_000 * per_ts / 100e6
            print(f"{'':10s} Cortex-M4 at 100 MHz, Butterworth at 10 kHz: {per_ts:.1f}-{2 * per_ts:.1f} cycles "
                  f"per terminal-sample -> {fit[0]} terminals at 1 cycle/instruction, {fit[1]} at 2 "
                  f"(one instance serves up to 256); 7 terminals take {100 * load:.1f}-{200 * load:.1f} % of the core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
