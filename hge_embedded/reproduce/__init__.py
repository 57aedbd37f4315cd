"""``hge reproduce``: the paper's figures and claims next to the project's, from one command.

Each figure ID (as in Boon et al., "Gradient descent in materia through homodyne
gradient extraction") maps to a function ``run(ctx) -> list[Row]`` that writes
``DIR/<ID>/`` (data with units in the column names and a PNG laid out like the
paper's panel) and returns one row per claim. ``run`` writes ``DIR/summary.md``
and ``DIR/summary.json`` and returns ``{"rows": [...]}``.
"""
from __future__ import annotations

import time
from pathlib import Path

from .common import ROW_FIELDS, Context, Row, clean, write_json
from .fig1 import run_1c
from .fig2 import run_2b, run_2c, run_2d, run_2e
from .fig3 import run_3b, run_3c, run_3d
from .fig4 import run_4a, run_4b, run_4c, run_4d
from .speedup import run_speedup

FIGURES = {
    "1c": run_1c, "2b": run_2b, "2c": run_2c, "2d": run_2d, "2e": run_2e,
    "3b": run_3b, "3c": run_3c, "3d": run_3d,
    "4a": run_4a, "4b": run_4b, "4c": run_4c, "4d": run_4d,
    "speedup": run_speedup,
}

__all__ = ["FIGURES", "ROW_FIELDS", "Context", "Row", "check_args", "run", "summary_markdown"]


def check_args(figures, seed) -> list:
    """The figure IDs to run (default all, in the paper's order); ``ValueError`` naming a bad ID or seed."""
    ids = list(FIGURES) if not figures else list(dict.fromkeys(str(f) for f in figures))
    unknown = [f for f in ids if f not in FIGURES]
    if unknown:
        raise ValueError(f"figure: unknown ID {unknown[0]!r}; choose from {', '.join(FIGURES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return ids


def run(out, *, figures=None, quick: bool = False, paper_mode: bool = False, seed: int = 0,
        progress: bool = True) -> dict:
    """Run the figures (default all, in the paper's order) and write the summary.

    Returns ``{"rows": [row dicts], "figures": [...], "quick", "paper_mode", "seed", "wall_time_s"}``.
    Raises ``ValueError`` naming an unknown figure ID.
    """
    ids = check_args(figures, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, quick=quick, paper_mode=paper_mode, seed=seed, progress=progress)
    rows, timing, t0 = [], {}, time.perf_counter()
    for fid in ids:
        t1 = time.perf_counter()
        for row in FIGURES[fid](ctx):
            if row.verdict == "disagree" and "why:" not in row.parameters:
                # Every disagreement must say why; a figure that has no analysis for this case says so.
                row.parameters += (f"; why: not analysed by the figure's code for this outcome; the data and "
                                   f"the PNG are in {fid}/")
            rows.append(row)
        timing[fid] = time.perf_counter() - t1
    summary = {"rows": [r.to_dict() for r in rows], "figures": ids, "quick": quick, "paper_mode": paper_mode,
               "seed": seed, "wall_time_s": time.perf_counter() - t0, "wall_time_per_figure_s": timing}
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(summary_markdown(summary))
    return clean(summary)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: dict) -> str:
    """The summary as a Markdown table (parameters in a numbered list under it, to keep the table readable)."""
    mode = "paper mode (the method as published)" if summary.get("paper_mode") else \
        "project mode (the project's improvements)"
    lines = [f"# hge reproduce: {mode}{', --quick' if summary.get('quick') else ''}, seed {summary.get('seed')}",
             "", "| # | figure | claim | paper | project | uncertainty | verdict |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(summary["rows"], 1):
        lines.append("| " + " | ".join([str(i)] + [_cell(r[k]) for k in ROW_FIELDS[:-1]]) + " |")
    lines += ["", "Parameters, assumptions and verdict rules:", ""]
    lines += [f"{i}. {r['figure']}: {r['parameters']}" for i, r in enumerate(summary["rows"], 1)]
    return "\n".join(lines) + "\n"
