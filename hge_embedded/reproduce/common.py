"""Shared pieces of ``hge reproduce``: the row type, the run context, progress, verdicts, files.

Everything a row reports is read from what runs; the paper's numbers are
constants next to the code that checks them, each citing its figure or
section of Boon et al., "Gradient descent in materia through homodyne
gradient extraction".
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

VERDICTS = ("agree", "partial", "disagree")
ROW_FIELDS = ("figure", "claim", "paper", "project", "uncertainty", "verdict", "parameters")


@dataclass
class Row:
    """One claim of the paper next to the project's number.

    ``paper`` and ``project`` are short strings with units (a figure, a
    ratio, "16/16"); ``uncertainty`` is the project's Monte Carlo
    uncertainty (one standard error unless it says otherwise) or "exact";
    ``verdict`` is one of ``VERDICTS`` and ``parameters`` says what was run,
    what the paper does not give and what was assumed, the verdict's rule and,
    for a disagreement, why.
    """

    figure: str
    claim: str
    paper: str
    project: str
    uncertainty: str
    verdict: str
    parameters: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def verdict_close(value: float, target: float, sigma: float, rel_tol: float, abs_tol: float = 0.0) -> str:
    """agree when ``|value - target| <= max(2 sigma, rel_tol |target|, abs_tol)``; partial up to twice that."""
    if not (math.isfinite(value) and math.isfinite(target)):
        return "disagree"
    tol = max(2.0 * abs(sigma) if math.isfinite(sigma) else 0.0, rel_tol * abs(target), abs_tol)
    d = abs(value - target)
    return "agree" if d <= tol else ("partial" if d <= 2 * tol else "disagree")


def fmt(x, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, NaN as 'n/a'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


class Progress:
    """Progress with an ETA on stderr: one updating line on a terminal, plain lines otherwise.

    ``total`` is in arbitrary work units (the figures count Monte Carlo
    samples); ``advance(k)`` adds ``k`` done. Non-terminal output is throttled
    to one line per ``every`` seconds so that logs stay short.
    """

    def __init__(self, label: str, total: float, *, stream=None, every: float = 5.0, enabled: bool = True):
        self.label, self.total = label, max(float(total), 1e-12)
        self.stream = sys.stderr if stream is None else stream
        self.every, self.enabled = every, enabled
        self.done = 0.0
        self.t0 = self._last = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, k: float = 1.0) -> None:
        self.done += k
        now = time.perf_counter()
        if self.enabled and (self.tty or now - self._last >= self.every):
            self._write(now)

    def _write(self, now: float, end: bool = False) -> None:
        self._last = now
        el = now - self.t0
        frac = min(self.done / self.total, 1.0)
        eta = el * (1 - frac) / frac if frac > 0 else float("nan")
        text = (f"reproduce {self.label}: {100 * frac:5.1f} % elapsed {el:6.1f} s"
                + ("" if end else f" ETA {eta:6.1f} s"))
        if self.tty:
            self.stream.write("\r" + text + ("\n" if end else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.done = self.total
            self._write(time.perf_counter(), end=True)


@dataclass
class Context:
    """What every figure gets: output directory, sizes, method switch, seed, shared results."""

    out: Path
    quick: bool = False
    paper_mode: bool = False
    seed: int = 0
    progress: bool = True
    cache: dict = field(default_factory=dict)

    def dir(self, figure: str) -> Path:
        d = Path(self.out) / figure
        d.mkdir(parents=True, exist_ok=True)
        return d

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *key]))

    def bar(self, label: str, total: float) -> Progress:
        return Progress(label, total, enabled=self.progress)

    @property
    def method(self) -> str:
        """How the rows say which read-out ran."""
        if self.paper_mode:
            return "paper mode: plain read-out (no crosstalk solve), 2R/a with the sign from the phase"
        return "project mode: calibrated projection and crosstalk solve (the project's improvements)"

    @property
    def hge_kwargs(self) -> dict:
        """Keywords of ``extract_gradient`` for the chosen method."""
        return paper_hge_kwargs() if self.paper_mode else {"phase": "calibrated", "crosstalk": "solve"}


def paper_hge_kwargs() -> dict:
    """The read-out as published: the plain lock-in output and ``2R/a`` with the sign from the phase."""
    return {"phase": "magnitude", "crosstalk": "none"}


def write_csv(path: Path, columns: dict) -> Path:
    """Columns (name with unit -> equal-length sequence) to CSV."""
    names = list(columns)
    cols = [np.asarray(columns[k]).ravel() for k in names]
    n = {c.size for c in cols}
    if len(n) != 1:
        raise ValueError(f"columns of {path.name} differ in length: {dict(zip(names, [c.size for c in cols]))}")
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for i in range(cols[0].size):
            w.writerow([_cell(c[i]) for c in cols])
    return path


def _cell(x):
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return x.item() if isinstance(x, np.generic) else x


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(clean(obj), indent=1))
    return path


def clean(obj):
    """JSON-safe: numpy to Python, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def plain_log_ticks(axis) -> None:
    """Plain numbers (0.2, 30) instead of 2x10^-1 on a log axis with few decades."""
    from matplotlib.ticker import ScalarFormatter
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(ScalarFormatter())


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: Path, rect=None) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def noise_psd(device):
    """One-sided noise PSD (nA^2/Hz, callable) of a simulated device: its ``noise_model.psd``."""
    model = getattr(device, "noise_model", None)
    if model is None:
        from ..devices.noise import NoiseModel
        model = NoiseModel()
    return model.psd


def coloured_noise(psd, n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of stationary Gaussian noise with one-sided PSD ``psd(f)`` (FFT shaping, one record).

    One record covers the whole run, so consecutive windows cut from it share
    the low-frequency wander (as on a rig); the record's length sets the lowest
    frequency present (1 / (n / fs)).
    """
    f = np.fft.rfftfreq(n, 1.0 / fs)
    s = np.zeros_like(f)
    s[1:] = psd(f[1:])
    # One-sided PSD s of a real series: E|X_k|^2 = s_k fs n / 2 for rfft bins 0 < k < n/2.
    amp = np.sqrt(s * fs * n / 4.0)
    spec = amp * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    if n % 2 == 0:
        spec[-1] = amp[-1] * np.sqrt(2.0) * rng.standard_normal()
    return np.fft.irfft(spec, n)


def mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(np.mean(x)), float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")


def var_se(x, axis=0):
    """Sample variance and its standard error ``var sqrt(2 / (n - 1))`` (Gaussian samples)."""
    x = np.asarray(x, float)
    n = x.shape[axis]
    v = np.var(x, axis=axis, ddof=1)
    return v, v * np.sqrt(2.0 / (n - 1))


def loglog_slope(x, y, y_se=None) -> tuple[float, float]:
    """Slope of log y against log x by least squares, with its standard error."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if lx.size < 3:
        s = (ly[-1] - ly[0]) / (lx[-1] - lx[0])
        se = float("nan")
        if y_se is not None:
            rel = np.asarray(y_se, float) / np.asarray(y, float)
            se = float(np.sqrt(rel[0] ** 2 + rel[-1] ** 2) / abs(lx[-1] - lx[0]))
        return float(s), se
    A = np.vstack([lx, np.ones_like(lx)]).T
    coef, res, *_ = np.linalg.lstsq(A, ly, rcond=None)
    if y_se is not None:
        # Propagate each point's relative error (weighted least squares covariance).
        rel = np.asarray(y_se, float) / np.asarray(y, float)
        W = np.diag(1.0 / rel**2)
        cov = np.linalg.inv(A.T @ W @ A)
        return float(coef[0]), float(np.sqrt(cov[0, 0]))
    dof = lx.size - 2
    s2 = float(np.sum((ly - A @ coef) ** 2) / dof)
    return float(coef[0]), float(np.sqrt(s2 * np.linalg.inv(A.T @ A)[0, 0]))


def trainer_init_kwargs(task, single: bool) -> dict:
    """Ask the trainer for one random start (``single=True``) in the one way it supports.

    The single-start trainer takes ``init="single"``; an older one starts from the
    best of ``task.init_candidates`` random settings, so one candidate is a
    single start. Checked once, here, by the constructor's signature.
    """
    import inspect

    from ..train import Trainer
    if not single:
        return {}
    if "init" in inspect.signature(Trainer.__init__).parameters:
        return {"init": "single"}
    task.init_candidates = 1
    return {}


def trainer_method_kwargs(paper_mode: bool) -> dict:
    """Trainer keywords for the method: the paper's read-out and loss, or the project's defaults.

    The paper's loss ``E = (1 - rho) / sigmoid(y_sep)`` (Methods) has no scale:
    with outputs in nA that is ``losses.corrsig`` with ``scale = 1 nA``.
    """
    if not paper_mode:
        return {}
    # (and the paper's fixed lr: no halving on a 2-cycle, train_checks.CycleCheck)
    return {"loss_scale": PAPER_LOSS_SCALE_NA, "lr_backoff": False, **paper_hge_kwargs()}


def paper_train_kwargs(task) -> dict:
    """Trainer keywords for the method as published (``--paper-mode``): single start drawn from the
    whole control range (the project's middle-half draw, ``train.DEFAULT_START``, is one of its own
    choices, not the paper's), loss, read-out."""
    kw = trainer_init_kwargs(task, single=True)
    kw.update(trainer_method_kwargs(True))
    kw["start"] = "full"
    return kw


# The Methods' loss is (1 - rho) / sigmoid(y_sep) with y_sep in the measured unit (nA):
# losses.corrsig's scale = 1 nA is that form exactly.
PAPER_LOSS_SCALE_NA = 1.0
