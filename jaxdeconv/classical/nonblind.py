"""Non-blind deconvolution: recover a sharp image from a blurry one and a known kernel.

Conventions (as everywhere in jaxdeconv):

* Images are float32 in [0, 1], ``[H, W]`` or ``[H, W, C]``; channels are deblurred
  independently with the same kernel. The output has the input's shape and is clipped to [0, 1].
* The kernel ``k`` is a *correlation* kernel ``[K, K]`` (K odd, non-negative, sums to one) for a
  'same'-size blurry image: ``y[i, j] = sum_{a, b} k[a, b] x[i + a - K//2, j + b - K//2]``.

The solvers, one module per idea, all on the same extended periodic canvas
(:mod:`jaxdeconv.classical.canvas`):

* :mod:`jaxdeconv.classical.gradient_prior`: ``hyper_laplacian_deconv`` (Krishnan & Fergus,
  the final step of the two-stage result), ``wiener_deconv`` (its quadratic counterpart) and
  ``l0_gradient_deconv`` (the latent image of the kernel polish);
* :mod:`jaxdeconv.classical.outlier_robust`: ``outlier_robust_deconv``, for clipped highlights
  and other outliers.

This module re-exports them and holds the non-blind step of a run: ``final_deconv`` dispatches
on ``config.nonblind.method`` ('auto' picks the outlier-robust solver when ``clipped_fraction``
of the blurry image is non-trivial), with the data weight lowered on noisy images
(``adapted_lam``, from ``estimate_noise``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdeconv import config as config_lib
from jaxdeconv.classical.canvas import DETERMINISTIC
from jaxdeconv.classical.gradient_prior import (
    DEFAULT_LAM,
    DEFAULT_NSR,
    hyper_laplacian_deconv,
    hyper_laplacian_prox,
    l0_gradient_deconv,
    wiener_deconv,
)
from jaxdeconv.classical.outlier_robust import (
    DEFAULT_CLIP_THRESHOLD,
    DEFAULT_OUTLIER_PROB,
    DEFAULT_OUTLIER_SIGMA,
    clipped_fraction,
    outlier_robust_deconv,
)
from jaxdeconv.core import blur

__all__ = [
    "DEFAULT_CLIP_THRESHOLD",
    "DEFAULT_LAM",
    "DEFAULT_NSR",
    "DEFAULT_OUTLIER_PROB",
    "DEFAULT_OUTLIER_SIGMA",
    "DETERMINISTIC",
    "METHODS",
    "adapted_lam",
    "choose_method",
    "clipped_fraction",
    "estimate_noise",
    "final_deconv",
    "hyper_laplacian_deconv",
    "hyper_laplacian_prox",
    "l0_gradient_deconv",
    "outlier_robust_deconv",
    "wiener_deconv",
]


def estimate_noise(image: ArrayLike) -> float:
    """Standard deviation of additive white noise in ``image`` (``[H, W]`` or ``[H, W, C]``).

    The 3x3 mask [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] is the difference of two Laplacians; it
    cancels constant, linear and most smooth content, so its mean absolute response over the
    image is dominated by noise: for Gaussian noise of std s it is 6 s sqrt(2 / pi)
    (Immerkaer 1996). Averaged over channels. Blurred photos suit it well (little fine
    texture is left to mistake for noise); JPEG-compressed noise reads low.
    """
    x = jnp.asarray(image, jnp.float32)
    if x.ndim == 2:
        x = x[..., None]
    mask = jnp.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    response = blur.valid_correlate(x, mask, "direct")  # [H - 2, W - 2, C]
    per_channel = [jnp.mean(jnp.abs(response[..., c])) for c in range(x.shape[-1])]
    return float(jnp.mean(jnp.stack(per_channel)) * math.sqrt(math.pi / 2) / 6.0)


def adapted_lam(blurry: ArrayLike, cfg=None) -> float:
    """The data weight of the final non-blind step for ``blurry``: ``cfg.lam``, lowered to
    ``cfg.noise_lam_scale / sigma`` for an image whose estimated noise std ``sigma``
    (:func:`estimate_noise`) asks for more regularisation, when ``cfg.noise_adaptive``.

    Measured with the true kernels on the synthetic quick suite (docs/performance.md): the
    fixed weight 5000 loses 3.6-7.3 dB at 1-2 % noise against the best weight, which sits
    near 20 / sigma; the shipped Levin and Lai images (sigma 0.0014-0.0026) keep 5000.
    """
    nb = _nonblind_block(cfg)
    lam = float(nb.lam)
    if not nb.noise_adaptive:
        return lam
    sigma = estimate_noise(blurry)
    return min(lam, float(nb.noise_lam_scale) / max(sigma, 1e-6))


# ----------------------------------------------------------------------------------------------
# The final (two-stage) non-blind step of a run.

METHODS = ("auto", "hyper_laplacian", "outlier_robust")


def _nonblind_block(cfg):
    """The ``nonblind`` block from a full run config, the block itself, or None (defaults),
    with any field it lacks (a config saved by an older version) from the defaults."""
    if cfg is not None and "nonblind" in cfg:
        return config_lib.with_defaults(cfg.nonblind, "nonblind")
    if cfg is None or "method" not in cfg:
        return config_lib.default_config().nonblind
    return config_lib.with_defaults(cfg, "nonblind")


def choose_method(blurry: ArrayLike, cfg=None) -> str:
    """The non-blind method ``final_deconv`` uses for ``blurry``: ``cfg.method``, or for
    ``'auto'`` the outlier-robust one when at least ``cfg.auto_min_clipped_fraction`` of the
    pixels are clipped (:func:`clipped_fraction` at ``cfg.clip_threshold``)."""
    nb = _nonblind_block(cfg)
    if nb.method not in METHODS:
        raise ValueError(f"nonblind.method must be one of {METHODS}, got {nb.method!r}")
    if nb.method != "auto":
        return nb.method
    frac = clipped_fraction(blurry, threshold=nb.clip_threshold)
    return "outlier_robust" if frac >= nb.auto_min_clipped_fraction else "hyper_laplacian"


def final_deconv(blurry: ArrayLike, kernel: ArrayLike, cfg=None) -> jax.Array:
    """Non-blind deconvolution of ``blurry`` with ``kernel`` as configured by ``cfg``.

    Args:
      blurry: 'same'-size blurry image ``[H, W]`` or ``[H, W, C]`` in [0, 1].
      kernel: correlation kernel ``[K, K]``, K odd, non-negative, summing to one.
      cfg: a run config (its ``nonblind`` block is used), the ``nonblind`` block itself, or
        None for the defaults of ``config.default_config()``.

    Returns:
      The deblurred image, same shape as ``blurry``, float32 clipped to [0, 1].
    """
    nb = _nonblind_block(cfg)
    method = choose_method(blurry, nb)
    lam = adapted_lam(blurry, nb)
    if method == "hyper_laplacian":
        return hyper_laplacian_deconv(blurry, kernel, lam=lam, alpha=nb.alpha)
    return outlier_robust_deconv(
        blurry,
        kernel,
        lam=lam,
        alpha=nb.alpha,
        clip_threshold=nb.clip_threshold,
        outlier_sigma=nb.outlier_sigma,
        outlier_prob=nb.outlier_prob,
        inner_iters=nb.inner_iters,
        cg_iters=nb.cg_iters,
    )
