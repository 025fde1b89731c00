"""Tests for jaxdeconv.classical.shake: the camera-shake kernels of the synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import interpolate

from jaxdeconv.classical import shake


@pytest.mark.parametrize("n", [4, 6, 9, 12])
def test_spline_matches_scipy_not_a_knot(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(n, 2)) * 5.0
    t = np.linspace(0.0, n - 1.0, 173)
    want = interpolate.CubicSpline(np.arange(n), values, axis=0)(t)
    got = shake.not_a_knot_spline(values, t)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(shake.not_a_knot_spline(values, np.arange(n)), values, atol=1e-12)
    with pytest.raises(ValueError, match="at least 4"):
        shake.not_a_knot_spline(values[:3], t)


def test_splat_keeps_the_mass_of_points_inside():
    pts = np.array([[1.25, 2.5], [3.0, 3.0], [0.5, 0.75]])
    k = shake.splat(pts, (6, 6))
    assert k.sum() == pytest.approx(3.0)
    assert k[3, 3] == pytest.approx(1.0)
    assert k[1, 2] == pytest.approx(0.75 * 0.5)
    # A point off the grid loses what falls outside.
    assert shake.splat(np.array([[5.5, 0.0]]), (6, 6)).sum() == pytest.approx(0.5)


def test_shake_path_is_seeded_and_smooth():
    a = shake.shake_path(np.random.default_rng(3), 200)
    b = shake.shake_path(np.random.default_rng(3), 200)
    c = shake.shake_path(np.random.default_rng(4), 200)
    assert a.shape == (200, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Smooth: the second differences are small next to the first ones.
    assert np.abs(np.diff(a, 2, axis=0)).max() < 0.2 * np.abs(np.diff(a, axis=0)).max()


@pytest.mark.parametrize(("size", "blur"), [(3, 3), (15, 15), (31, 17)])
def test_shake_kernel_is_a_normalised_kernel_of_the_asked_extent(size, blur):
    k = shake.shake_kernel(size, blur, seed=2)
    assert k.shape == (size, size) and k.dtype == np.float32
    assert (k >= 0).all() and float(k.sum()) == pytest.approx(1.0, abs=1e-5)
    rows, cols = np.nonzero(k.any(axis=1))[0], np.nonzero(k.any(axis=0))[0]
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == blur
    # Faint taps are cut.
    assert k[k > 0].min() >= shake.SUPPORT_THRESHOLD * k.max() * 0.999
