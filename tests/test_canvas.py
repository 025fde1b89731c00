"""Tests for jaxdeconv.classical.canvas: the extended periodic canvas of the non-blind solvers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from jaxdeconv.classical import canvas


def _smooth_image(size: int) -> np.ndarray:
    r, c = np.mgrid[0:size, 0:size] / size
    img = 0.5 + 0.3 * np.sin(2.5 * r + 1.0) * np.cos(1.5 * c)
    img[size // 4 : size // 2, size // 3 : size // 2] += 0.15
    return img.astype(np.float32)


def test_periodic_extension_keeps_image_and_wraps_smoothly():
    x = _smooth_image(40)
    ext = np.asarray(canvas.periodic_extend(canvas.periodic_extend(x, 64, 0), 60, 1))
    assert ext.shape == (64, 60)
    np.testing.assert_array_equal(ext[:40, :40], x)
    # Largest jump between neighbours on the periodic canvas (including the wrap-around)
    # is no larger than inside the image itself.
    jump = max(
        np.abs(np.diff(ext, axis=0, append=ext[:1])).max(),
        np.abs(np.diff(ext, axis=1, append=ext[:, :1])).max(),
    )
    inside = max(np.abs(np.diff(x, axis=0)).max(), np.abs(np.diff(x, axis=1)).max())
    assert jump <= inside + 1e-6


def test_prepare_blurs_with_the_kernel_centred():
    """The transfer function of the padded problem is the circular correlation with the
    kernel's centre tap on the output pixel."""
    rng = np.random.default_rng(1)
    y = rng.random((12, 15)).astype(np.float32)
    k = rng.random((5, 5)).astype(np.float32)
    yp, op, hw, squeeze = canvas.prepare(y, k, pad=3)
    assert hw == (12, 15) and squeeze and yp.shape[2] == 1
    assert yp.shape[0] >= 12 + 6 and yp.shape[1] >= 15 + 6
    assert op.shape == yp.shape[:2] and op.transfer.shape[-1] == 1  # broadcasts over channels
    np.testing.assert_array_equal(np.asarray(yp)[:12, :15, 0], y)
    want = scipy.ndimage.correlate(np.asarray(yp)[..., 0].astype(np.float64), k, mode="wrap")
    np.testing.assert_allclose(np.asarray(op.forward(yp))[..., 0], want, atol=1e-5)
    got = np.fft.irfft2(
        np.asarray(op.transfer)[..., 0] * np.fft.rfft2(np.asarray(yp)[..., 0]), s=yp.shape[:2]
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_splitting_operators_are_the_difference_and_blur_normal_terms():
    rng = np.random.default_rng(2)
    y = rng.random((10, 13, 2)).astype(np.float32)
    k = rng.random((3, 3)).astype(np.float32)
    yp, op, hw, _ = canvas.prepare(y, k, pad=3)
    shape = yp.shape[:2]
    (d_h, d_v), ktk, dtd, observed = canvas.splitting_operators(op, shape, hw)
    dh, dv = canvas.forward_diffs(yp)
    np.testing.assert_allclose(d_h.forward(yp), dh, atol=1e-5)
    np.testing.assert_allclose(d_v.forward(yp), dv, atol=1e-5)
    np.testing.assert_array_equal(ktk, op.gram())
    np.testing.assert_array_equal(dtd, d_h.gram() + d_v.gram())
    assert observed.shape == shape + (1,) and int(observed.sum()) == 10 * 13
    # The right-hand side's gradient part is the adjoint of the differences.
    wh, wv = jnp.asarray(rng.random(yp.shape), jnp.float32), jnp.asarray(rng.random(yp.shape))
    rhs = canvas.difference_adjoint_in_fourier((d_h, d_v), wh, wv)
    want = np.asarray(d_h.adjoint(wh) + d_v.adjoint(wv))
    np.testing.assert_allclose(
        np.fft.irfft2(np.asarray(rhs), s=shape, axes=(0, 1)), want, atol=1e-5
    )


def test_crop_to_frame_cuts_and_clips():
    x = jnp.linspace(-1.0, 2.0, 8 * 9).reshape(8, 9, 1)
    out = np.asarray(canvas.crop_to_frame(x, (5, 6), squeeze=True))
    assert out.shape == (5, 6)
    assert out.min() == 0.0 and out.max() <= 1.0


def test_prepare_rejects_even_kernels_and_negative_pad():
    with pytest.raises(ValueError, match="K odd"):
        canvas.prepare(np.zeros((8, 8)), np.ones((4, 4)), None)
    with pytest.raises(ValueError, match="pad"):
        canvas.prepare(np.zeros((8, 8)), np.ones((3, 3)), -1)
