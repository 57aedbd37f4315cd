"""The sphere task's data against its definition (tasks.py) and the paper's figures, and the
helpers of tools/sphere_study.py that docs/design.md section 6 quotes."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from hge_embedded import tasks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))


@given(st.integers(0, 2**31 - 1))
def test_sphere_has_the_papers_sizes_electrodes_recipe_and_voltage_range(seed):
    t = tasks.sphere(seed)
    assert t.inputs.shape == (300, 3) and t.test_inputs.shape == (1000, 3)
    assert t.input_electrodes == (2, 4, 6)
    assert (t.lr, t.max_iter, t.stop_loss) == (0.015, 300, 0.2)
    for X, z in ((t.inputs, t.targets), (t.test_inputs, t.test_targets)):
        # Balanced classes: half of each (the held-out accuracy is balanced, but corrsig is not).
        assert z.sum() == len(z) // 2
        # Every input within the paper's [-0.7, 0.7] V on each electrode.
        assert np.abs(X).max() <= 0.7
        r = np.linalg.norm(X, axis=1)
        assert r[z == 1].max() <= tasks.SPHERE_INNER
        assert r[z == 0].min() >= tasks.SPHERE_SHELL[0] and r[z == 0].max() <= tasks.SPHERE_SHELL[1]
    # Training and test points are independent draws: no point is shared.
    assert not np.any(np.all(np.isclose(t.inputs[:, None, :], t.test_inputs[None, :, :], atol=0), axis=2))


@pytest.mark.parametrize("cls, r_lo, r_hi", [(1, 0.0, tasks.SPHERE_INNER), (0, *tasks.SPHERE_SHELL)])
def test_sphere_points_are_uniform_in_volume_and_isotropic(cls, r_lo, r_hi):
    """Uniform in volume means r^3 uniform on [r_lo^3, r_hi^3]. Kolmogorov-Smirnov: under that
    law P(sqrt(n) D > 1.95) ~ 0.001, so D < 1.95 / sqrt(n) (fixed seed, n = 10000 per class);
    radii drawn uniformly in r instead give D = 0.385 for the ball (and 0.083 for the shell,
    still above the bound 0.0195). Isotropy: the mean unit vector's components have SD
    1/sqrt(3 n) under the uniform direction law, so each is below 4.5 / sqrt(3 n) (6e-6
    two-sided chance each)."""
    X, z = tasks.sphere_data(np.random.default_rng(123), 20000)
    P = X[z == cls]
    n = len(P)
    r = np.linalg.norm(P, axis=1)
    u = np.sort((r**3 - r_lo**3) / (r_hi**3 - r_lo**3))
    ecdf_hi = np.arange(1, n + 1) / n
    D = max(np.max(ecdf_hi - u), np.max(u - (ecdf_hi - 1.0 / n)))
    assert D < 1.95 / np.sqrt(n)
    m = (P / r[:, None]).mean(axis=0)
    assert np.all(np.abs(m) < 4.5 / np.sqrt(3 * n))


def test_study_hessian_is_exact_on_a_quadratic():
    """Central differences are exact for a quadratic loss (the third derivative is zero): the
    eigenvalues come back to round-off (h = 1e-4, |g| ~ 1: error ~ 1e-16 / 1e-4 = 1e-12 relative)."""
    import sphere_study
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, -0.5], [0.0, -0.5, 0.1]])
    g = lambda c: (0.5 * c @ A @ c, A @ c)  # noqa: E731
    H = sphere_study.hessian(g, np.array([0.3, -0.2, 0.5]))
    np.testing.assert_allclose(np.linalg.eigvalsh(H), np.linalg.eigvalsh(A), rtol=0, atol=1e-9)


def test_study_loss_terms_rebuild_corrsig():
    """E = (1 - rho) (1 + exp(-y_sep / scale)) from the terms the study prints (to round-off)."""
    import sphere_study
    rng = np.random.default_rng(4)
    z = np.repeat([0.0, 1.0], 20)
    y = rng.normal(0, 3, 40) + 5 * z
    for scale in (1.0, 10.0):
        E, rho, sep = sphere_study.loss_terms(y, z, scale)
        assert E == pytest.approx((1 - rho) * (1 + np.exp(-sep / scale)), rel=1e-12)


@pytest.mark.parametrize("kind, r_in, r_out", [("ours", 0.3, 0.5), ("ball", 0.7 / 2 ** (1 / 3), 0.7 / 2 ** (1 / 3)),
                                               ("cube", 0.6893, 0.6893)])
def test_study_encodings_are_balanced_within_the_range_and_split_at_their_radius(kind, r_in, r_out):
    """The encodings docs/design.md compares: half of each class, inputs within +-0.7 V, class 1
    inside r_in and class 0 outside r_out. The cube's split radius holds half the cube's volume:
    (4/3) pi r^3 = 1.4^3 / 2 gives r = 0.68932 V (the bound 0.6893 holds to 4e-5 V)."""
    import sphere_study
    X, z = sphere_study.variant_data(kind, np.random.default_rng(3), 400)
    r = np.linalg.norm(X, axis=1)
    assert z.sum() == 200 and np.abs(X).max() <= 0.7
    assert r[z == 1].max() <= r_in + 4e-5 and r[z == 0].min() >= r_out - 4e-5
