"""Training state and the jitted train step, for one blurry image.

``build_model(config, blurry_shape)`` turns the config into a ``Model``: the static parts of a
run (network definitions, optimisers, schedules, loss weights). ``init_state`` creates the
``TrainState`` (a pytree: step, both parameter trees, both optimiser states and the fixed
inputs ``zx``, ``zk``). ``train_step(model, state, y, key)`` is pure: its per-step keys are
``fold_in(key, state.step)``, so the same ``key`` is passed at every step and a resumed run
reproduces the same draws. ``make_train_step(model)`` binds the model and jits the step with
the state donated. Vmapping ``train_step`` over (state, y, key) trains many images at once.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from jaxdeconv.core import loss as loss_lib
from jaxdeconv.core import plugins, schedules


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params_x: Any
    params_k: Any
    opt_x: Any
    opt_k: Any
    zx: jax.Array  # [H + K - 1, W + K - 1, Cz], fixed input of Gx
    zk: jax.Array  # fixed input of Gk


class Model(NamedTuple):
    """Static description of a run (closed over by the jitted step, never traced)."""

    image_net: nn.Module
    kernel_net: nn.Module
    tx_x: optax.GradientTransformation
    tx_k: optax.GradientTransformation
    dropout: schedules.Schedule
    noise: schedules.Schedule
    kernel_dropout: schedules.Schedule  # the kernel net's rate when it is sampled
    kernel_size: int
    num_draws: int
    mu: float
    tv_weight: float
    scheme: str
    blur_method: str
    randomize: str
    shared_draw: bool
    data_term: str
    image_shape: tuple  # blurry [H, W, C]
    zx_shape: tuple
    zk_shape: tuple
    input_scale_x: float
    input_scale_k: float
    ssim_after: int = 0  # from this step on the data term is 1 - SSIM (0: never)
    grad_weight: float = 0.0  # weight of the data term on the residual's differences


def initial_noise_std(config: ml_collections.ConfigDict) -> float:
    """The input-noise level at step 0: ``noise.init``, or by default ``noise.large_kernel``
    for ``kernel_size >= noise.large_kernel_min_size`` and ``noise.small_kernel`` below (the
    paper: larger for large kernels; Levin's are all small, Lai's all large)."""
    if config.noise.init is not None:
        return float(config.noise.init)
    large = config.kernel_size >= config.noise.large_kernel_min_size
    return float(config.noise.large_kernel if large else config.noise.small_kernel)


def _noise_schedule(config: ml_collections.ConfigDict) -> schedules.Schedule:
    """The input-noise schedule; a level of 0 at the start means no input noise at all (the
    later ``noise.levels`` lower a noise that exists, they do not switch one on)."""
    init = initial_noise_std(config)
    if init == 0.0:
        return schedules.piecewise_constant(0.0, (), ())
    return schedules.from_config(config.noise, config.num_steps, init=init)


def _adam(lr: float, optim: ml_collections.ConfigDict, num_steps: int, hold: float = 0.0):
    """Adam with the config's step decay; ``hold``: the fraction of the first steps at rate 0
    (the parameters are kept while the moments accumulate)."""
    bounds = schedules.fraction_boundaries(optim.decay_boundaries, num_steps)
    lr_schedule = optax.piecewise_constant_schedule(lr, {b: optim.decay_factor for b in bounds})
    held = int(round(hold * num_steps))
    if held > 0:
        decayed = lr_schedule

        def lr_schedule(step):
            return jnp.where(step < held, 0.0, decayed(step))

    # eps_root keeps sqrt(v) differentiable where v == 0 (hyper-gradients through training
    # were NaN with 0); at 1e-30 it is below float32 resolution of any v above ~1e-23, so the
    # updates themselves do not change.
    return optax.adam(lr_schedule, eps_root=1e-30)


def validate(config: ml_collections.ConfigDict, blurry_shape: tuple) -> None:
    """Raises ``ValueError`` for a kernel size or image shape the method cannot use."""
    k = config.kernel_size
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {k!r}")
    if len(blurry_shape) != 3:
        raise ValueError(f"blurry image must be [H, W, C], got shape {tuple(blurry_shape)}")
    h, w, _ = blurry_shape
    if min(h, w) < k:
        raise ValueError(f"image {h}x{w} is smaller than the {k}x{k} kernel")
    if config.scheme not in ("alternating", "joint"):
        raise ValueError(f"scheme must be 'alternating' or 'joint', got {config.scheme!r}")
    if config.num_steps < 1 or config.num_draws < 1:
        raise ValueError("num_steps and num_draws must be >= 1")
    data_term = config.get("data_term", "mean")
    if data_term not in loss_lib.DATA_TERMS:
        raise ValueError(f"data_term must be one of {loss_lib.DATA_TERMS}, got {data_term!r}")
    if config.randomize not in loss_lib.RANDOMIZE:
        raise ValueError(f"randomize must be one of {loss_lib.RANDOMIZE}, got {config.randomize!r}")


def build_model(config: ml_collections.ConfigDict, blurry_shape: tuple) -> Model:
    """The static model for a blurry image of shape ``[H, W, C]``."""
    validate(config, blurry_shape)
    h, w, c = blurry_shape
    k = config.kernel_size
    # Both generators are plug-ins chosen by name (jaxdeconv.core.plugins).
    image_net = plugins.image_net(config.image_net.get("type", "unet"))(config, c)
    kernel_net, zk_shape = plugins.kernel_net(config.kernel_net.type).build(config, k)
    return Model(
        image_net=image_net,
        kernel_net=kernel_net,
        tx_x=_adam(config.optim.lr_x, config.optim, config.num_steps),
        tx_k=_adam(
            config.optim.lr_k, config.optim, config.num_steps, config.optim.get("hold_k", 0.0)
        ),
        dropout=schedules.from_config(config.dropout, config.num_steps),
        noise=_noise_schedule(config),
        kernel_dropout=schedules.from_config(
            config.get("kernel_dropout", config.dropout), config.num_steps
        ),
        kernel_size=k,
        num_draws=config.num_draws,
        mu=config.mu,
        tv_weight=config.tv_weight,
        scheme=config.scheme,
        blur_method=config.blur_method,
        randomize=config.randomize,
        shared_draw=bool(config.get("shared_draw", True)),
        data_term=config.get("data_term", "mean"),
        image_shape=(h, w, c),
        zx_shape=(h + k - 1, w + k - 1, config.image_net.input_channels),
        zk_shape=tuple(zk_shape),
        input_scale_x=config.image_net.input_scale,
        input_scale_k=config.kernel_net.input_scale,
        ssim_after=int(config.get("ssim_after", 0)),
        grad_weight=float(config.get("grad_weight", 0.0)),
    )


def init_state(model: Model, key: jax.Array) -> TrainState:
    """Draws the fixed inputs and initial parameters from four sub-keys of ``key``."""
    key_zx, key_zk, key_init_x, key_init_k = jax.random.split(key, 4)
    zx = jax.random.uniform(key_zx, model.zx_shape, maxval=model.input_scale_x)
    zk = jax.random.uniform(key_zk, model.zk_shape, maxval=model.input_scale_k)
    params_x = model.image_net.init(key_init_x, zx, deterministic=True)
    params_k = model.kernel_net.init(key_init_k, zk)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params_x=params_x,
        params_k=params_k,
        opt_x=model.tx_x.init(params_x),
        opt_k=model.tx_k.init(params_k),
        zx=zx,
        zk=zk,
    )


def _loss_fn(model: Model, params_x, params_k, state: TrainState, y, key, noise_std, rate, rate_k):
    terms = loss_lib.mc_loss(
        params_x,
        params_k,
        y,
        state.zx,
        state.zk,
        key,
        image_net=model.image_net,
        kernel_net=model.kernel_net,
        num_draws=model.num_draws,
        noise_std=noise_std,
        dropout_rate=rate,
        mu=model.mu,
        tv_weight=model.tv_weight,
        blur_method=model.blur_method,
        randomize=model.randomize,
        kernel_dropout_rate=rate_k,
        data_term=model.data_term,
        ssim_weight=ssim_weight(model, state.step),
        grad_weight=model.grad_weight,
    )
    return terms.total, terms


def ssim_weight(model: Model, step: jax.Array) -> jax.Array | float:
    """Weight of ``1 - SSIM`` in the data term at ``step``: 1 from ``model.ssim_after`` on
    (SelfDeblur's switch), else 0; a plain 0 when the switch is off (SSIM never computed)."""
    if not model.ssim_after:
        return 0.0
    return (step >= model.ssim_after).astype(jnp.float32)


def half_step_keys(step_key: jax.Array, shared_draw: bool) -> tuple[jax.Array, jax.Array]:
    """Keys of the kernel and the image half-steps of one alternating iteration.

    ``shared_draw`` (the paper, Algorithm 1 line 4): both are ``step_key``, so the kernel
    update and the image update see the same draw (eps_t, M_t). Otherwise the two halves of
    ``split(step_key)``: independent draws.
    """
    if shared_draw:
        return step_key, step_key
    key_k, key_x = jax.random.split(step_key)
    return key_k, key_x


def train_step(
    model: Model, state: TrainState, y: jax.Array, key: jax.Array
) -> tuple[TrainState, dict]:
    """One training iteration on the blurry image ``y [H, W, C]``.

    'alternating': update Gk, then Gx against the new kernel (paper eq. 25-26, Algorithm 1),
    both with the same draw (``shared_draw``, the paper) or with independent draws.
    'joint': one gradient step on both from one loss evaluation.
    Returns the new state and device-side metrics (pull them to the host only when logging).
    """
    step_key = jax.random.fold_in(key, state.step)
    noise_std = model.noise(state.step)
    rate = model.dropout(state.step)
    rate_k = model.kernel_dropout(state.step)
    loss_fn = functools.partial(
        _loss_fn, model, state=state, y=y, noise_std=noise_std, rate=rate, rate_k=rate_k
    )

    if model.scheme == "joint":
        grad_fn = jax.value_and_grad(
            lambda px, pk: loss_fn(px, pk, key=step_key), argnums=(0, 1), has_aux=True
        )
        (_, terms), (g_x, g_k) = grad_fn(state.params_x, state.params_k)
        upd_k, opt_k = model.tx_k.update(g_k, state.opt_k, state.params_k)
        params_k = optax.apply_updates(state.params_k, upd_k)
    else:
        key_k, key_x = half_step_keys(step_key, model.shared_draw)
        grad_k = jax.grad(lambda pk: loss_fn(state.params_x, pk, key=key_k), has_aux=True)
        g_k, _ = grad_k(state.params_k)
        upd_k, opt_k = model.tx_k.update(g_k, state.opt_k, state.params_k)
        params_k = optax.apply_updates(state.params_k, upd_k)
        grad_x = jax.value_and_grad(lambda px: loss_fn(px, params_k, key=key_x), has_aux=True)
        (_, terms), g_x = grad_x(state.params_x)

    upd_x, opt_x = model.tx_x.update(g_x, state.opt_x, state.params_x)
    params_x = optax.apply_updates(state.params_x, upd_x)
    new_state = state.replace(
        step=state.step + 1, params_x=params_x, params_k=params_k, opt_x=opt_x, opt_k=opt_k
    )
    metrics = {
        "loss": terms.total,
        "data": terms.data,
        "kernel_norm": terms.kernel_norm,
        "noise_std": noise_std,
        "dropout_rate": rate,
    }
    return new_state, metrics


def make_train_step(model: Model):
    """``step(state, y, key) -> (state, metrics)``, jitted, with the state donated."""
    return jax.jit(functools.partial(train_step, model), donate_argnums=0)


def kernel_estimate(model: Model, state: TrainState) -> jax.Array:
    """``Gk(zk)``: the kernel ``[K, K]``."""
    return model.kernel_net.apply(state.params_k, state.zk)


def image_estimate(model: Model, state: TrainState) -> jax.Array:
    """Deterministic ``Gx(zx)`` (no noise, no dropout), cropped to the blurry size ``[H, W, C]``."""
    x = model.image_net.apply(state.params_x, state.zx, deterministic=True)
    return crop_to_blurry(x, model.kernel_size)


def crop_to_blurry(x: jax.Array, kernel_size: int) -> jax.Array:
    """Centre crop ``[H + K - 1, W + K - 1, C] -> [H, W, C]``."""
    m = (kernel_size - 1) // 2
    return x[m : x.shape[0] - m, m : x.shape[1] - m]


def sample_statistics(
    model: Model,
    state: TrainState,
    key: jax.Array,
    num_samples: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Per-pixel mean and standard deviation of ``num_samples`` draws of Gx, each ``[H, W, C]``."""
    draws = loss_lib.sample_images(
        model.image_net, state.params_x, state.zx, key, num_samples, noise_std, dropout_rate
    )
    draws = jax.vmap(crop_to_blurry, in_axes=(0, None))(draws, model.kernel_size)
    return jnp.mean(draws, axis=0), jnp.std(draws, axis=0)
