"""``deblur``: one blurry image in, a kernel, an image and an uncertainty map out."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxdeconv import train


class DeblurResult(NamedTuple):
    kernel: np.ndarray  # [K, K], non-negative, sums to 1 (correlation kernel)
    image: np.ndarray  # [H, W, C], deterministic Gx output cropped to the blurry size
    image_big: np.ndarray  # [H + K - 1, W + K - 1, C], the same output uncropped
    mean: np.ndarray  # [H, W, C], mean of S stochastic draws
    std: np.ndarray  # [H, W, C], per-pixel standard deviation of the draws (uncertainty)
    loss_history: np.ndarray  # [num_steps]
    seconds: float  # wall clock of the whole run, compilation included
    state: train.TrainState  # final training state (for research use)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def as_image(blurry) -> jnp.ndarray:
    """``[H, W]`` or ``[H, W, C]`` array-like in [0, 1] -> float32 ``[H, W, C]``."""
    arr = jnp.asarray(blurry, dtype=jnp.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"blurry image must be [H, W] or [H, W, C], got shape {arr.shape}")
    return arr


def check_finite(losses: np.ndarray, first_step: int) -> None:
    """Raises ``NonFiniteLossError`` naming the first step whose loss is not finite."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        step = first_step + int(bad[0])
        raise NonFiniteLossError(
            f"loss became {losses[bad[0]]} at step {step}; lower the learning rates or check "
            "the input image"
        )


def _outputs(model: train.Model, num_samples: int, state, key, noise_std, rate):
    mean, std = train.sample_statistics(model, state, key, num_samples, noise_std, rate)
    big = model.image_net.apply(state.params_x, state.zx, deterministic=True)
    return train.kernel_estimate(model, state), big, mean, std


def deblur(
    blurry,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> DeblurResult:
    """Blind deblurring of one image by training Gx and Gk on it.

    Args:
      blurry: ``[H, W]`` or ``[H, W, C]`` float image in [0, 1].
      config: a run config (``jaxdeconv.config``); ``config.kernel_size`` (odd) sets ``K``.
      key: PRNG key; defaults to ``jax.random.key(config.seed)``.
      callback: called at every log point with ``(step, metrics)`` (host floats).

    Returns:
      A ``DeblurResult``.
    """
    start = time.perf_counter()
    y = as_image(blurry)
    model = train.build_model(config, tuple(y.shape))
    if key is None:
        key = jax.random.key(config.seed)
    key_state, key_loop, key_sample = jax.random.split(key, 3)
    state = jax.jit(functools.partial(train.init_state, model))(key_state)
    step_fn = train.make_train_step(model)

    history: list[np.ndarray] = []
    pending: list[dict] = []
    log_every = max(1, int(config.log_every))
    for i in range(config.num_steps):
        state, metrics = step_fn(state, y, key_loop)
        pending.append(metrics)
        if (i + 1) % log_every == 0 or i + 1 == config.num_steps:
            pulled = jax.device_get(pending)
            losses = np.asarray([m["loss"] for m in pulled], np.float32)
            check_finite(losses, i + 2 - len(pending))
            history.append(losses)
            pending = []
            last = {k: float(v) for k, v in pulled[-1].items()}
            logging.info("step %d: %s", i + 1, last)
            if callback is not None:
                callback(i + 1, last)

    last_step = config.num_steps - 1
    noise_std, rate = config.sample.noise_std, config.sample.dropout_rate
    outputs = jax.jit(functools.partial(_outputs, model, config.sample.num_samples))
    kernel, image_big, mean, std = jax.device_get(
        outputs(
            state,
            key_sample,
            model.noise(last_step) if noise_std is None else noise_std,
            model.dropout(last_step) if rate is None else rate,
        )
    )
    return DeblurResult(
        kernel=np.asarray(kernel),
        image=np.asarray(train.crop_to_blurry(image_big, config.kernel_size)),
        image_big=np.asarray(image_big),
        mean=np.asarray(mean),
        std=np.asarray(std),
        loss_history=np.concatenate(history),
        seconds=time.perf_counter() - start,
        state=state,
    )
