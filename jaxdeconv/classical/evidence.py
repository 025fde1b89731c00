"""Blind evidence for a kernel: the marginal likelihood of the blurry image under a Gaussian
image prior, in closed form in the Fourier domain (no ground truth, no deconvolution).

The model: the sharp image's forward differences are white Gaussian with variance ``s2``, so
its spectrum has variance ``s2 / |D(w)|^2`` (``|D|^2`` the summed power of the two difference
filters); the blur multiplies it by ``|K(w)|^2``; white noise adds ``n2``. Each frequency of
the blurry image is then an independent Gaussian of variance ``v(w) = s2 |K|^2 / |D|^2 + n2``
and ``log p(y | k) = -sum_w (|Y(w)|^2 / v(w) + log v(w))`` up to constants. With the ratio
``r = n2 / s2`` fixed, the best ``s2`` has a closed form; the ratio is searched on a grid, so
every kernel is scored at its own best prior and noise level (a profile likelihood).

Unlike the joint fit of image and kernel, which a delta kernel wins, the marginal likelihood
charges a kernel for the frequencies it suppresses (the ``log v`` term): this is why Levin et
al. (CVPR 2009) estimate the kernel by it. Here it only ranks finished candidates (seeds or
variants of one estimate). It sees the kernel's power spectrum, not its phase: a kernel and its
mirror image score alike.

Real photographs carry some blur besides the motion (the lens, demosaicing, resampling): on
Levin's photographs the evidence prefers every true kernel smoothed by a Gaussian of 0.75-1 px
to the true kernel itself, and even on synthetic images the Gaussian prior leans towards
smoother kernels. ``camera_blur`` gives every candidate the same Gaussian before it is scored
(:func:`with_camera_blur`): a camera's share is then accounted for alike in all of them, and
how smooth a candidate is weighs less against its shape (a right sharp kernel is no longer
beaten by a wrong, smoother one).

The image is first made periodic (Moisan's periodic-plus-smooth decomposition, the smooth part
dropped) so that the wrap-around of the FFT adds no cross of false edges to the spectrum.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from jaxdeconv.classical import canvas
from jaxdeconv.core import blur, fourier

NOISE_TO_PRIOR = tuple(float(r) for r in np.logspace(-6.0, 0.0, 61))  # the grid of n2 / s2


def _grey(image: ArrayLike, what: str) -> jnp.ndarray:
    x = jnp.asarray(image, jnp.float32)
    if x.ndim == 3:
        x = x.mean(axis=-1)
    if x.ndim != 2 or min(x.shape) < 2:
        raise ValueError(f"{what} must be [H, W] or [H, W, C] with H, W >= 2, got {x.shape}")
    return x


def _difference_power(shape: tuple[int, int]) -> jnp.ndarray:
    """``|D_h|^2 + |D_v|^2`` on an ``rfft2`` grid of ``shape`` (zero only at the mean)."""
    d_h, d_v = canvas.difference_operators(shape)
    return (d_h.gram() + d_v.gram()).reshape(shape[0], shape[1] // 2 + 1)


def _half_plane_weights(shape: tuple[int, int]) -> jnp.ndarray:
    """How many frequencies of the full spectrum each ``rfft2`` column stands for (1 or 2)."""
    w = shape[1]
    cols = np.full(w // 2 + 1, 2.0)
    cols[0] = 1.0
    if w % 2 == 0:
        cols[-1] = 1.0
    return jnp.broadcast_to(jnp.asarray(cols, jnp.float32), (shape[0], w // 2 + 1))


def periodic_component(image: ArrayLike) -> jnp.ndarray:
    """The periodic part of a grey ``[H, W]`` image (Moisan, J. Math. Imaging Vision 2011): the
    image less the smooth image whose Laplacian cancels the jumps across its opposite borders."""
    y = _grey(image, "image")
    shape = y.shape
    jump_v = y[-1, :] - y[0, :]
    jump_h = y[:, -1] - y[:, 0]
    v = jnp.zeros(shape, jnp.float32)
    v = v.at[0, :].add(jump_v).at[-1, :].add(-jump_v)
    v = v.at[:, 0].add(jump_h).at[:, -1].add(-jump_h)
    power = _difference_power(shape)
    smooth_f = -fourier.rfft2(v) / jnp.where(power > 0, power, 1.0)
    smooth_f = jnp.where(power > 0, smooth_f, 0.0)
    return y - fourier.irfft2(smooth_f, shape)


def gaussian_taps(sigma: float) -> np.ndarray:
    """The normalised 1-D sampled Gaussian of standard deviation ``sigma`` px on
    ``2 * round(4 sigma) + 1`` taps (``[1.]`` for ``sigma = 0``)."""
    if not sigma >= 0:
        raise ValueError(f"sigma must be 0 or more, got {sigma!r}")
    radius = int(4.0 * sigma + 0.5)
    if radius == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def with_camera_blur(kernel: ArrayLike, sigma: float) -> np.ndarray:
    """``kernel [K, K]`` convolved with an isotropic Gaussian of ``sigma`` px (the full
    convolution: ``[K + 2r, K + 2r]``, ``r = round(4 sigma)``); ``sigma = 0``: the kernel."""
    k = np.asarray(kernel, np.float64)
    g = gaussian_taps(sigma)
    if g.size == 1:
        return k
    rows = np.apply_along_axis(np.convolve, 0, k, g)
    return np.apply_along_axis(np.convolve, 1, rows, g)


def kernel_scorer(blurry: ArrayLike, camera_blur: float = 0.0) -> Callable[[ArrayLike], float]:
    """:func:`log_evidence` of ``blurry`` as a function of the kernel alone: the image's
    periodic part and spectra are computed once, for ranking many candidate kernels. Each
    kernel is scored as :func:`with_camera_blur` ``(kernel, camera_blur)``."""
    gaussian_taps(camera_blur)  # checks it
    y = periodic_component(blurry)
    shape = y.shape
    power_y = jnp.abs(fourier.rfft2(y)) ** 2 / (shape[0] * shape[1])
    power_d = _difference_power(shape)
    keep = power_d > 0  # the mean carries no information about the blur
    weights = jnp.where(keep, _half_plane_weights(shape), 0.0)
    n = jnp.sum(weights)
    inverse_d = 1.0 / jnp.where(keep, power_d, 1.0)
    ratios = [jnp.float32(r) for r in NOISE_TO_PRIOR]

    def score(kernel: ArrayLike) -> float:
        k = np.asarray(kernel)
        if k.ndim == 2:
            k = with_camera_blur(k, camera_blur)
        k = jnp.asarray(k, jnp.float32)
        if k.ndim != 2 or k.shape[0] > shape[0] or k.shape[1] > shape[1]:
            raise ValueError(f"kernel must be [K, K] and fit the {shape} image, got {k.shape}")
        total = jnp.sum(k)
        if not bool(total > 0):
            raise ValueError("kernel has no positive mass")
        power_k = blur.circular_correlation(k / total, shape).gram()
        signal = power_k * inverse_d
        best = -jnp.inf
        for r in ratios:  # one ratio at a time: memory of one spectrum, for large photos
            a = signal + r  # v / s2
            s2 = jnp.sum(weights * power_y / a) / n
            best = jnp.maximum(best, -n * jnp.log(s2) - jnp.sum(weights * jnp.log(a)) - n)
        return float(best / n)

    return score


def log_evidence(blurry: ArrayLike, kernel: ArrayLike, camera_blur: float = 0.0) -> float:
    """``max`` over :data:`NOISE_TO_PRIOR` of the profile log marginal likelihood of
    ``blurry`` (grey ``[H, W]`` or ``[H, W, C]``, channels averaged) blurred by ``kernel``
    ``[K, K]`` (normalised here), per frequency. Higher is better; only differences between
    kernels on one image mean anything. ``camera_blur``: see :func:`with_camera_blur`. Several
    kernels on one image: :func:`kernel_scorer`."""
    return kernel_scorer(blurry, camera_blur)(kernel)
