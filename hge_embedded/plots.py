"""PNG figures written next to a run's JSON: learning curves, gate outputs (Fig. 4a), sphere (Fig. 4b-c)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def learning_curves(results, path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        if r.losses:
            ax.semilogy(np.arange(1, len(r.losses) + 1), r.losses, label=r.task)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss E")
    if 0 < len(results) <= 16:
        ax.legend(fontsize=6, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gate_outputs(results, tasks, path) -> None:
    """Output current of the four cases per gate with the read-out threshold (the middle of the class gap)."""
    plt = _plt()
    n = len(results)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax, r, t in zip(axes.flat, results, tasks):
        z = t.targets
        colors = ["tab:green" if v else "tab:orange" for v in z]
        ax.bar(range(4), r.outputs, color=colors)
        if z.min() != z.max():
            ax.axhline(0.5 * (r.outputs[z == 1].min() + r.outputs[z == 0].max()), color="k", ls="--", lw=1)
        ax.set_xticks(range(4), ["00", "01", "10", "11"])
        ax.set_title(f"{t.extra.get('bits', t.name)} {'found' if r.found else 'not found'}", fontsize=8)
        ax.set_ylabel("I [nA]", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sphere_outputs(result, task, path_radius, path_scatter) -> None:
    plt = _plt()
    X, z, y = task.test_inputs, task.test_targets, result.test_outputs
    r = np.linalg.norm(X, axis=1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(r[z == 1], y[z == 1], s=6, c="tab:green", label="inner (1)")
    ax.scatter(r[z == 0], y[z == 0], s=6, c="tab:orange", label="shell (0)")
    ax.axhline(result.threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_xlabel("distance from centre [V]")
    ax.set_ylabel("output current [nA]")
    ax.set_title(f"test balanced accuracy {result.accuracy:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_radius, dpi=120)
    plt.close(fig)
    fig = plt.figure(figsize=(5, 4.5))
    ax = fig.add_subplot(projection="3d")
    sc = ax.scatter(X[:, 0], X[:, 1], X[:, 2], c=y, s=5, cmap="viridis")
    fig.colorbar(sc, ax=ax, shrink=0.7, label="I [nA]")
    ax.set_xlabel("V2 [V]")
    ax.set_ylabel("V4 [V]")
    ax.set_zlabel("V6 [V]")
    fig.tight_layout()
    fig.savefig(path_scatter, dpi=120)
    plt.close(fig)


def write_all(out: Path, results, tasks) -> list:
    files = [out / "learning_curve.png"]
    learning_curves(results, files[0])
    gates = [(r, t) for r, t in zip(results, tasks) if t.kind == "gate"]
    if gates:
        files.append(out / "gate_outputs.png")
        gate_outputs([g[0] for g in gates], [g[1] for g in gates], files[-1])
    for r, t in zip(results, tasks):
        if t.kind == "sphere":
            files += [out / "sphere_radius.png", out / "sphere_scatter.png"]
            sphere_outputs(r, t, files[-2], files[-1])
    return files
