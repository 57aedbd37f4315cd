#!/usr/bin/env python3
"""Flash, RAM and speed of the whole on-device trainer per target, from `make train-check`.

Flash: the .text/.rodata input sections the linker kept (map file) from the trainer's own
objects (trainer, corrsig, fixmath, synth, board, lock-in, NCO, sine table, update) plus the
libgcc helpers they pull in (64-bit division and, on ARMv6-M, multiplication); the harness
and the device model are not counted. RAM: sizeof(hge_trainer_t) as the target printed it
(capacity for 8 DAC channels and 8 controls), the workspace per data point (y, q and one
dI/dV per control: 4 (2 + M) bytes), and the stack of the deepest path (main-loop poll:
the sum of the -fstack-usage frames of poll -> corrsig -> ratio -> div_round). Speed:
instructions per sample of the whole loop (synthesis, DC, lock-in, window ends, loss,
chain rule, update) counted under QEMU -icount, averaged over the run.
"""
import pathlib
import re
import sys

OWN = {"hge_trainer", "hge_corrsig", "hge_fixmath", "hge_synth", "hge_board", "hge_lockin", "hge_nco",
       "hge_sine_table", "hge_update"}
POLL_CHAIN = ["hge_trainer_poll", "hge_corrsig", "hge_ratio", "hge_div_round"]


def kept_sections(mapfile: pathlib.Path):
    own = lib = 0
    text = mapfile.read_text()
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^ (\.(?:text|rodata)\S*)\s*(0x[0-9a-f]+)?\s*(0x[0-9a-f]+)?\s*(\S+)?$", line)
        if m:
            name, addr, size, obj = m.groups()
            if size is None and i + 1 < len(lines):  # long section names wrap onto the next line
                m2 = re.match(r"^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)$", lines[i + 1])
                if m2:
                    addr, size, obj = m2.groups()
                    i += 1
            if size and obj:
                n = int(size, 16)
                stem = pathlib.Path(obj.split("(")[0]).stem
                if stem in OWN:
                    own += n
                elif "libgcc" in obj:
                    lib += n
        i += 1
    return own, lib


def main() -> int:
    build = pathlib.Path(sys.argv[1])
    print(f"{'target':12s} {'board':10s} {'flash own':>9s} {'+libgcc':>8s} {'RAM inst':>8s} {'B/point':>7s} "
          f"{'stack':>6s} {'insn/sample':>11s}")
    per_el = []
    for target in sys.argv[2:]:
        d = build / f"train-{target}"
        own, lib = kept_sections(d / "trainer.map")
        log = (d / "run.log").read_text()
        inst = int(re.search(r"trainer bytes (\d+)", log).group(1))
        per_point = int(re.search(r"workspace bytes per point (\d+)", log).group(1))
        per_dac, per_ctl = re.search(r"per DAC channel (\d+) per control (\d+)", log).groups()
        per_el.append(f"{target}: {per_dac} B per DAC channel, {per_ctl} B per control")
        ips = int(re.search(r"instructions per sample[^:]*: (\d+)", log).group(1))
        frames = {}
        for su in d.glob("*.su"):
            for line in su.read_text().splitlines():
                fn = line.split("\t")[0].split(":")[-1]
                frames[fn] = int(line.split("\t")[1])
        stack = sum(frames.get(f, 0) for f in POLL_CHAIN)
        board = "microbit" if target.startswith("m0") else "mps2-an386"
        print(f"{target:12s} {board:10s} {own:9d} {lib:8d} {inst:8d} {per_point:7d} {stack:6d} {ips:11d}")
    print("RAM inst: the instance for up to 8 DAC channels and 8 controls; per electrode (sizeof its "
          "arrays): " + "; ".join(per_el) + " (+ 4 B per control per data point).")
    print("B/point: 4 (2 + M) with M = 5 controls; stack: poll -> corrsig chain.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
