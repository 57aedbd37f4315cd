"""Saturation of the output chain: samples on the ADC / IV converter's rail, or stuck.

A clipped window silently shrinks every derivative (half a tone clipped reads
~56 % of the truth; a window on the rail reads exactly 0 with a tiny stderr).
Two signs, both counted per window:

* samples at or beyond the device's ``full_scale`` (nA at the ADC's full
  scale), when the device states it;
* runs of at least ``RUN_MIN`` identical consecutive samples at the window's
  smallest or largest value (a rail the device does not state, or an output
  that does not move at all). A perturbed window of a working device never
  repeats its extreme value 16 times in a row: a 1 kHz tone at 10 kHz moves by
  ~30 % of its amplitude per sample, and noise moves every sample;
* a pile-up at the window's smallest or largest value: at least ``RUN_MIN``
  samples equal to it (not necessarily consecutive) and at least ``PILE_RATIO``
  times as many as at any of the ``NEXT_LEVELS`` values nearest inside. A multi-tone window clipped near its
  crests never sits on the rail for 16 samples in a row (each crest is a few
  samples), yet half its samples can be clipped and every derivative halved; a
  rail collects every sample beyond it. Why the ratio cannot fire without a
  rail: unquantised float samples repeat a value only when the signal is
  periodic in the window, and then every level repeats equally often (ratio
  ~1); samples quantised to codes spend, near a smooth crest, a time that
  grows as sqrt(depth) below it (the crest is locally a parabola), so the top
  code holds at most 1/(sqrt(2) - 1) ~ 2.4 times what the next one holds
  (a pure sinusoid; noise and other tones only thin the crest), and the codes
  further down hold less still. 4 leaves room. The parabola needs a crest over a few
  codes: a window of only two values (a sine of a code or less) is nothing but its two
  extremes, each the other's "next level", and its share on one of them can be anything (a
  clean sine of 0.45 codes on 0.1: 85 % at its bottom code), so the rule needs at least
  ``PILE_MIN_VALUES`` = 3 distinct values. From three on, a pure sine's top code holds at
  most 2.3 times the largest of the ``NEXT_LEVELS`` codes inside it (computed: amplitudes
  0.2-12 codes, every offset on the code grid, phase sampled densely; 1.58 for a spread of
  2 codes, rising towards the parabola's 2.41), and at most 3 times when sampled at the few
  phases per period of the plan's tones (every plan frequency of 7 and 2 electrodes and
  0.5-2.5 kHz at 10 kHz, 37 phases, amplitudes 0.2-8 codes, 20 offsets): under 4. A rail on
  a window of two values is left to the run rule (and ``full_scale``). A noise-free periodic window
  (one tone, sequential mode) repeats every level equally often, but its first
  period can differ in the last digits (the chain's onset): a stray value or
  two between the top level and the next, hence the several nearest values.
* a shelf: at least ``SHELF_FRACTION`` of the window within ``SHELF_BAND`` of its
  spread (between its 0.5 % and 99.5 % points) from one end. A rail followed by the
  ADC's own noise (the AI's noise is downstream of a clipping IV converter) spreads
  the clipped samples over distinct values a few noise SDs wide, so neither rule
  above sees them; they still crowd into a narrow band at the end. Why a working
  window does not: a pure sinusoid, the most crest-heavy smooth signal the plan
  makes, spends (1/pi) arccos(1 - 2 x 0.005) = 4.5 % of its time within 0.5 % of its
  peak-to-peak from a crest; a sum of tones and noise (Gaussian-like) far less.
  12 % is 2.7x the sinusoid. The percentiles keep a single glitch from stretching
  the band. The share assumes a continuous crest: a noise-free tone sampled at a
  few phases per period repeats its crest value (2 of 10 samples for a 1 kHz tone
  at 10 kHz), so the band must also hold values spread over at least
  ``SHELF_STEPS`` 64ths of it, as the noise after a rail does, or stretches of 3 or
  more samples on average, as a rail holds the output (a tone that quiet, noise under
  1/64 of the band, with a crest that short is a known false alarm).
  The share also assumes a band many quantisation steps wide; a band under
  ``SHELF_STEPS`` of the window's smallest step between values (an output of a few
  codes) is left to the pile-up rule. Not seen: a window clipped less than that at
  each rail, or whose noise after the rail is wider than the band (6 SD > 0.5 % of
  the spread).
"""
from __future__ import annotations

import numpy as np

RUN_MIN = 16
PILE_RATIO = 4
NEXT_LEVELS = 4
PILE_MIN_VALUES = 3     # the pile-up rule needs a window of at least 3 distinct values (see the docstring)
SHELF_BAND = 0.005      # of the window's spread
SHELF_FRACTION = 0.12   # of the window's samples, at one end
SHELF_STEPS = 4         # the band must span this many of the window's smallest steps between values
SATURATION = ("raise", "count")


class SaturationError(ValueError):
    """A window's output sits on a rail (``check_saturation`` with ``policy="raise"``). A
    ``ValueError``, so callers that catch that keep working; the trainer catches this one to
    end only the task whose output reached the rail."""


def saturated_samples(y, full_scale: float | None = None, *, runs: bool = True) -> int:
    """Number of samples of one window that sit on a rail (see the module docstring).

    ``runs=False`` counts only samples at ``full_scale``: for unperturbed (DC)
    windows, where a noise-free device legitimately repeats one value."""
    y = np.asarray(y, float)
    bad = np.zeros(y.size, bool)
    if full_scale:
        bad |= np.abs(y) >= full_scale * (1 - 1e-9)
    for extreme in (y.min(), y.max()) if runs else ():
        on = y == extreme
        n_on = int(on.sum())
        if RUN_MIN <= n_on < y.size:
            # The most populated of the NEXT_LEVELS values nearest inside: one stray sample just
            # inside the extreme (a window's onset) must not stand for a periodic level's count.
            # Levels to 1e-9 of the window's spread: a noise-free tone on a large DC offset repeats
            # its values only to the last digits, which would split a level into variants.
            inside, res = y[~on], (y.max() - y.min()) * 1e-9
            levels, counts = np.unique(np.round(inside / res) if res > 0 else inside, return_counts=True)
            near = counts[-NEXT_LEVELS:] if extreme == y.max() else counts[:NEXT_LEVELS]
            # PILE_MIN_VALUES: a window of two values is all extremes, each the other's "next level";
            # a clean sine of two codes puts any share on either (0.45 codes: 85 % on one).
            if levels.size + 1 >= PILE_MIN_VALUES and n_on >= PILE_RATIO * int(near.max()):
                bad |= on
        for start, stop in zip(*_stretches(on)):
            if stop - start >= RUN_MIN:
                bad[start:stop] = True
    if runs and not bad.any():   # the shelf is for rails the exact rules cannot see (its band also
        bad |= _shelf(y)         # holds a few unclipped samples next to the rail: a count, not exact)
    return int(bad.sum())


def _shelf_suspects(Y) -> np.ndarray:
    """Rows of ``Y`` (K, n) whose min/max band already holds ``SHELF_FRACTION`` (cheap, one pass;
    the percentile test in ``_shelf`` decides)."""
    mx, mn = Y.max(axis=1, keepdims=True), Y.min(axis=1, keepdims=True)
    w = SHELF_BAND * (mx - mn)
    need = max(RUN_MIN, SHELF_FRACTION * Y.shape[1])
    return ((Y >= mx - w).sum(axis=1) >= need) | ((Y <= mn + w).sum(axis=1) >= need)


def _shelf(y) -> np.ndarray:
    """The samples of one window in a shelf at either end (see the module docstring)."""
    bad = np.zeros(y.size, bool)
    if y.size < RUN_MIN or not _shelf_suspects(y[None, :])[0]:
        return bad
    lo, hi = np.percentile(y, [0.5, 99.5])
    w = SHELF_BAND * (hi - lo)
    need = max(RUN_MIN, SHELF_FRACTION * y.size)
    levels = np.unique(y)
    if levels.size < 2 or w < SHELF_STEPS * np.min(np.diff(levels)):
        return bad   # a band of a few quantisation steps: the crest share above assumes many (pile-up rule's case)
    for band in (y >= hi - w, y <= lo + w):
        if w > 0 and band.sum() >= need and (_spread_levels(y[band], w) >= SHELF_STEPS or _mean_run(band) >= 3):
            bad |= band
    return bad


def _stretches(mask):
    """Starts and stops (exclusive) of the stretches of consecutive True samples in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return edges[::2], edges[1::2]


def _mean_run(band) -> float:
    """Mean length of the band's stretches of consecutive samples: a rail holds the output for
    whole stretches; a sampled crest visits for one or two samples per period."""
    starts, stops = _stretches(band)
    return float(np.mean(stops - starts)) if starts.size else 0.0


def _spread_levels(v, w) -> int:
    """Occupied 64ths of the band ``w`` among ``v``: a rail followed by noise fills many; a
    noise-free tone sampled at a few phases per period repeats one or two values (a 1 kHz tone
    at 10 kHz can put 2 of every 10 samples on its crest), which is not a rail."""
    return int(np.unique(np.floor((v - v.min()) / (w / 64.0))).size)


def check_saturation(y, full_scale, *, what: str, policy: str = "raise", runs: bool = True) -> int:
    """Count saturated samples of a window; raise (``policy="raise"``) if there are any."""
    count = saturated_samples(y, full_scale, runs=runs)
    if count and policy == "raise":
        fs_txt = f"at or beyond full_scale = {full_scale:g} nA, or " if full_scale else ""
        raise SaturationError(f"{what}: {count} of {np.size(y)} samples are saturated ({fs_txt}stuck at the window's "
                              f"extreme for >= {RUN_MIN} samples, or piled up or crowded at it: clipped); the derivatives would "
                              f"be too small. Move the bias "
                              f"away from the rail, lower the amplitude or the IV gain, or pass saturation='count' to "
                              f"accept the window and get the count in the result")
    return count


def saturated_counts(windows, full_scale: float | None = None) -> np.ndarray:
    """``saturated_samples`` of every row of ``windows`` (K, n), with runs; the same counts.

    Vectorised over the rows, and cheap for the usual row that no rule can flag: only rows that
    could be flagged are handed to ``saturated_samples``. A row is searched when

    * a sample may be at ``full_scale``: its max is not below the threshold, or its min not
      above minus it (``|y| >= t`` is ``y >= t or y <= -t``; NaN makes a row searched);
    * or it holds ``RUN_MIN`` samples at its min or max (a run or a pile-up needs that many),
      or ``SHELF_FRACTION`` of it within ``SHELF_BAND`` of its spread from either end
      (``_shelf_suspects``). The samples at the max lie in the band at the max (band width >= 0),
      so a row with fewer than ``RUN_MIN`` in both bands can have neither; the counts at the
      extremes are only made for the rows with that many in a band.

    Every other row's count is 0 (no sample at full scale, nothing for the other rules).
    """
    y = np.asarray(windows, float)
    if y.ndim != 2:
        raise ValueError(f"windows must be 2-D (K, n), got shape {y.shape}")
    counts = np.zeros(y.shape[0], np.int64)
    if y.shape[0] == 0 or y.shape[1] == 0:
        return counts
    if y.shape[0] == 1:   # one window (extract_gradient): the same screen on scalars, fewer array passes
        if _suspect_row(y[0], full_scale):
            counts[0] = saturated_samples(y[0], full_scale)
        return counts
    mx, mn = y.max(axis=1), y.min(axis=1)
    suspects = np.zeros(y.shape[0], bool)
    if full_scale:
        t = full_scale * (1 - 1e-9)
        suspects |= ~(mx < t) | ~(mn > -t)
    if y.shape[1] >= RUN_MIN:   # shorter rows hold no RUN_MIN samples anywhere: only full scale applies
        w = SHELF_BAND * (mx - mn)
        need = max(RUN_MIN, SHELF_FRACTION * y.shape[1])
        hi = (y >= (mx - w)[:, None]).sum(axis=1)
        lo = (y <= (mn + w)[:, None]).sum(axis=1)
        suspects |= (hi >= need) | (lo >= need) | ~np.isfinite(w)
        crowded = np.flatnonzero(((hi >= RUN_MIN) | (lo >= RUN_MIN)) & ~suspects)
        if crowded.size:
            yc = y[crowded]
            at_min = (yc == mn[crowded, None]).sum(axis=1)
            at_max = (yc == mx[crowded, None]).sum(axis=1)
            suspects[crowded[(at_min >= RUN_MIN) | (at_max >= RUN_MIN)]] = True
    for k in np.flatnonzero(suspects):
        counts[k] = saturated_samples(y[k], full_scale)
    return counts


def _suspect_row(row, full_scale) -> bool:
    """``saturated_counts``' screen for one row, on scalars: True where that screen hands the row on."""
    mx, mn = row.max(), row.min()
    if full_scale:
        t = full_scale * (1 - 1e-9)
        if not (mx < t) or not (mn > -t):
            return True
    if row.size < RUN_MIN:
        return False
    w = SHELF_BAND * (mx - mn)
    if not np.isfinite(w):
        return True
    hi = np.count_nonzero(row >= mx - w)
    lo = np.count_nonzero(row <= mn + w)
    need = max(RUN_MIN, SHELF_FRACTION * row.size)
    if hi >= need or lo >= need:
        return True
    if hi >= RUN_MIN or lo >= RUN_MIN:
        return bool(np.count_nonzero(row == mn) >= RUN_MIN or np.count_nonzero(row == mx) >= RUN_MIN)
    return False
