"""Tests for jaxdeconv.core.blur, the one blur operator: the valid correlation (direct, FFT,
NumPy) and its adjoints, the correlation as a map of the kernel and its matrix, and the
circular correlation with its normal-equation terms; against SciPy and by adjoint identities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, signal

from jaxdeconv.core import blur, fourier

# Odd kernel sizes on non-square images (and one square image), for the circular operator.
CASES = [((12, 17), 3), ((23, 16), 5), ((20, 20), 7), ((19, 30), 5)]


def _random(shape, seed):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _dot(a, b):
    return float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize(
    "shape,k",
    [((16, 16, 1), 3), ((23, 29, 3), 5), ((40, 37, 1), 9), ((31, 31, 2), 1), ((20, 21, 1), 4)],
)
def test_matches_scipy_correlate2d(method, shape, k):
    x = _random(shape, 0)
    kernel = _random((k, k), 1)
    kernel /= kernel.sum()
    out = np.asarray(jax.jit(blur.valid_correlate, static_argnums=2)(x, kernel, method))
    assert out.shape == (shape[0] - k + 1, shape[1] - k + 1, shape[2])
    for c in range(shape[2]):
        ref = signal.correlate2d(x[:, :, c], kernel, mode="valid")
        np.testing.assert_allclose(out[:, :, c], ref, atol=1e-5)


def test_direct_and_fft_gradients_agree():
    x = jnp.asarray(_random((30, 27, 1), 2))
    kernel = jnp.asarray(_random((7, 7), 3))
    target = jnp.asarray(_random((24, 21, 1), 4))

    def loss(method, x, k):
        return jnp.sum((blur.valid_correlate(x, k, method) - target) ** 2)

    g_direct = jax.grad(lambda x, k: loss("direct", x, k), argnums=(0, 1))(x, kernel)
    g_fft = jax.grad(lambda x, k: loss("fft", x, k), argnums=(0, 1))(x, kernel)
    for a, b in zip(g_direct, g_fft, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_auto_uses_crossover():
    crossover = blur.FFT_MIN_KERNEL_SIZE.get(
        jax.default_backend(), blur.FFT_MIN_KERNEL_SIZE_DEFAULT
    )
    small = jnp.zeros((crossover - 2,) * 2)
    large = jnp.zeros((crossover,) * 2)
    x = jnp.zeros((32, 32, 1))
    # Same numbers either way; check the dispatch through the lowered HLO.
    assert "fft" not in jax.jit(blur.valid_correlate).lower(x, small).as_text().lower()
    assert "fft" in jax.jit(blur.valid_correlate).lower(x, large).as_text().lower()


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="larger than the image"):
        blur.valid_correlate(jnp.zeros((4, 4, 1)), jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        blur.valid_correlate(jnp.zeros((8, 8)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown blur method"):
        blur.valid_correlate(jnp.zeros((8, 8, 1)), jnp.zeros((3, 3)), "wavelet")


# ----------------------------------------------------------------------------------------------
# The adjoint of the valid correlation.


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("shape,k", [((16, 16, 1), 3), ((23, 29, 3), 5), ((20, 21, 2), 4)])
def test_valid_adjoint_identity(method, shape, k):
    """<A x, y> == <x, A^T y> for the valid correlation, direct and FFT."""
    x, kernel = _random(shape, 20), _random((k, k), 21)
    y = _random((shape[0] - k + 1, shape[1] - k + 1, shape[2]), 22)
    ax = blur.valid_correlate(jnp.asarray(x), jnp.asarray(kernel), method)
    aty = blur.valid_correlate_adjoint(jnp.asarray(y), jnp.asarray(kernel), method)
    assert aty.shape == x.shape
    np.testing.assert_allclose(_dot(ax, y), _dot(x, aty), rtol=1e-5)


@pytest.mark.parametrize("shape,k", [((16, 16, 1), 3), ((23, 29, 3), 5), ((12, 9, 1), 9)])
def test_valid_adjoint_is_the_full_convolution_and_agrees_across_methods(shape, k):
    y, kernel = _random(shape, 23), _random((k, k), 24)
    direct = np.asarray(blur.valid_correlate_adjoint(jnp.asarray(y), jnp.asarray(kernel), "direct"))
    fft = np.asarray(blur.valid_correlate_adjoint(jnp.asarray(y), jnp.asarray(kernel), "fft"))
    for c in range(shape[2]):
        want = signal.convolve2d(y[..., c], kernel, mode="full")
        np.testing.assert_allclose(direct[..., c], want, atol=1e-5)
    np.testing.assert_allclose(direct, fft, atol=1e-5)
    with pytest.raises(ValueError, match="unknown blur method"):
        blur.valid_correlate_adjoint(jnp.asarray(y), jnp.asarray(kernel), "wavelet")


def test_valid_adjoint_is_the_gradient_of_the_blur():
    """The adjoint is what autodiff takes through the blur: grad_x <A x, y> = A^T y."""
    x, kernel = jnp.asarray(_random((20, 18, 2), 25)), jnp.asarray(_random((5, 5), 26))
    y = jnp.asarray(_random((16, 14, 2), 27))
    g = jax.grad(lambda v: jnp.vdot(blur.valid_correlate(v, kernel, "direct"), y))(x)
    np.testing.assert_allclose(g, blur.valid_correlate_adjoint(y, kernel, "fft"), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# The correlation as a map of the kernel, and its matrix.


@pytest.mark.parametrize("shape,k", [((18, 21), 3), ((30, 25), 7), ((16, 16), 1)])
def test_correlation_by_image_forward_adjoint_and_matrix(shape, k):
    x, kernel = _random(shape, 30), _random((k, k), 31)
    r = _random((shape[0] - k + 1, shape[1] - k + 1), 32)
    op = blur.correlation_by_image(jnp.asarray(x), k)
    want = signal.correlate2d(x, kernel, mode="valid")
    np.testing.assert_allclose(op.forward(jnp.asarray(kernel)), want, atol=1e-5)
    # The adjoint in the kernel: <x (*) k, r> == <k, A_x^T r>.
    atr = op.adjoint(jnp.asarray(r))
    assert atr.shape == (k, k)
    np.testing.assert_allclose(_dot(want, r), _dot(kernel, atr), rtol=1e-5)
    # The patch matrix is the same map written as a matrix.
    p = np.asarray(blur.patch_matrix(jnp.asarray(x), k))
    assert p.shape == (want.size, k * k)
    np.testing.assert_allclose(p @ kernel.ravel(), want.ravel(), atol=1e-5)
    np.testing.assert_allclose(p.T @ r.ravel(), np.asarray(atr).ravel(), atol=1e-4)


def test_correlation_by_image_on_a_given_canvas_and_bad_input():
    x, kernel = _random((20, 20), 33), _random((5, 5), 34)
    small = blur.correlation_by_image(jnp.asarray(x), 5)
    large = blur.correlation_by_image(jnp.asarray(x), 5, (27, 32))
    assert small.shape == (20, 20) and large.shape == (27, 32)
    np.testing.assert_allclose(small.forward(kernel), large.forward(kernel), atol=1e-5)
    with pytest.raises(ValueError, match="does not hold"):
        blur.correlation_by_image(jnp.asarray(x), 5, (16, 32))
    with pytest.raises(ValueError, match=r"\[Hb, Wb\]"):
        blur.correlation_by_image(jnp.asarray(x)[..., None], 5)
    with pytest.raises(ValueError, match="does not fit"):
        blur.correlation_by_image(jnp.asarray(x), 21)


# ----------------------------------------------------------------------------------------------
# The NumPy implementation and the Gaussian smoothing.


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("shape,k", [((16, 16), 3), ((41, 30), 9), ((20, 21), 4), ((9, 9), 1)])
def test_numpy_matches_jax_and_scipy(method, shape, k):
    x, kernel = _random(shape, 40), _random((k, k), 41)
    got = blur.valid_correlate_numpy(x, kernel, method)
    assert got.dtype == np.float64 and got.shape == (shape[0] - k + 1, shape[1] - k + 1)
    # Float64 throughout for float64 inputs (float32 ones: float32 products in 'direct').
    x64, kernel64 = x.astype(np.float64), kernel.astype(np.float64)
    exact = signal.correlate2d(x64, kernel64, mode="valid")
    np.testing.assert_allclose(blur.valid_correlate_numpy(x64, kernel64, method), exact, atol=1e-9)
    np.testing.assert_allclose(got, exact, atol=1e-5)
    for jax_method in ("direct", "fft"):
        jx = blur.valid_correlate(jnp.asarray(x)[..., None], jnp.asarray(kernel), jax_method)
        np.testing.assert_allclose(np.asarray(jx)[..., 0], got, atol=1e-5)


def test_numpy_rejects_bad_input():
    with pytest.raises(ValueError, match="larger than the image"):
        blur.valid_correlate_numpy(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="square kernel"):
        blur.valid_correlate_numpy(np.zeros((8, 8, 1)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown NumPy blur method"):
        blur.valid_correlate_numpy(np.zeros((8, 8)), np.zeros((3, 3)), "auto")


@pytest.mark.parametrize("sigma", [0.5, 0.6, 2.0])
def test_gaussian_smooth_matches_scipy_with_edge_padding(sigma):
    img = _random((23, 31), 42).astype(np.float64)
    g = blur.gaussian_1d(sigma)
    assert g.sum() == pytest.approx(1.0) and len(g) == 2 * max(1, int(np.ceil(3 * sigma))) + 1
    got = blur.gaussian_smooth_numpy(img, sigma)
    want = ndimage.correlate1d(img, g, axis=0, mode="nearest")
    want = ndimage.correlate1d(want, g, axis=1, mode="nearest")
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert blur.gaussian_smooth_numpy(img, 0.0) is img


# ----------------------------------------------------------------------------------------------
# The circular correlation.


@pytest.mark.parametrize("shape,k", CASES)
def test_forward_is_circular_correlation_centred(shape, k):
    x, kernel = _random(shape, 0), _random((k, k), 1)
    op = blur.circular_correlation(jnp.asarray(kernel), shape, (k // 2, k // 2))
    got = np.asarray(jax.jit(lambda op, x: op.forward(x))(op, x))
    want = signal.correlate2d(x, kernel, mode="same", boundary="wrap")
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_forward_anchor_shifts_the_output(shape, k):
    """Output pixel (i, j) reads tap (a, b) at input pixel (i + a - c0, j + b - c1)."""
    x, kernel = _random(shape, 2), _random((k, k), 3)
    centred = signal.correlate2d(x, kernel, mode="same", boundary="wrap")
    for center in [(0, 0), (k - 1, 1), (1, k - 1)]:
        op = blur.circular_correlation(jnp.asarray(kernel), shape, center)
        want = np.roll(centred, (center[0] - k // 2, center[1] - k // 2), axis=(0, 1))
        np.testing.assert_allclose(np.asarray(op.forward(x)), want, atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_zero_padded_forward_is_the_valid_correlation(shape, k):
    """On a canvas that holds the whole image nothing wraps into the valid part."""
    x, kernel = _random(shape, 4), _random((k, k), 5)
    canvas = (fourier.next_smooth_size(shape[0]), fourier.next_smooth_size(shape[1]))
    op = blur.circular_correlation(jnp.asarray(kernel), canvas)
    got = np.asarray(op.forward(x))[: shape[0] - k + 1, : shape[1] - k + 1]
    np.testing.assert_allclose(got, signal.correlate2d(x, kernel, mode="valid"), atol=1e-5)


@pytest.mark.parametrize("shape,k", CASES)
def test_adjoint_is_the_centred_convolution(shape, k):
    y, kernel = _random(shape, 6), _random((k, k), 7)
    op = blur.circular_correlation(jnp.asarray(kernel), shape, (k // 2, k // 2))
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
        op = blur.circular_correlation(jnp.asarray(kernel), shape, center)
        ax, aty = np.asarray(op.forward(x)), np.asarray(op.adjoint(y))
        assert ax.shape == aty.shape == x.shape
        lhs = np.vdot(ax.astype(np.float64), y.astype(np.float64))
        rhs = np.vdot(x.astype(np.float64), aty.astype(np.float64))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def test_transfer_function_diagonalises_the_operator():
    shape, kernel = (18, 13), _random((5, 5), 11)
    x = _random(shape, 12)
    op = blur.circular_correlation(jnp.asarray(kernel), shape, (2, 2))
    transfer = blur.transfer_function(jnp.asarray(kernel), shape, (2, 2))
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
        blur.circular_correlation(jnp.ones((7, 7)), (5, 9))


@pytest.mark.parametrize("shape,k", CASES)
def test_normal_equation_terms(shape, k):
    """The Fourier products and |T|^2 of the normal equations are the operator's own
    forward, adjoint and A^T A, also with a channel axis (``for_channels``)."""
    x, y, kernel = _random(shape + (2,), 50), _random(shape + (2,), 51), _random((k, k), 52)
    kernel /= kernel.sum()
    op = blur.circular_correlation(jnp.asarray(kernel), shape, (k // 2, k // 2))
    ch = op.for_channels()
    assert ch.spectrum.shape == ch.transfer.shape == op.spectrum.shape + (1,)
    x_f, y_f = fourier.rfft2(jnp.asarray(x)), fourier.rfft2(jnp.asarray(y))
    np.testing.assert_allclose(
        fourier.irfft2(ch.forward_in_fourier(x_f), shape), op.forward(x), atol=1e-5
    )
    np.testing.assert_allclose(
        fourier.irfft2(ch.adjoint_in_fourier(y_f), shape), op.adjoint(y), atol=1e-5
    )
    gram = fourier.irfft2(ch.gram() * x_f, shape)
    np.testing.assert_allclose(gram, op.adjoint(op.forward(x)), atol=1e-5)
    np.testing.assert_array_equal(ch.gram()[..., 0], op.gram())
    assert op.gram().dtype == jnp.float32 and float(jnp.min(op.gram())) >= 0.0
