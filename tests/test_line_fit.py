"""analysis.line_fit (the stderr's power-law fits) against np.polyfit, which it replaces."""
import numpy as np
from hypothesis import given, settings, strategies as st

from hge_embedded.analysis import line_fit


@settings(max_examples=200)
@given(st.integers(0, 2**31 - 1), st.integers(3, 2000), st.floats(-5, 5), st.floats(-50, 50),
       st.floats(1e-6, 10), st.floats(-3, 10))
def test_line_fit_equals_polyfit(seed, n, slope, icpt, noise, x0):
    # log-frequency abscissae as the PSD fits use them (x0 .. x0 + 3, unevenly spaced)
    rng = np.random.default_rng(seed)
    x = np.sort(x0 + 3 * rng.random(n))
    if np.ptp(x) < 1e-6:
        return
    y = slope * x + icpt + noise * rng.standard_normal(n)
    (s, c), cov = line_fit(x, y, cov=True)
    want, want_cov = np.polyfit(x, y, 1, cov=True)
    # Both are backward-stable least-squares solutions of the same 2-column problem: each coefficient is
    # within ~cond(A) eps of the data's own scale (max|y|), cond(A) <= (1 + max|x| / sd(x))^2 for the
    # columns [x, 1]; 64 covers the few operations on either side.
    eps = np.finfo(float).eps
    cond = (1 + np.max(np.abs(x)) / np.std(x)) ** 2
    tol = 64 * cond * eps
    ymax = np.max(np.abs(y))
    assert abs(s - want[0]) <= tol * (abs(want[0]) + ymax / np.std(x))
    assert abs(c - want[1]) <= tol * (abs(want[1]) + ymax * (1 + np.max(np.abs(x)) / np.std(x)))
    # The covariance is Vbase * fac, fac = |r|^2 / (n - 2): the residuals r carry an absolute error of
    # ~tol max|y| each, so fac is known to 2 rms(r) tol max|y| + (tol max|y|)^2, and Vbase to tol.
    r = y - np.polyval(want, x)
    fac = (r @ r) / (n - 2)
    rms = np.sqrt(np.mean(r**2))
    rel = (2 * rms * tol * ymax + (tol * ymax) ** 2) * n / max(fac * (n - 2), 1e-300) + tol
    scale = np.sqrt(np.abs(np.diag(want_cov)))
    assert np.all(np.abs(cov - want_cov) <= rel * (np.abs(want_cov) + np.outer(scale, scale)) + 1e-300)
