"""The Monte-Carlo loss of the method (paper eq. 23-27), for one image.

For N draws of the image net's randomness (input noise ``eps_i`` and dropout masks ``M_i``):

    L = 1/N sum_i mean((valid_correlate(Gx(zx + eps_i; M_i), Gk(zk)) - y)^2) + mu ||Gk(zk)||^2

The data term is a per-pixel mean (SelfDeblur's MSE, which this method builds on) rather than a
sum, so ``mu`` means the same at every image size. An optional total-variation term on the
image gives the MLE + TV baseline (paper eq. 8). Draws are a ``jax.vmap`` over keys.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdeconv import blur


class LossTerms(NamedTuple):
    total: jax.Array
    data: jax.Array
    kernel_norm: jax.Array
    tv: jax.Array


def _draws(net, params, z, key, num_draws, noise_std, dropout_rate, **kwargs):
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

    return jax.vmap(one)(jax.random.split(key, num_draws))


def sample_images(
    image_net: nn.Module,
    params_x,
    zx: jax.Array,
    key: jax.Array,
    num_draws: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> jax.Array:
    """``num_draws`` stochastic outputs of Gx, ``[N, Hb, Wb, C]``, one key per draw."""
    return _draws(image_net, params_x, zx, key, num_draws, noise_std, dropout_rate)


def sample_kernels(
    kernel_net: nn.Module,
    params_k,
    zk: jax.Array,
    key: jax.Array,
    num_draws: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> jax.Array:
    """``num_draws`` stochastic kernels ``[N, K, K]`` (for the randomised-kernel ablation)."""
    return _draws(
        kernel_net, params_k, zk, key, num_draws, noise_std, dropout_rate, deterministic=False
    )


def total_variation(x: jax.Array) -> jax.Array:
    """Mean anisotropic total variation of ``[H, W, C]``."""
    return jnp.mean(jnp.abs(jnp.diff(x, axis=0))) + jnp.mean(jnp.abs(jnp.diff(x, axis=1)))


def loss_from_images(
    images: jax.Array,
    kernel: jax.Array,
    y: jax.Array,
    *,
    mu: float,
    tv_weight: float = 0.0,
    blur_method: str = "auto",
) -> LossTerms:
    """The loss for draws ``images [N, Hb, Wb, C]`` and ``kernel [K, K]`` (or one kernel per
    draw, ``[N, K, K]``) against ``y [H, W, C]``."""
    kernel_axis = 0 if kernel.ndim == 3 else None
    residual = jax.vmap(
        lambda x, k: blur.valid_correlate(x, k, blur_method) - y, in_axes=(0, kernel_axis)
    )(images, kernel)
    data = jnp.mean(jnp.square(residual))
    kernel_norm = jnp.sum(jnp.square(kernel)) / (kernel.shape[0] if kernel.ndim == 3 else 1)
    tv = jnp.mean(jax.vmap(total_variation)(images)) if tv_weight else jnp.zeros(())
    return LossTerms(data + mu * kernel_norm + tv_weight * tv, data, kernel_norm, tv)


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
    mu: float,
    tv_weight: float = 0.0,
    blur_method: str = "auto",
    randomize: str = "image",
) -> LossTerms:
    """Monte-Carlo loss for one blurry image ``y [H, W, C]``; differentiable in both params.

    ``randomize``: which network is sampled, ``'image'`` (the paper), ``'kernel'`` or
    ``'both'``; a network not sampled gives its deterministic output to every draw.
    """
    if randomize not in ("image", "kernel", "both"):
        raise ValueError(f"randomize must be 'image', 'kernel' or 'both', got {randomize!r}")
    if randomize == "image":
        kernel = kernel_net.apply(params_k, zk)
    else:
        kernel = sample_kernels(
            kernel_net,
            params_k,
            zk,
            jax.random.fold_in(key, 1),
            num_draws,
            noise_std,
            dropout_rate,
        )
    if randomize == "kernel":
        images = image_net.apply(params_x, zx, deterministic=True)[None]
        images = jnp.broadcast_to(images, (num_draws,) + images.shape[1:])
    else:
        images = sample_images(image_net, params_x, zx, key, num_draws, noise_std, dropout_rate)
    return loss_from_images(images, kernel, y, mu=mu, tv_weight=tv_weight, blur_method=blur_method)
