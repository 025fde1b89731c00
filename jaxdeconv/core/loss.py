"""The Monte-Carlo loss of the method (paper eq. 23-27), for one image.

For N draws of the image net's randomness (input noise ``eps_i`` and dropout masks ``M_i``):

    L = 1/N sum_i D(valid_correlate(Gx(zx + eps_i; M_i), Gk(zk)) - y) + mu ||Gk(zk)||^2

where the data term ``D`` is ``data_term='sum'``, the squared norm of eq. 24 (a sum over
pixels), or ``'mean'``, the per-pixel mean (SelfDeblur's MSE). The choice changes the weight
of ``mu`` relative to the data by the number of pixels (docs/fidelity.md). An optional
total-variation term on the image gives the MLE + TV baseline (paper eq. 8), and ``extra``
adds any further terms of the draws and the kernel (the train step's extra loss terms,
``jaxdeconv.core.plugins``). Draws are a ``jax.vmap`` over keys; :func:`draw_keys` derives
one key per draw and network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdeconv.core import blur

DATA_TERMS = ("sum", "mean")
RANDOMIZE = ("image", "kernel", "both")


class LossTerms(NamedTuple):
    total: jax.Array
    data: jax.Array
    kernel_norm: jax.Array
    tv: jax.Array
    extra: Any = None  # the weighted sum of the extra terms (None: there are none)
    extra_metrics: Any = None  # name -> scalar, from the extra terms (None: there are none)


# (images [N, Hb, Wb, C], kernel [K, K] or [N, K, K]) -> (weighted sum, metrics dict)
Extra = Callable[[jax.Array, jax.Array], tuple[jax.Array, dict]]


def draw_keys(
    key: jax.Array, num_draws: int, randomize: str = "image"
) -> tuple[jax.Array | None, jax.Array | None]:
    """Per-draw keys ``([N] for the image net, [N] for the kernel net)``; None for a network
    that is not sampled.

    With both networks sampled, the two sets come from the two halves of ``split(key)``, so no
    kernel draw can reuse an image draw's key. (Deriving the kernel's from
    ``fold_in(key, 1)`` beside ``split(key, N)`` for the images, as before, collided for
    N >= 2: with this JAX, ``fold_in(key, i)`` equals ``split(key, N)[i]``.) With the image
    net alone (the paper), the image keys are ``split(key, N)``.
    """
    if randomize not in RANDOMIZE:
        raise ValueError(f"randomize must be one of {RANDOMIZE}, got {randomize!r}")
    if randomize == "image":
        return jax.random.split(key, num_draws), None
    if randomize == "kernel":
        return None, jax.random.split(key, num_draws)
    key_x, key_k = jax.random.split(key)
    return jax.random.split(key_x, num_draws), jax.random.split(key_k, num_draws)


def _draws(net, params, z, keys, noise_std, dropout_rate, **kwargs):
    """One stochastic output of ``net`` per key of ``keys [N]``; each key is split into the
    input-noise and dropout streams."""

    def one(k):
        k_noise, k_drop = jax.random.split(k)
        return net.apply(
            params,
            z,
            noise_std,
            dropout_rate,
            rngs={"noise": k_noise, "dropout": k_drop},
            **kwargs,
        )

    return jax.vmap(one)(keys)


def sample_images(
    image_net: nn.Module,
    params_x,
    zx: jax.Array,
    key: jax.Array,
    num_draws: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> jax.Array:
    """``num_draws`` stochastic outputs of Gx, ``[N, Hb, Wb, C]``, keys ``split(key, N)``."""
    return _draws(
        image_net, params_x, zx, jax.random.split(key, num_draws), noise_std, dropout_rate
    )


def sample_kernels(
    kernel_net: nn.Module,
    params_k,
    zk: jax.Array,
    key: jax.Array,
    num_draws: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> jax.Array:
    """``num_draws`` stochastic kernels ``[N, K, K]`` (for the randomised-kernel ablation),
    keys ``split(key, N)``."""
    return _draws(
        kernel_net,
        params_k,
        zk,
        jax.random.split(key, num_draws),
        noise_std,
        dropout_rate,
        deterministic=False,
    )


def total_variation(x: jax.Array) -> jax.Array:
    """Mean anisotropic total variation of ``[H, W, C]``."""
    return jnp.mean(jnp.abs(jnp.diff(x, axis=0))) + jnp.mean(jnp.abs(jnp.diff(x, axis=1)))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> jax.Array:
    g = jnp.exp(-0.5 * (jnp.arange(size) - size // 2) ** 2 / sigma**2)
    g = g / jnp.sum(g)
    return jnp.outer(g, g)


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean SSIM of ``x`` and ``y [H, W, C]`` in [0, 1] (Gaussian window 11 px, sigma 1.5, the
    usual constants (0.01)^2 and (0.03)^2; 'valid' windows only). Differentiable."""
    w = _gaussian_window()

    def f(a):
        return blur.valid_correlate(a, w, "direct")

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    return jnp.mean(num / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))


def _is_zero(weight) -> bool:
    """A weight that is the plain number 0 (the term is left out of the program); a traced
    weight always keeps its term, whatever value it takes."""
    return isinstance(weight, int | float) and weight == 0


def loss_from_images(
    images: jax.Array,
    kernel: jax.Array,
    y: jax.Array,
    *,
    mu: jax.Array | float,
    tv_weight: jax.Array | float = 0.0,
    blur_method: str = "auto",
    data_term: str = "mean",
    ssim_weight: jax.Array | float = 0.0,
    grad_weight: jax.Array | float = 0.0,
    extra: Extra | None = None,
) -> LossTerms:
    """The loss for draws ``images [N, Hb, Wb, C]`` and ``kernel [K, K]`` (or one kernel per
    draw, ``[N, K, K]``) against ``y [H, W, C]``.

    ``data_term``: ``'sum'`` (squared norm, eq. 24) or ``'mean'`` (per-pixel mean); either
    way averaged over the draws. ``ssim_weight`` ``w`` (a number or a traced scalar) blends in
    ``1 - SSIM`` of the re-blurred draws: ``(1 - w) * squares + w * (1 - SSIM)`` (SelfDeblur's
    released Levin script switches to ``1 - SSIM`` after 1000 steps; ``w`` 0 skips SSIM).
    ``grad_weight`` adds that weight times the same squares of the residual's horizontal and
    vertical differences (a data term on gradients, which weighs edges, where a kernel's shape
    shows, above flat areas; 0 skips it). ``extra(images, kernel) -> (value, metrics)`` is
    added to the total as it is (weights already applied) and kept in ``LossTerms.extra`` and
    ``LossTerms.extra_metrics``.
    """
    if data_term not in DATA_TERMS:
        raise ValueError(f"data_term must be one of {DATA_TERMS}, got {data_term!r}")
    kernel_axis = 0 if kernel.ndim == 3 else None
    blurred = jax.vmap(
        lambda x, k: blur.valid_correlate(x, k, blur_method), in_axes=(0, kernel_axis)
    )(images, kernel)
    residual = blurred - y

    def squares(r):
        sq = jnp.square(r)
        return jnp.mean(sq) if data_term == "mean" else jnp.sum(sq) / sq.shape[0]

    data = squares(residual)
    if not _is_zero(grad_weight):
        data = data + grad_weight * (
            squares(jnp.diff(residual, axis=1)) + squares(jnp.diff(residual, axis=2))
        )
    if not _is_zero(ssim_weight):
        dissimilarity = 1.0 - jnp.mean(jax.vmap(lambda b: ssim(b, y))(blurred))
        data = (1.0 - ssim_weight) * data + ssim_weight * dissimilarity
    kernel_norm = jnp.sum(jnp.square(kernel)) / (kernel.shape[0] if kernel.ndim == 3 else 1)
    tv = jnp.mean(jax.vmap(total_variation)(images)) if not _is_zero(tv_weight) else jnp.zeros(())
    total = data + mu * kernel_norm + tv_weight * tv
    if extra is None:
        return LossTerms(total, data, kernel_norm, tv)
    value, metrics = extra(images, kernel)
    return LossTerms(total + value, data, kernel_norm, tv, value, metrics)


def mc_loss(
    params_x,
    params_k,
    y: jax.Array,
    zx: jax.Array,
    zk: jax.Array,
    key: jax.Array,
    *,
    image_net: nn.Module,
    kernel_net: nn.Module,
    num_draws: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
    mu: jax.Array | float,
    tv_weight: jax.Array | float = 0.0,
    blur_method: str = "auto",
    randomize: str = "image",
    kernel_dropout_rate: jax.Array | float | None = None,
    data_term: str = "mean",
    ssim_weight: jax.Array | float = 0.0,
    grad_weight: jax.Array | float = 0.0,
    extra: Extra | None = None,
) -> LossTerms:
    """Monte-Carlo loss for one blurry image ``y [H, W, C]``; differentiable in both params.

    ``randomize``: which network is sampled, ``'image'`` (the paper), ``'kernel'`` or
    ``'both'``; a network not sampled gives its deterministic output to every draw. A sampled
    kernel net uses the input-noise level ``noise_std`` and its own dropout rate
    ``kernel_dropout_rate`` (default: ``dropout_rate``). The same ``key`` gives the same draws
    (:func:`draw_keys`), whatever the parameters. ``extra``: as for :func:`loss_from_images`,
    given the draws of both networks.
    """
    keys_x, keys_k = draw_keys(key, num_draws, randomize)
    if keys_k is None:
        kernel = kernel_net.apply(params_k, zk)
    else:
        rate_k = dropout_rate if kernel_dropout_rate is None else kernel_dropout_rate
        kernel = _draws(kernel_net, params_k, zk, keys_k, noise_std, rate_k, deterministic=False)
    if keys_x is None:
        images = image_net.apply(params_x, zx, deterministic=True)[None]
        images = jnp.broadcast_to(images, (num_draws,) + images.shape[1:])
    else:
        images = _draws(image_net, params_x, zx, keys_x, noise_std, dropout_rate)
    return loss_from_images(
        images,
        kernel,
        y,
        mu=mu,
        tv_weight=tv_weight,
        blur_method=blur_method,
        data_term=data_term,
        ssim_weight=ssim_weight,
        grad_weight=grad_weight,
        extra=extra,
    )
