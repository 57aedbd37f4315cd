"""The simulated DNPU: a seeded static response behind an NI-like measurement chain.

Static response: two models
---------------------------
``model="surrogate"`` (the default): ``devices.surrogate.SurrogateModel``, the first
round's smooth nonlinear surrogate, on which the paper's recipe reaches the paper's
training results; it is not passive (a few nA at 0 V). ``model="hopping"``: the
physical device below, passive and Kirchhoff-exact, on which the recipe learns most
gates but not yet XOR or the paper's sphere (``docs/design.md``, "Simulated devices",
has the figures).
The default stays the surrogate until training on the physical device works.

``model="hopping"``: ``devices.dnpu_physics.HoppingNetwork`` (equations and references there):
dopant sites in a disc between 8 rim electrodes (the output at virtual ground),
Miller-Abrahams-like field-assisted hopping ``i = K V0 sinh(dphi / V0)`` between
every pair of nodes with tunnelling conductances ``exp(-2 r / a)``, site levels that
the electrodes move through the Fermi level (a site conducts near resonance), and
Kirchhoff's current law solved by Newton's method. Passive by construction
(all terminals at 0 V -> I = 0 exactly), nonlinear on the 0.1-0.5 V scale,
non-monotonic along some sweeps. ``static_current`` and ``true_gradient``
solve the network exactly (gradient by the adjoint / implicit function theorem).

How ``measure`` evaluates the models fast (both built-in models; ``evaluation="fast"``)
----------------------------------------------------------------------------------
A training iteration applies ~3.5e5 samples; solving the network at each would
take seconds, and even the surrogate's exp and tanh over 96 sites cost ~0.9 s CPU.
The samples are classified in one pass:

* *windows*: runs of samples whose box (per-electrode max - min) is at most
  ``2 * TAYLOR_RADIUS`` (an HGE window moves +-8 mV): the current is the
  third-order Taylor expansion at the box's centre. The surrogate's derivatives
  there are analytic (``SurrogateModel.taylor_tensors``), its quadratic and cubic
  forms summed over their distinct monomials; the hopping network's current and
  gradient are exact, its second and third derivatives differences of exact
  gradients (``HoppingNetwork.taylor_tensors``: 1 + 2m + m(m-1)/2 solves, m = 7,
  in C; the per-window path below, which takes only the electrodes that move, is
  its reference). The third-order term is what makes the cubic bias of HGE
  (``analysis.cubic_bias``), so it is kept; left out is the fourth-order remainder,
  at most B4 / 4! with B4 a bound of the fourth directional derivative over the box
  (``SurrogateModel.fourth_derivative_bound`` derives it for the surrogate);
* *ramps*: straight-line runs (second differences within 2.5 DAC steps) between
  windows: cubic Hermite interpolation along the line between exact knots no more
  than ``RAMP_KNOT`` V apart (the surrogate: ``SurrogateModel.ramp_knot`` = 0.05 V),
  error at most h^4 / 384 times the largest fourth derivative along each knot
  interval, plus a first-order correction for the samples' DAC-step offsets from
  the line (ramps are never demodulated);
* everything else (large perturbations, arbitrary waveforms): exact, per sample.

``tests/test_fast_surrogate.py`` checks the surrogate's fast ``measure`` against
``evaluation="exact"`` within those bounds. On a sphere training iteration the
largest difference is ~1e-4 nA in windows and ~6e-4 nA on ramps (the output noise
is ~0.2 nA rms; the worst-case bound there is ~0.4 nA). ``evaluation="exact"``
evaluates the model at every sample.

The per-sample work is C (``csrc/host/hge_sim_*.c`` through ``devices.taylor_kernel``): the
classification (``hge_sim_runs``, ``hge_sim_lines``: the same runs, boxes and line tests as
the numpy ``_runs`` / ``_line_segments``), the Taylor windows (``hge_sim_taylor``: the
expansion summed over its distinct monomials, within a derived round-off bound of the numpy
formula ``_cubic``, ~1e-14 relative), the ramps (``hge_sim_ramp``), the DAC with the voltage
gate (``hge_sim_dac``) and the chain (``hge_sim_chain``), the last three the same bits as
their numpy references. ``FastEvaluator.kernel = "numpy"`` runs the numpy reference paths
(tests compare the two).

Custom ``model=`` objects (``current(V)`` and ``gradient(V)`` on (7, n)) are
evaluated exactly at every sample. The small dense products run on one BLAS
thread (``threadpoolctl`` when installed; the caller's setting is restored). With
``evaluation="exact"`` the surrogate evaluates a long record in chunks of
``surrogate.CHUNK`` samples, in blocks of whole chunks on ``threads`` threads
(numpy and BLAS release the GIL): the same numbers as one thread; with the window
expansion the windows' derivatives are made on a pool thread while the calling thread
fills the ramps, and the windows are expanded in ``threads`` parts at once (the same
numbers on any thread count).

Measurement chain (what ``measure`` adds)
-----------------------------------------
DAC quantisation (16 bit over +-10 V; the nearest code inside the electrode's limits,
so a sample at a limit is never applied beyond it; limits beyond +-10 V are refused,
ValueError) -> device -> current noise
(``devices.noise``: white plus 1/f^beta with a low-frequency corner, one
continuous process; default 1e-5 nA^2/Hz at 1 kHz) -> IV converter and
anti-alias filter (first-order, ``chain_bandwidth`` Hz) -> delay of
``chain_delay`` samples (the whole samples are taken out, as the Device protocol
asks; the fraction stays, applied by linear interpolation) -> IV converter range
(hard clip at +-110 nA) -> ADC quantisation (24 bit over the IV range). The
chain's gain and phase at each frequency are what ``calibrate`` measures through
``loopback``.
"""
from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from . import check_limits, check_volts
from .._blas import OneBlasThread as _OneBlasThread
from .dnpu_physics import HoppingNetwork
from .noise import NoiseModel, NoiseSource
from . import surrogate as _surrogate
from . import taylor_kernel as _taylor_kernel
from .surrogate import SurrogateModel

N_ELECTRODES = 7
CONTROL_RANGE = (-1.2, 0.6)
INPUT_RANGE = (-0.7, 0.7)
TAYLOR_RADIUS = 0.0125   # V: half-width of a box evaluated by one Taylor expansion
RAMP_KNOT = 0.2          # V: largest electrode step between exact knots on a ramp
CHUNK = 32               # samples per classification chunk
DERIV_STEP = 2e-3        # V: difference step for the 2nd and 3rd derivatives (errors ~ h^2 and h
                         # relative to the 0.1 V scale of the device, on terms already ~1e-3)
EVAL_BATCH = 4096        # exact solves per batch (bounds the memory of the batched Newton)
TENSOR_BATCH = 64        # window centres per analytic-derivative batch (bounds its intermediates)
NOISE_ASIDE = 8192       # records from this length draw their noise on a pool thread during the evaluation
RAMP_BLOCK = 16384       # samples of ramps filled (or line-tested) together (bounds their temporaries)
MAX_THREADS = 4          # default cap on the threads evaluating a long record (the available CPUs below it)

DNPUModel = SurrogateModel  # the name earlier versions exported
MODELS = ("surrogate", "hopping")
EVALUATIONS = ("fast", "exact")


class FastEvaluator:
    """Currents of a ``HoppingNetwork`` at many samples: Taylor in windows, Hermite on ramps, exact elsewhere."""

    def __init__(self, net, lsb: float | None, threads: int = 1):
        self.net = net
        self.line_tol = 2.5 * lsb if lsb else 1e-12
        self.threads = int(threads)
        # A model with analytic derivatives (the surrogate's ``taylor_tensors``) gives each window's
        # Hessian and third derivatives exactly, and its arbitrary samples by ``current`` alone.
        self.analytic = hasattr(net, "taylor_tensors")
        self.ramp_knot = float(getattr(net, "ramp_knot", RAMP_KNOT))
        # Taylor windows: "c" (taylor_kernel, one C call for all) or "numpy" (the reference formula).
        self.kernel = "c"
        # With "c" and analytic derivatives: the whole-record path (_current_c); False runs the
        # general path below with the same kernels (the reference it is tested against).
        self.whole_record = True

    def _map(self, fn, items) -> list:
        """``[fn(x) for x in items]``, on ``threads`` threads when there are several items."""
        if self.threads < 2 or len(items) < 2:
            return [fn(x) for x in items]
        pool = _pool(self.threads)
        return [f.result() for f in [pool.submit(fn, x) for x in items]]

    def _exact(self, V, phi0=None):
        """(I, grad, site potentials) at the columns of V (7, m), in batches, one after the other
        (two batches at once would add their ~35 MB of Newton workspace to the peak memory)."""
        I = np.empty(V.shape[1])
        G = np.empty(V.shape)
        if self.analytic:
            I[:], G[:], _ = self.net.current_and_gradient(V)
            return I, G, None
        phi = np.empty((V.shape[1], self.net.n))
        for s in range(0, V.shape[1], EVAL_BATCH):
            sl = slice(s, s + EVAL_BATCH)
            I[sl], G[:, sl], phi[sl] = self.net.current_and_gradient(V[:, sl], None if phi0 is None else phi0[sl])
        return I, G, phi

    def _runs(self, v):
        """Windows: [start, end, box lo, box hi] of runs whose box half-width is <= TAYLOR_RADIUS."""
        N = v.shape[1]
        starts = np.arange(0, N, CHUNK)
        ends = np.append(starts[1:], N)
        lo = np.minimum.reduceat(v, starts, axis=1)
        hi = np.maximum.reduceat(v, starts, axis=1)
        small = np.max(hi - lo, axis=0) <= 2 * TAYLOR_RADIUS
        lim = 2 * TAYLOR_RADIUS
        # Maximal stretches of consecutive small chunks; each becomes one run when its union box
        # is small (the usual case: one HGE window), else it is split greedily chunk by chunk.
        e = np.flatnonzero(np.diff(np.concatenate([[0], small.astype(np.int8), [0]])))
        c_first, c_end = e[::2], e[1::2]
        runs = []
        if c_first.size:
            # Each stretch's own union box: reduce over [c_first, c_end) only (every other segment
            # of the interleaved bounds; the big chunks in between are left out). A stretch whose
            # union is small is then one run at once; the greedy split below would give that same
            # run and box (it takes all its chunks, and min/max are exact), chunk by chunk.
            bounds = np.stack([c_first, c_end], axis=1).ravel()
            if bounds[-1] == lo.shape[1]:
                bounds = bounds[:-1]
            u_lo = np.minimum.reduceat(lo, bounds, axis=1)[:, ::2]
            u_hi = np.maximum.reduceat(hi, bounds, axis=1)[:, ::2]
            ok = np.max(u_hi - u_lo, axis=0) <= lim
            for k in range(c_first.size):
                c0, c1 = int(c_first[k]), int(c_end[k])
                if ok[k]:
                    runs.append([int(starts[c0]), int(ends[c1 - 1]), u_lo[:, k], u_hi[:, k]])
                    continue
                # Greedy split: each run takes chunks while their union box stays small. The union
                # grows monotonically, so a run ends at the first chunk whose running union is too
                # wide (running min/max: the same floats as adding the chunks one at a time).
                lo_s, hi_s, c, n_c = lo[:, c0:c1], hi[:, c0:c1], 0, c1 - c0
                while c < n_c:
                    cl = np.minimum.accumulate(lo_s[:, c:], axis=1)
                    ch = np.maximum.accumulate(hi_s[:, c:], axis=1)
                    wide = np.flatnonzero(np.max(ch - cl, axis=0)[1:] > lim)
                    take = int(wide[0]) + 1 if wide.size else n_c - c   # the first chunk always
                    runs.append([int(starts[c0 + c]), int(ends[c0 + c + take - 1]),
                                 cl[:, take - 1].copy(), ch[:, take - 1].copy()])
                    c += take
        self._grow_runs(v, runs)
        return runs

    def _grow_runs(self, v, runs) -> None:
        """Grow each run into the neighbouring big chunks, sample by sample, while its box stays small.

        In order: the left edge first (down to the previous run's grown end), then the right edge
        (up to the next run's start) within the box the left side has widened. Done for all runs
        at once (:meth:`_grow_all`), then again one by one, in order, for the runs whose left
        neighbour ends within ``2 * CHUNK`` samples (its growth, at most ``CHUNK``, may have taken
        samples this run's left side looked at): the same edges and boxes as :meth:`_grow_one`
        run by run (min and max are exact, so the boxes are the same floats; tested)."""
        N = v.shape[1]
        if not runs:
            return
        S = np.array([r[0] for r in runs])
        E = np.array([r[1] for r in runs])
        LO = np.array([r[2] for r in runs]).T
        HI = np.array([r[3] for r in runs]).T
        prev_end = np.concatenate([[0], E[:-1]])
        nxt = np.append(S[1:], N)
        s_new, lo1, hi1 = self._grow_all(v, S, -1, prev_end, LO, HI)
        e_new, lo2, hi2 = self._grow_all(v, E, +1, nxt, lo1, hi1)
        for k, run in enumerate(runs):
            run[0], run[1], run[2], run[3] = int(s_new[k]), int(e_new[k]), lo2[:, k], hi2[:, k]
        grown_end = 0
        for k, run in enumerate(runs):
            if k and S[k] - E[k - 1] < 2 * CHUNK:  # its left neighbour may have grown into its view
                self._grow_one(v, run, int(S[k]), int(E[k]), LO[:, k], HI[:, k], grown_end, int(nxt[k]))
            grown_end = run[1]

    @classmethod
    def _grow_one(cls, v, run, s, e, r_lo, r_hi, prev_end, nxt) -> None:
        """One run's growth (the reference :meth:`_grow_all` equals): left edge, then right edge."""
        s_new = cls._grow(v, s, -1, prev_end, r_lo, r_hi)
        if s_new < s:  # the right side grows within the box the left side has already widened
            r_lo = np.minimum(r_lo, v[:, s_new:s].min(axis=1))
            r_hi = np.maximum(r_hi, v[:, s_new:s].max(axis=1))
        s = s_new
        e = cls._grow(v, e, +1, nxt, r_lo, r_hi)
        run[0], run[1] = s, e
        run[2], run[3] = np.minimum(r_lo, v[:, s:e].min(axis=1)), np.maximum(r_hi, v[:, s:e].max(axis=1))

    @staticmethod
    def _grow_all(v, edges, direction, bounds, r_lo, r_hi):
        """:meth:`_grow` for many edges at once: (new edges, boxes widened by the samples taken).

        ``r_lo``, ``r_hi`` (n_electrodes, R). Looks at the ``CHUNK`` samples beyond each edge (fewer
        up to its bound: the rest are NaN, which fails every comparison and so stops the growth
        exactly where :meth:`_grow`'s shorter segment ends)."""
        if np.array_equal(edges, bounds):  # nowhere to grow (one window alone: extract_gradient)
            return edges, r_lo, r_hi
        lim = 2 * TAYLOR_RADIUS
        N = v.shape[1]
        steps = np.arange(1, CHUNK + 1) if direction > 0 else -np.arange(1, CHUNK + 1)
        at = edges[:, None] + (steps - 1 if direction > 0 else steps)             # (R, CHUNK) sample indices
        valid = (at < bounds[:, None]) if direction > 0 else (at >= bounds[:, None])
        seg = v[:, np.clip(at, 0, max(N - 1, 0))]                                   # (ne, R, CHUNK)
        seg[:, ~valid] = np.nan
        lo = np.minimum(np.minimum.accumulate(seg, axis=2), r_lo[:, :, None])
        hi = np.maximum(np.maximum.accumulate(seg, axis=2), r_hi[:, :, None])
        ok = np.max(hi - lo, axis=0) <= lim                                        # (R, CHUNK)
        n_ok = np.where(ok.all(axis=1), CHUNK, np.argmin(ok, axis=1))
        taken = n_ok > 0
        j = np.maximum(n_ok - 1, 0)
        R = np.arange(edges.size)
        new_lo = np.where(taken, lo[:, R, j], r_lo)
        new_hi = np.where(taken, hi[:, R, j], r_hi)
        return edges + direction * n_ok, new_lo, new_hi

    @staticmethod
    def _grow(v, edge, direction, bound, r_lo, r_hi):
        """Move a run's ``edge`` outward (to ``bound``) while every sample stays inside its box grown to 2R."""
        lim = 2 * TAYLOR_RADIUS
        # A run grows only into big chunks (box > 2R), so by less than one chunk: look no further.
        if direction < 0:
            seg = v[:, max(bound, edge - CHUNK):edge][:, ::-1]
        else:
            seg = v[:, edge:min(bound, edge + CHUNK)]
        if seg.shape[1] == 0:
            return edge
        lo = np.minimum(np.minimum.accumulate(seg, axis=1), r_lo[:, None])
        hi = np.maximum(np.maximum.accumulate(seg, axis=1), r_hi[:, None])
        ok = np.max(hi - lo, axis=0) <= lim
        n_ok = int(np.argmin(ok)) if not ok.all() else ok.size
        return edge - n_ok if direction < 0 else edge + n_ok

    @staticmethod
    def _taylor23(dm, g0, gd):
        """Second- and third-order Taylor terms at offsets ``dm`` (m, n) from exact gradients:
        ``g0`` (m,) at the centre and ``gd`` (m, 2m + m(m-1)/2) at +h e_j, -h e_j, +h (e_j + e_k)."""
        H, T = FastEvaluator._difference_tensors(g0, gd)
        return FastEvaluator._cubic(dm, H, T)

    @staticmethod
    def _difference_tensors(g0, gd):
        """(H (m, m), T (m, m, m)) from exact gradients (see :meth:`_taylor23`), both symmetric."""
        m, h = g0.shape[0], DERIV_STEP
        gp, gm, gx = gd[:, :m], gd[:, m:2 * m], gd[:, 2 * m:]
        H = (gp - gm) / (2 * h)                                   # central: exact to O(h^2)
        H = 0.5 * (H + H.T)
        T = np.empty((m, m, m))                                   # T[i, j, k] = d^2 g_i / dV_j dV_k
        for j in range(m):
            T[:, j, j] = (gp[:, j] - 2 * g0 + gm[:, j]) / h**2
        c = 0
        for j in range(m):
            for k in range(j + 1, m):
                T[:, j, k] = T[:, k, j] = (gx[:, c] - gp[:, j] - gp[:, k] + g0) / h**2
                c += 1
        return H, T

    @staticmethod
    def _cubic(dm, H, T):
        """(1/2) d.H.d + (1/6) T[d, d, d] at the offsets ``dm`` (m, n); H (m, m), T (m, m, m) symmetric.

        Nested: d . (H/2 + (T d)/6) . d, with T d one (m^2, m) x (m, n) product."""
        m, n = dm.shape
        A = (T.reshape(m * m, m) / 6.0) @ dm                     # (T d)_jk / 6
        A += (0.5 * H).reshape(m * m, 1)
        B = np.einsum("jkn,kn->jn", A.reshape(m, m, n), dm)
        return np.einsum("jn,jn->n", B, dm)

    blas = None   # a context factory (the simulator sets its one BLAS thread) entered where BLAS is called

    def current(self, v: np.ndarray) -> np.ndarray:
        """The model's current over ``v`` (7, N); inside ``blas()`` (if set) wherever BLAS may be called."""
        blas = self.blas
        N = v.shape[1]
        out = np.empty(N)
        if N == 0:
            return out
        if self.analytic and self.kernel == "c" and self.whole_record:
            self._current_c(v, out, blas)
            return out
        with (blas or contextlib.nullcontext)():
            return self._current_general(v, out)

    def _current_general(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        N = v.shape[1]
        # The classification in C (the same runs and boxes as the numpy reference _runs; tested).
        runs = _taylor_kernel.runs(v, CHUNK, 2 * TAYLOR_RADIUS) if self.kernel == "c" else self._runs(v)
        free = np.ones(N, bool)
        for s, e, _, _ in runs:
            free[s:e] = False
        edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
        segs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
        # Stage 1: box centres, ramp knots and arbitrary samples, solved in one batch.
        pts, jobs, hess_pts, hess_of = [], [], [], []   # pts: (7, k) blocks of points to solve exactly
        n_pts = 0
        n_hess = 0
        h = DERIV_STEP
        analytic = self.analytic
        centres = []
        for s, e, r_lo, r_hi in runs:
            cen = 0.5 * (r_lo + r_hi)
            moving = np.flatnonzero(r_hi - r_lo > 0)
            if analytic:   # the centre's exact derivatives come from taylor_tensors below
                jobs.append(("taylor", s, e, cen, moving, len(centres), None))
                centres.append(cen)
                continue
            jobs.append(("taylor", s, e, cen, moving, n_pts, n_hess))
            # Displaced points along the moving electrodes: +h e_j, -h e_j, then +h (e_j + e_k), j < k.
            m = moving.size
            D = np.zeros((2 * m + m * (m - 1) // 2, cen.size))
            D[np.arange(m), moving] = h
            D[m + np.arange(m), moving] = -h
            r = 2 * m
            for a in range(m):
                for b in range(a + 1, m):
                    D[r, moving[a]] = D[r, moving[b]] = h
                    r += 1
            hess_pts.append(cen + D)
            hess_of.append(np.full(D.shape[0], n_pts))   # each displaced point's centre
            n_hess += D.shape[0]
            pts.append(cen[:, None])
            n_pts += 1
        ramps = []   # (start, end, knots, first knot's index in pts): filled together by _fill_ramps
        for (s, e), line in zip(segs, self._line_segments(v, segs)):
            seg = v[:, s:e]
            if line:
                span = np.max(np.abs(seg[:, -1] - seg[:, 0]))
                t_knots = self._knots(max(1, int(np.ceil(span / self.ramp_knot))))
                ramps.append((s, e, t_knots, n_pts))
                pts.append(seg[:, :1] + t_knots[None, :] * (seg[:, -1] - seg[:, 0])[:, None])
                n_pts += t_knots.size
            elif analytic:  # arbitrary samples: the model's own (chunked) current, in _fill
                jobs.append(("model", s, e, None, None, None, None))
            else:
                jobs.append(("exact", s, e, None, None, n_pts, None))
                pts.append(seg)
                n_pts += e - s
        if analytic:
            I, G = (self._exact(np.concatenate(pts, axis=1))[:2] if pts else (None, None))
            tensors = None
            if centres:
                C = np.array(centres).T
                tensors = self._window_tensors(C) if self.kernel == "c" else self._tensors(C)
            if self.kernel == "c" and tensors is not None:
                # Every window in one C call (taylor_kernel: the same expansion, summed over its
                # distinct monomials; within a derived round-off bound of the numpy formula).
                # Window k0 is centre k0 (one per window, in order).
                taylor = [j for j in jobs if j[0] == "taylor"]
                _taylor_kernel.evaluate(v, np.array([(j[1], j[2]) for j in taylor], np.int64),
                                        np.array(centres), _taylor_kernel.pack(*tensors), out)
                jobs = [j for j in jobs if j[0] != "taylor"]
            k = self.threads if len(jobs) >= 8 * self.threads else 1
            parts = [jobs[len(jobs) * i // k:len(jobs) * (i + 1) // k] for i in range(k)]
            self._map(lambda part: self._fill(out, v, part, I, G, None, tensors), parts)
            self._fill_ramps(out, v, ramps, I, G, n_pts, self.kernel)
            return out
        I, G, phi = self._exact(np.concatenate(pts, axis=1))
        # Stage 2: the Hessian's displaced points, Newton warm-started at their centre's solution.
        if n_hess:
            Ih, Gh, _ = self._exact(np.concatenate(hess_pts).T, phi[np.concatenate(hess_of)])
        Gh = Gh if n_hess else None
        if self.kernel == "c":
            taylor = [j for j in jobs if j[0] == "taylor"]
            if taylor:
                self._taylor_windows_c(out, v, taylor, I, G, Gh)
                jobs = [j for j in jobs if j[0] != "taylor"]
        # The jobs write disjoint samples: in contiguous parts on the threads.
        k = self.threads if len(jobs) >= 8 * self.threads else 1
        parts = [jobs[len(jobs) * i // k:len(jobs) * (i + 1) // k] for i in range(k)]
        self._map(lambda part: self._fill(out, v, part, I, G, Gh), parts)
        self._fill_ramps(out, v, ramps, I, G, n_pts, self.kernel)
        return out

    def _current_c(self, v: np.ndarray, out: np.ndarray, blas=None) -> None:
        """:meth:`current` for a model with analytic derivatives, every stage in C and whole-record
        arrays (no per-window Python): the runs (``taylor_kernel.run_arrays``), the gaps between them
        line-tested (``lines``), the ramps' knots solved in one batch and filled (``ramps``), the
        windows expanded (``evaluate``). The same runs, line tests, knots and ramp bits as the
        general path below with ``kernel="c"`` (tested); other gaps by the model itself."""
        N = v.shape[1]
        bounds, lo, hi = _taylor_kernel.run_arrays(v, CHUNK, 2 * TAYLOR_RADIUS)
        # The gaps between the runs (and before the first, after the last), where non-empty.
        g_s = np.concatenate([[0], bounds[:, 1]])
        g_e = np.concatenate([bounds[:, 0], [N]])
        keep = g_e > g_s
        segs = np.stack([g_s[keep], g_e[keep]], axis=1)
        line = _taylor_kernel.lines(v, segs, self.line_tol) if segs.size else np.zeros(0, bool)
        ramps, others = segs[line], segs[~line]
        # One window and nothing else (extract_gradient's record) calls no BLAS: C alone, without the
        # ~15 us of setting and restoring the BLAS thread count.
        alone = not ramps.size and not others.size and bounds.shape[0] == 1 and hasattr(self.net, "centre_tensors")
        with (contextlib.nullcontext if alone or blas is None else blas)():
            self._current_c_stages(v, out, bounds, lo, hi, ramps, others)

    def _current_c_stages(self, v, out, bounds, lo, hi, ramps, others) -> None:
        # The windows' derivatives on a pool thread while this one solves and fills the ramps.
        tensors = aside = None
        if bounds.shape[0]:
            cen = 0.5 * (lo + hi)
            C = np.ascontiguousarray(cen.T)
            # (aside only when there is ramp work to overlap with: a thread hand-off costs ~0.5 ms,
            # more than one window's derivatives; not for the hopping network, whose 36 solves per
            # window cost ~10x its ramps' knots: its windows take every thread, then the ramps)
            if self.threads > 1 and ramps.size and C.shape[1] >= 16 and not isinstance(self.net, HoppingNetwork):
                aside = _pool(self.threads).submit(self._tensors, C, False)
            else:
                tensors = self._window_tensors(C)
        try:
            self._ramps_c(v, out, ramps)
        finally:
            if aside is not None:
                tensors = aside.result()   # never left running
        if tensors is not None:
            self._evaluate_windows(v, bounds, cen, _taylor_kernel.pack(*tensors), out)
        for s, e in others.tolist():   # arbitrary samples: the model's own (chunked) current
            out[s:e] = self.net.current(v[:, s:e])

    def _evaluate_windows(self, v, bounds, cen, coefs, out) -> None:
        """``taylor_kernel.evaluate`` of all windows, in ``threads`` contiguous parts at once (the C
        call releases the GIL; every sample's arithmetic is the same in any part: the same bits)."""
        W = bounds.shape[0]
        k = min(self.threads, W // 8) if W >= 16 else 1
        if k < 2:
            _taylor_kernel.evaluate(v, bounds, cen, coefs, out)
            return
        cuts = [W * i // k for i in range(k + 1)]
        parts = [(bounds[a:b], cen[a:b], coefs[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
        futures = [_pool(self.threads).submit(_taylor_kernel.evaluate, v, *p, out) for p in parts[1:]]
        try:
            _taylor_kernel.evaluate(v, *parts[0], out)
        finally:
            for f in futures:
                f.result()

    def _ramps_c(self, v, out, ramps) -> None:
        """The ramps (S, 2) of :meth:`_current_c`: knots solved in one batch, filled in C."""
        if ramps.size:
            first, last = v[:, ramps[:, 0]], v[:, ramps[:, 1] - 1]
            delta = last - first
            span = np.max(np.abs(delta), axis=0)
            n_int = np.maximum(1, np.ceil(span / self.ramp_knot).astype(np.int64))
            knots = np.concatenate([self._knots(int(k)) for k in n_int])   # linspace per ramp, as before
            rid = np.repeat(np.arange(n_int.size), n_int + 1)
            k0 = np.concatenate([[0], np.cumsum(n_int + 1)[:-1]])
            # seg[:, :1] + t * (seg[:, -1] - seg[:, 0]) per ramp: the same operations, all ramps at once.
            pts = first[:, rid] + knots[None, :] * delta[:, rid]
            I, G = self._exact(pts)[:2]
            rows = np.stack([ramps[:, 0], ramps[:, 1], k0, n_int + 1], axis=1)
            _taylor_kernel.ramps(v, rows, knots, I, G, out)

    @staticmethod
    def _taylor_windows_c(out, v, taylor, I, G, Gh) -> None:
        """The hopping network's Taylor windows in one C call: each window's difference tensors
        over its moving electrodes, embedded in the full dimension (zero for the electrodes that do
        not move, where d = 0 exactly: the same polynomial as :meth:`_taylor23`'s)."""
        ne, W = v.shape[0], len(taylor)
        H = np.zeros((W, ne, ne))
        T = np.zeros((W, ne, ne, ne))
        centres = np.empty((W, ne))
        Iw = np.empty(W)
        gw = np.empty((ne, W))
        for w, (_, s, e, cen, moving, k0, h0) in enumerate(taylor):
            centres[w], Iw[w], gw[:, w] = cen, I[k0], G[:, k0]
            m = moving.size
            if m:
                Hm, Tm = FastEvaluator._difference_tensors(G[moving, k0], Gh[moving, h0:h0 + 2 * m + m * (m - 1) // 2])
                H[w][np.ix_(moving, moving)] = Hm
                T[w][np.ix_(moving, moving, moving)] = Tm
        _taylor_kernel.evaluate(v, np.array([(j[1], j[2]) for j in taylor], np.int64), centres,
                                _taylor_kernel.pack(Iw, gw, H, T), out)

    def _knots(self, n_intervals: int) -> np.ndarray:
        """``linspace(0, 1, n_intervals + 1)``, made once per count (read-only, shared)."""
        cache = self.__dict__.setdefault("_knot_cache", {})
        k = cache.get(n_intervals)
        if k is None:
            k = cache[n_intervals] = np.linspace(0.0, 1.0, n_intervals + 1)
            k.flags.writeable = False
        return k

    def _line_segments(self, v, segs) -> np.ndarray:
        """For each segment (s, e): at least 3 samples and every second difference within
        ``line_tol`` (a straight ramp). ``max|diff(v[:, s:e], 2)| <= line_tol`` for all segments at
        once: the differences are taken on the segments' samples gathered side by side (the same
        subtractions), those that straddle two segments are dropped, and max is exact."""
        out = np.zeros(len(segs), bool)
        long = [k for k, (s, e) in enumerate(segs) if e - s >= 3]
        if not long:
            return out
        total = sum(segs[k][1] - segs[k][0] for k in long)
        if total > RAMP_BLOCK and len(long) > 1:   # in halves: bounded temporaries (each segment whole)
            half = len(segs) // 2 if len(segs) > 1 else 1
            out[:half] = self._line_segments(v, segs[:half])
            out[half:] = self._line_segments(v, segs[half:])
            return out
        S = np.array([segs[k][0] for k in long])
        E = np.array([segs[k][1] for k in long])
        lens = E - S
        first = np.concatenate([[0], np.cumsum(lens)[:-1]])
        pos = np.arange(int(lens.sum())) + np.repeat(S - first, lens)
        d2 = np.abs(np.diff(v[:, pos], 2, axis=1)).max(axis=0)      # d2[i]: samples i, i+1, i+2
        # Segment k's own second differences are d2[first_k : first_k + len_k - 2] (len_k >= 3).
        bounds = np.stack([first, first + lens - 2], axis=1).ravel()[:-1]
        worst = np.maximum.reduceat(d2, bounds)[::2]
        out[long] = worst <= self.line_tol
        return out

    @staticmethod
    def _fill_ramps(out, v, ramps, I, G, n_pts, kernel: str = "c") -> None:
        """Cubic Hermite along each ramp between its exact knots, for all ramps at once.

        ``ramps``: (start, end, knots, index of the first knot in ``I``/``G``). Per sample the same
        formula as ramp by ramp (position t along the line by projection, Hermite with the knots'
        currents and slopes, a first-order correction for the DAC offsets from the line); its three
        7-term dot products are sums over the electrodes in order instead of BLAS calls, which
        changes their round-off (within 2 gamma_7 sum |terms| each): the bound is derived and
        tested in tests/test_speed_paths.py."""
        if not ramps:
            return
        if kernel == "c":   # the same operations in C, in one call (taylor_kernel.ramps: the same bits)
            rows = np.array([(s, e, k0, t.size) for s, e, t, k0 in ramps], np.int64)
            knots = np.zeros(n_pts)
            for _, _, t, k0 in ramps:
                knots[k0:k0 + t.size] = t
            _taylor_kernel.ramps(v, rows, knots, I[:n_pts], G[:, :n_pts], out)
            return
        # In blocks of about RAMP_BLOCK samples: a dozen (7, samples) temporaries each, so the peak
        # memory stays that of one block (a test set's thousands of ramps at once: ~90 MB).
        lens = np.array([r[1] - r[0] for r in ramps])
        block_of = np.cumsum(lens) // RAMP_BLOCK
        cuts = np.flatnonzero(np.diff(block_of)) + 1
        if cuts.size:
            for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(ramps)]])):
                FastEvaluator._fill_ramp_block(out, v, ramps[a:b], I, G, n_pts)
        else:
            FastEvaluator._fill_ramp_block(out, v, ramps, I, G, n_pts)

    @staticmethod
    def _fill_ramp_block(out, v, ramps, I, G, n_pts) -> None:
        """:meth:`_fill_ramps` for one block of ramps."""
        S = np.array([r[0] for r in ramps])
        E = np.array([r[1] for r in ramps])
        lens = E - S
        rid = np.repeat(np.arange(len(ramps)), lens)
        first_at = np.concatenate([[0], np.cumsum(lens)[:-1]])
        pos = np.arange(int(lens.sum())) + np.repeat(S - first_at, lens)
        seg = v[:, pos]
        first = v[:, S]
        delta = v[:, E - 1] - first
        dd = np.maximum((delta * delta).sum(axis=0), 1e-300)
        Dr = delta[:, rid]
        t = ((Dr * (seg - first[:, rid])).sum(axis=0)) / dd[rid]
        knots = np.zeros(n_pts)
        j = np.empty(pos.size, np.int64)
        for k, (s, e, t_knots, k0) in enumerate(ramps):
            knots[k0:k0 + t_knots.size] = t_knots
            a = first_at[k]
            j[a:a + lens[k]] = k0 + np.clip(np.searchsorted(t_knots, t[a:a + lens[k]], side="right") - 1,
                                            0, t_knots.size - 2)
        h = knots[j + 1] - knots[j]
        u = (t - knots[j]) / h
        y0, y1 = I[j], I[j + 1]
        G0, G1 = G[:, j], G[:, j + 1]
        m0 = (Dr * G0).sum(axis=0) * h
        m1 = (Dr * G1).sum(axis=0) * h
        u2, u3 = u * u, u * u * u
        y = ((2 * u3 - 3 * u2 + 1) * y0 + (u3 - 2 * u2 + u) * m0 +
             (-2 * u3 + 3 * u2) * y1 + (u3 - u2) * m1)
        # The DAC-quantised samples sit up to ~1 LSB off the line (what line_tol admits): first-order
        # correction with the gradient interpolated between the knots (~100 nA/V x 0.3 mV = 0.03 nA).
        off = seg - (first[:, rid] + t * Dr)
        gl = (1 - u) * G0 + u * G1
        out[pos] = y + np.sum(gl * off, axis=0)

    def _window_tensors(self, C):
        """The C kernels' window derivatives: :meth:`_tensors`, except that one window (extract_gradient's
        record) has its derivatives from the model's ``centre_tensors`` in C when it has one, where
        numpy's ~50 calls on tiny arrays cost ~3 times as much. They lie within a derived round-off
        bound of the numpy formula, which batches of windows (a training iteration) keep, bit for bit
        as before (tests/test_centre_tensors.py)."""
        if C.shape[1] == 1 and hasattr(self.net, "centre_tensors"):
            return self.net.centre_tensors(C[:, 0])
        return self._tensors(C)

    def _tensors(self, C, threaded: bool = True):
        """``net.taylor_tensors`` at the centres ``C`` (7, k), ``TENSOR_BATCH`` at a time (its
        (k, paths, 49) and (7 k, sites) intermediates stay small: a few MB for a whole record at once)."""
        # The batches on the threads, or all in this thread (each batch's numbers do not depend on
        # the others or on the thread).
        batch = lambda s: self.net.taylor_tensors(C[:, s:s + TENSOR_BATCH])  # noqa: E731
        starts = list(range(0, C.shape[1], TENSOR_BATCH))
        parts = self._map(batch, starts) if threaded else [batch(s) for s in starts]
        return tuple(np.concatenate(x, axis=-1 if i < 2 else 0) for i, x in enumerate(zip(*parts)))

    def _fill(self, out, v, jobs, I, G, Gh, tensors=None) -> None:
        """Evaluate ``jobs`` (Taylor windows, Hermite ramps, exact samples) into ``out``."""
        for kind, s, e, a, b, k0, h0 in jobs:
            if kind == "taylor" and tensors is not None:
                cen, moving = a, b
                Ic, gc, Hc, Tc = tensors
                d = v[:, s:e] - cen[:, None]
                y = Ic[k0] + gc[:, k0] @ d
                if moving.size:
                    all_move = moving.size == cen.size
                    H = Hc[k0] if all_move else Hc[k0][np.ix_(moving, moving)]
                    T = Tc[k0] if all_move else Tc[k0][np.ix_(moving, moving, moving)]
                    y += self._cubic(d if all_move else d[moving], H, T)
                out[s:e] = y
            elif kind == "model":
                out[s:e] = self.net.current(v[:, s:e])
            elif kind == "taylor":
                cen, moving = a, b
                d = v[:, s:e] - cen[:, None]
                y = I[k0] + G[:, k0] @ d
                m = moving.size
                if m:
                    y += self._taylor23(d[moving], G[moving, k0], Gh[moving, h0:h0 + 2 * m + m * (m - 1) // 2])
                out[s:e] = y
            else:
                out[s:e] = I[k0:k0 + (e - s)]


_POOL_LOCK = threading.Lock()
_POOLS: dict = {}


def _pool(workers: int):
    """A process-wide thread pool of ``workers`` threads (made on first use, shared by every device;
    a forked child, which inherits the pool but not its threads, makes its own)."""
    key = (os.getpid(), workers)
    with _POOL_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor
            pool = _POOLS[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hge-sim")
        return pool


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def surrogate_blocks(n: int, workers: int) -> list:
    """(start, stop) blocks of a record for ``workers`` threads, cut at whole surrogate chunks.

    The surrogate evaluates ``CHUNK`` samples at a time, its last chunk taking the remainder;
    blocks that start on chunk boundaries, the last one ending the record with at least one
    whole chunk, are evaluated chunk for chunk as the whole record is: identical results."""
    chunks = n // _surrogate.CHUNK
    k = max(1, min(int(workers), chunks))
    bounds = [(chunks * i // k) * _surrogate.CHUNK for i in range(k)] + [n]
    return list(zip(bounds[:-1], bounds[1:]))


class SimulatedDNPU:
    """The default device: a simulated DNPU behind an NI-like measurement chain.

    Parameters
    ----------
    seed : int
        Seeds the static response and, unless ``rng`` is given, the noise.
    noise : bool or NoiseModel
        ``True``: the paper's level (1e-5 nA^2/Hz at 1 kHz, 1/f^1.5);
        ``False``: noise-free chain; a ``NoiseModel`` for anything else.
    fs : float
        Sample rate, Hz (10 kHz: cDAQ 9264 out / 9202 in).
    chain_bandwidth : float or None
        First-order bandwidth of IV converter + anti-alias filter, Hz.
    chain_delay : float
        Chain delay in samples; the whole part is removed from the result.
    iv_range : float
        IV converter range, nA: the current clips at +-iv_range.
    dac_bits, adc_bits : int or None
        Quantisation of the voltages (+-10 V) and of the current (+-iv_range).
    model : {"surrogate", "hopping"} or object, optional
        The static response: the surrogate (default), the physical hopping network, or
        any object with ``current(V)`` and ``gradient(V)`` on (7, n) arrays.
    threads : int, optional
        Threads evaluating a long record: the surrogate in blocks of whole chunks, the hopping
        network's Taylor windows (each on one BLAS thread; the result is the same for any
        count). Default: the available CPUs,
        at most ``MAX_THREADS``; 1 evaluates in the calling thread only.
    evaluation : {"fast", "exact"}, optional
        How ``measure`` evaluates the built-in models. ``"fast"`` (default): the window
        expansion (module docstring; the surrogate's error bound is
        ``SurrogateModel.fourth_derivative_bound``, tested). ``"exact"``: the model at every
        sample (the reference; the hopping network then takes seconds per training
        iteration). ``static_current`` and ``true_gradient`` are exact either way; custom
        ``model=`` objects are always evaluated exactly.
    """

    def __init__(self, seed: int = 0, noise=True, *, fs: float = 10_000.0,
                 chain_bandwidth: float | None = 5_000.0, chain_delay: float = 2.3,
                 iv_range: float = 110.0, dac_bits: int | None = 16, adc_bits: int | None = 24,
                 limits=None, rng: np.random.Generator | None = None, model=None, threads: int | None = None,
                 evaluation: str = "fast"):
        self.fs = float(fs)
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {list(EVALUATIONS)}, got {evaluation!r}")
        self.evaluation = evaluation
        if threads is None:
            threads = min(_available_cpus(), MAX_THREADS)
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
        self.threads = int(threads)
        self.n_electrodes = N_ELECTRODES
        self.limits = np.array([CONTROL_RANGE] * N_ELECTRODES if limits is None else limits, dtype=float)
        if self.limits.shape != (N_ELECTRODES, 2):
            raise ValueError(f"limits must have shape (7, 2), got {self.limits.shape}")
        # The default limits admit both control and input ranges.
        if limits is None:
            self.limits[:, 0] = min(CONTROL_RANGE[0], INPUT_RANGE[0])
            self.limits[:, 1] = max(CONTROL_RANGE[1], INPUT_RANGE[1])
        if model is None or isinstance(model, str):
            kind = "surrogate" if model is None else model
            if kind not in MODELS:
                raise ValueError(f"model must be one of {list(MODELS)} or a model object, got {model!r}")
            model = SurrogateModel(seed) if kind == "surrogate" else HoppingNetwork(seed)
        self.model = model
        if noise is True:
            noise = NoiseModel()
        self.noise_model = noise if isinstance(noise, NoiseModel) else None
        rng = rng if rng is not None else np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._noise = NoiseSource(self.noise_model, self.fs, rng) if self.noise_model else None
        self.chain_bandwidth = chain_bandwidth
        if chain_delay < 0:
            raise ValueError(f"chain_delay must be >= 0 samples, got {chain_delay}")
        self.chain_delay = float(chain_delay)
        self.iv_range = float(iv_range)
        self.full_scale = self.iv_range  # nA at ADC code 2^23 - 1
        self.dac_bits = dac_bits
        self.dac_lsb = 20.0 / 2**dac_bits if dac_bits else None  # V per DAC code, for the host
        if self.dac_lsb and np.all(np.isfinite(self.limits)) and np.all(self.limits[:, 0] <= self.limits[:, 1]):
            # Limits that hold no DAC code: refused now (non-finite or inverted ones by measure's gate).
            self._dac_codes(self.limits)
        self.adc_lsb = self.iv_range / (2 ** (adc_bits - 1) - 1) if adc_bits else None
        self.samples_measured = 0
        self._one_thread = _OneBlasThread()
        self._fast = (FastEvaluator(self.model, self.dac_lsb, self.threads)
                      if evaluation == "fast" and isinstance(self.model, (HoppingNetwork, SurrogateModel)) else None)
        if self._fast is not None:
            self._fast.blas = self._blas_limit   # measure's: the device's own limit

    def _blas_limit(self):
        """The evaluator's BLAS limit: this device's ``_one_thread`` as it is now (a method: picklable)."""
        return self._one_thread()

    # -- state, for checkpoints (resume gives the same noise as an uninterrupted run) ----
    def get_state(self) -> dict:
        """Small JSON-able state (sample count, noise generators and filter state)."""
        st = {"samples_measured": self.samples_measured}
        if self._noise is not None:
            st["noise"] = self._noise.get_state()
        return st

    def set_state(self, st: dict) -> None:
        self.samples_measured = int(st["samples_measured"])
        if self._noise is not None:
            if "noise" not in st:
                raise ValueError("device state: no 'noise' entry (saved by a noise-free or older simulator)")
            self._noise.set_state(st["noise"])

    # -- exact, noise-free views of the device -------------------------------------------
    def static_current(self, V) -> np.ndarray:
        """Exact current (nA) at voltages ``V``: shape (7,) -> scalar, (7, n) -> (n,)."""
        V = np.asarray(V, dtype=float)
        with self._one_thread():
            out = self.model.current(V.reshape(N_ELECTRODES, -1))
        return out[0] if V.ndim == 1 else out

    def true_gradient(self, V) -> np.ndarray:
        """Exact dI/dV (nA/V): shape (7,) -> (7,), (7, n) -> (7, n)."""
        V = np.asarray(V, dtype=float)
        with self._one_thread():
            g = self.model.gradient(V.reshape(N_ELECTRODES, -1))
        return g[:, 0] if V.ndim == 1 else g

    # -- the chain ---------------------------------------------------------------------
    def _chain(self, current: np.ndarray) -> np.ndarray:
        """IV/anti-alias filter, fractional delay, clip, ADC (steady state before sample 0), in one C
        pass (``csrc/host/hge_sim_chain.h``: the operations of :meth:`_chain_numpy`, the same bits)."""
        y = np.ascontiguousarray(current, dtype=np.float64)
        if y.ndim == 1 and y.size == 0:   # an empty record: nothing to filter (the reference reads y[0])
            return np.empty(0)
        if y.ndim != 1:
            return self._chain_numpy(current)
        from .._hge_core import ffi, lib
        from .taylor_kernel import _addr
        alpha = np.exp(-2 * np.pi * self.chain_bandwidth / self.fs) if self.chain_bandwidth else 0.0
        frac = self.chain_delay - np.floor(self.chain_delay)
        out = np.empty(y.size)
        status = lib.hge_sim_chain(_addr(ffi, "const double *", y), y.size, bool(self.chain_bandwidth),
                                   1 - alpha, alpha, alpha * y[0], bool(frac), 1 - frac, frac, self.iv_range,
                                   self.adc_lsb or 0.0, _addr(ffi, "double *", out))
        if status != lib.HGE_OK:
            raise ValueError(f"chain: iv_range {self.iv_range!r} and ADC step {self.adc_lsb!r} must be >= 0 "
                             f"(status {status})")
        return out

    def _chain_numpy(self, current: np.ndarray) -> np.ndarray:
        """The reference of :meth:`_chain` (numpy and scipy.signal.lfilter)."""
        y = current
        if self.chain_bandwidth:
            alpha = np.exp(-2 * np.pi * self.chain_bandwidth / self.fs)
            import scipy.signal as sig  # lazy: scipy.signal takes ~1 s to import
            # Steady state before sample 0: the filter's state equals alpha * y[0].
            y, _ = sig.lfilter([1 - alpha], [1, -alpha], y, zi=[alpha * y[0]])
        frac = self.chain_delay - np.floor(self.chain_delay)
        if frac:
            y = (1 - frac) * y + frac * np.concatenate([y[:1], y[:-1]])
        y = np.clip(y, -self.iv_range, self.iv_range)
        if self.adc_lsb:
            y = np.round(y / self.adc_lsb) * self.adc_lsb
        return y

    def _dac_codes(self, lim: np.ndarray):
        """(lowest, highest) DAC code per electrode whose voltage ``code * lsb`` (as the DAC computes it)
        lies inside the limits ``lim`` (n, 2) and inside the converter's signed ``dac_bits`` range.

        Why: the gate admits lo <= v <= hi, and the nearest code round(v / lsb) can lie up to half a
        step beyond a limit (0.7 V -> 2294 codes = 0.700073 V). The admissible codes are a contiguous
        range, so clamping the nearest code into it gives the nearest admissible code: samples away from
        the limits are unchanged, a sample at a limit is applied at most one step inside it, never
        beyond. The range is found from floor/ceil of lim / lsb and corrected by whole codes until
        ``code * lsb`` (rounded) is inside."""
        lsb = self.dac_lsb
        key = (lim.tobytes(), lsb, self.dac_bits)
        memo = self.__dict__.get("_dac_codes_memo")
        if memo is not None and memo[0] == key:   # the limits seldom change: made once per setting
            return memo[1]
        hi = np.floor(lim[:, 1] / lsb)
        lo = np.ceil(lim[:, 0] / lsb)
        for _ in range(4):   # the quotient is within a code of the exact one: at most one step each way
            hi -= hi * lsb > lim[:, 1]
            hi += (hi + 1) * lsb <= lim[:, 1]
            lo += lo * lsb < lim[:, 0]
            lo -= (lo - 1) * lsb >= lim[:, 0]
        if not (np.all(hi * lsb <= lim[:, 1]) and np.all(lo * lsb >= lim[:, 0])):  # pragma: no cover
            raise RuntimeError("DAC code range did not converge")
        top = 2.0 ** (self.dac_bits - 1)
        # Limits beyond the converter's range are refused: the clamp below would otherwise apply a
        # sample well inside them (12 V within +-15 V limits) at the range's end (9.9997 V), silently.
        # A limit at the range's end (+-10 V) is kept: a sample there is applied at most one step inside.
        beyond = (lim[:, 1] > top * lsb) | (lim[:, 0] < -top * lsb)
        if beyond.any():
            e = int(np.argmax(beyond))
            raise ValueError(f"limits: electrode {e + 1}'s limits [{lim[e, 0]:.6g}, {lim[e, 1]:.6g}] V reach beyond "
                             f"the DAC's range [{-top * lsb:.6g}, {top * lsb:.6g}] V ({self.dac_bits} bits): samples "
                             f"there cannot be applied where asked")
        hi, lo = np.minimum(hi, top - 1), np.maximum(lo, -top)
        empty = lo > hi
        if empty.any():
            e = int(np.argmax(empty))
            raise ValueError(f"limits: electrode {e + 1}'s limits [{lim[e, 0]:.6g}, {lim[e, 1]:.6g}] V contain no "
                             f"DAC code (step {lsb:.6g} V, {self.dac_bits} bits over +-10 V)")
        lo.flags.writeable = hi.flags.writeable = False
        self._dac_codes_memo = (key, (lo, hi))
        return lo, hi

    def _dac(self, volts: np.ndarray) -> np.ndarray:
        """The DAC: each sample to its nearest code inside the limits (``_dac_codes``), times the step.
        ``volts`` must have passed the gate. The reference of the C pass in ``measure`` (same bits)."""
        if not self.dac_lsb:
            return volts
        lo, hi = self._dac_codes(check_limits(self.limits))
        q = volts / self.dac_lsb   # round(v / lsb) * lsb, in place on one new array (same floats)
        np.round(q, out=q)
        np.clip(q, lo[:, None], hi[:, None], out=q)
        q *= self.dac_lsb
        return q

    def _gate_and_dac(self, volts) -> np.ndarray:
        """``self._dac(check_volts(volts, self.limits))`` in one C pass over a float64 record (the same
        bits, tested); anything else, and every refusal, goes through ``check_volts`` for its message."""
        if (not self.dac_lsb or not isinstance(volts, np.ndarray) or volts.dtype != np.float64
                or volts.ndim != 2 or volts.shape[0] != N_ELECTRODES or volts.shape[1] == 0):
            return self._dac(check_volts(volts, self.limits))
        lim = check_limits(self.limits, N_ELECTRODES)
        lo, hi = self._dac_codes(lim)
        out = _taylor_kernel.gate_and_quantise(volts, lim, self.dac_lsb, lo, hi)
        if out is None:
            check_volts(volts, lim)   # raises, naming the first offender
            raise RuntimeError("the DAC pass refused a record the voltage gate passes")  # pragma: no cover
        return out

    def measure(self, volts) -> np.ndarray:
        """Apply ``volts`` (7, n) and return the output current (n,) in nA, aligned to them."""
        v = self._gate_and_dac(volts)
        n = v.shape[1]
        # A long record's noise is drawn on a pool thread while the model is evaluated (the same
        # draws in the same order from the noise's own generators: nothing else touches them).
        aside = self._noise is not None and self.threads > 1 and n >= NOISE_ASIDE
        # If the evaluation raises, the noise drawn aside is put back (state saved before the draw), so
        # a failed measure leaves the stream where one thread, which draws after the evaluation, leaves it.
        before = self._noise.get_state() if aside else None
        noise = _pool(self.threads).submit(self._noise.take, n) if aside else None
        try:
            if self._fast is not None:   # it limits BLAS to one thread where it calls BLAS (its .blas)
                current = self._fast.current(v)
            else:
                with self._one_thread():
                    if isinstance(self.model, SurrogateModel) and self.threads > 1:
                        current = self._surrogate_threads(v)
                    else:
                        current = self.model.current(v)
        except BaseException:
            if noise is not None:
                try:
                    noise.result()   # never left running
                finally:
                    self._noise.set_state(before)
            raise
        noise_samples = noise.result() if noise is not None else None
        if self._noise is not None:
            current = current + (noise_samples if noise is not None else self._noise.take(current.size))
        self.samples_measured += current.size
        return self._chain(current)

    def _surrogate_threads(self, v: np.ndarray) -> np.ndarray:
        """The surrogate over ``v`` in blocks of whole chunks on ``threads`` threads (numpy and BLAS
        release the GIL); blocks of at least 8 chunks each, else in this thread."""
        blocks = surrogate_blocks(v.shape[1], min(self.threads, v.shape[1] // (8 * _surrogate.CHUNK)))
        if len(blocks) < 2:
            return self.model.current(v)
        out = np.empty(v.shape[1])
        futures = [(s, e, _pool(self.threads).submit(self.model.current, v[:, s:e])) for s, e in blocks]
        for s, e, f in futures:
            out[s:e] = f.result()
        return out

    def loopback(self, volts) -> np.ndarray:
        """The chain without the device: electrode 1's voltage through a 10 nA/V reference
        resistor. What a spare AI channel wired to an AO output measures on the rig."""
        v = check_volts(volts, self.limits)
        self.samples_measured += v.shape[1]
        return self._chain(10.0 * self._dac(v)[0])

    def chain_response(self, freqs) -> np.ndarray:
        """Exact complex gain of the chain at ``freqs`` (for tests; ``calibrate`` measures it)."""
        f = np.asarray(freqs, dtype=float)
        z = np.exp(-2j * np.pi * f / self.fs)
        h = np.ones_like(z)
        if self.chain_bandwidth:
            alpha = np.exp(-2 * np.pi * self.chain_bandwidth / self.fs)
            h = (1 - alpha) / (1 - alpha * z)
        frac = self.chain_delay - np.floor(self.chain_delay)
        return h * ((1 - frac) + frac * z)
