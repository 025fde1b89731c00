"""Tests for jaxdeconv.core.fourier: the circular correlation operator against SciPy, and its
adjoint."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from jaxdeconv.core import fourier

# Odd kernel sizes on non-square images (and one square image).
CASES = [((12, 17), 3), ((23, 16), 5), ((20, 20), 7), ((19, 30), 5)]


def _random(shape, seed):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_next_smooth_size():
    assert fourier.next_smooth_size(281) == 288
    assert fourier.next_smooth_size(255) == 256
    assert fourier.next_smooth_size(7) == 8
    assert fourier.next_smooth_size(1) == 1


@pytest.mark.parametrize("shape,k", CASES)
def test_forward_is_circular_correlation_centred(shape, k):
    x, kernel = _random(shape, 0), _random((k, k), 1)
    op = fourier.circular_correlation(jnp.asarray(kernel), shape, (k // 2, k // 2))
    got = np.asarray(jax.jit(lambda op, x: op.forward(x))(op, x))
    want = signal.correlate2d(x, kernel, mode="same", boundary="wrap")
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_forward_anchor_shifts_the_output(shape, k):
    """Output pixel (i, j) reads tap (a, b) at input pixel (i + a - c0, j + b - c1)."""
    x, kernel = _random(shape, 2), _random((k, k), 3)
    centred = signal.correlate2d(x, kernel, mode="same", boundary="wrap")
    for center in [(0, 0), (k - 1, 1), (1, k - 1)]:
        op = fourier.circular_correlation(jnp.asarray(kernel), shape, center)
        want = np.roll(centred, (center[0] - k // 2, center[1] - k // 2), axis=(0, 1))
        np.testing.assert_allclose(np.asarray(op.forward(x)), want, atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_zero_padded_forward_is_the_valid_correlation(shape, k):
    """On a canvas that holds the whole image nothing wraps into the valid part."""
    x, kernel = _random(shape, 4), _random((k, k), 5)
    canvas = (fourier.next_smooth_size(shape[0]), fourier.next_smooth_size(shape[1]))
    op = fourier.circular_correlation(jnp.asarray(kernel), canvas)
    got = np.asarray(op.forward(x))[: shape[0] - k + 1, : shape[1] - k + 1]
    np.testing.assert_allclose(got, signal.correlate2d(x, kernel, mode="valid"), atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_adjoint_is_the_centred_convolution(shape, k):
    y, kernel = _random(shape, 6), _random((k, k), 7)
    op = fourier.circular_correlation(jnp.asarray(kernel), shape, (k // 2, k // 2))
    want = signal.convolve2d(y, kernel, mode="same", boundary="wrap")
    np.testing.assert_allclose(np.asarray(op.adjoint(y)), want, atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
@pytest.mark.parametrize("channels", [None, 3])
def test_adjoint_identity(shape, k, channels):
    """<A x, y> == <x, A^T y>, for any anchor and with channels sharing the kernel."""
    extra = () if channels is None else (channels,)
    x, y = _random(shape + extra, 8), _random(shape + extra, 9)
    kernel = _random((k, k), 10)
    for center in [(0, 0), (k // 2, k // 2), (k - 1, 0)]:
        op = fourier.circular_correlation(jnp.asarray(kernel), shape, center)
        ax, aty = np.asarray(op.forward(x)), np.asarray(op.adjoint(y))
        assert ax.shape == aty.shape == x.shape
        lhs = np.vdot(ax.astype(np.float64), y.astype(np.float64))
        rhs = np.vdot(x.astype(np.float64), aty.astype(np.float64))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_transfer_function_diagonalises_the_operator():
    shape, kernel = (18, 13), _random((5, 5), 11)
    x = _random(shape, 12)
    op = fourier.circular_correlation(jnp.asarray(kernel), shape, (2, 2))
    transfer = fourier.transfer_function(jnp.asarray(kernel), shape, (2, 2))
    np.testing.assert_array_equal(np.asarray(op.transfer), np.asarray(transfer))
    np.testing.assert_allclose(
        np.fft.rfft2(np.asarray(op.forward(x))),
        np.asarray(transfer) * np.fft.rfft2(x),
        atol=1e-4,
    )
    # The spectrum methods reuse a spectrum: the same numbers as the image methods.
    x_f = fourier.rfft2(jnp.asarray(x))
    np.testing.assert_array_equal(op.forward_spectrum(x_f), op.forward(x))
    np.testing.assert_array_equal(op.adjoint_spectrum(x_f), op.adjoint(x))


def test_kernel_larger_than_the_canvas_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        fourier.circular_correlation(jnp.ones((7, 7)), (5, 9))
