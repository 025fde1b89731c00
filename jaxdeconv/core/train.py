"""Training state and the jitted train step, for one blurry image.

``build_spec(config, blurry_shape)`` turns the config into a ``RunSpec``: the static parts of
a run (network definitions, optimisers, schedules, kernel size, loss weights, extra loss
terms), a value (equal configs give equal specs). ``init_state`` creates the ``TrainState`` (a
pytree: step, both parameter trees, both optimiser states and the fixed inputs ``zx``,
``zk``). ``train_step(spec, state, y, key)`` is pure: its per-step keys are
``fold_in(key, state.step)``, so the same ``key`` is passed at every step and a resumed run
reproduces the same draws. ``make_train_step(spec)`` binds the spec and jits the step with
the state donated. Vmapping ``train_step`` over (state, y, key) trains many images at once.

Keys, from the ``key`` given to ``init_state`` and the ``key`` given to ``train_step``:

* ``init_state``: ``key_zx, key_zk, key_init_x, key_init_k = split(key, 4)``: the fixed inputs
  ``zx`` and ``zk`` (each drawn only when not given) and the two networks' initial parameters.
* ``train_step``: ``step_key = fold_in(key, step)``. Alternating scheme: the kernel and the
  image half-steps use ``half_step_keys(step_key, shared_draw)`` (both ``step_key`` with a
  shared draw, else the two halves of ``split(step_key)``); joint scheme: ``step_key``. Within
  a half-step the Monte-Carlo draws take ``loss.draw_keys(that key, N, randomize)``, each draw
  split into its input-noise and dropout keys; extra loss term ``i`` takes
  ``fold_in(that key, loss_terms.EXTRA_LOSS_STREAM + i)``.

Hyper-parameters are values of the state, not constants of the program: the two learning
rates sit in the optimiser states (``optax.inject_hyperparams``), and ``mu``, the loss weights
and the levels of the dropout and input-noise schedules in ``TrainState.hyper``
(:class:`Hyper`). :func:`with_hyperparameters` sets them (numbers or traced values) and
:func:`hyperparameters` reads them, so ``jax.vmap`` over a grid of them trains the grid with one
compiled step and ``jax.grad`` of an unrolled run reaches them, without rebuilding the spec.
The structure stays static: networks, step counts, switch points, kernel size, and which loss
terms exist (a weight that is 0 in the spec leaves its term out of the program).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct

from jaxdeconv import config as config_lib
from jaxdeconv.core import initializers, loss_terms, optim, plugins, schedules
from jaxdeconv.core import loss as loss_lib
from jaxdeconv.core.loss_terms import ExtraLoss


class Hyper(struct.PyTreeNode):
    """The numbers of a run a researcher sweeps, as traced values of the train step (the
    learning rates are in the optimiser states): set them with :func:`with_hyperparameters`."""

    mu: jax.Array  # weight of ||Gk(zk)||^2
    tv_weight: jax.Array  # weight of the image's total variation (used when the spec has one)
    grad_weight: jax.Array  # weight of the residual's differences (likewise)
    dropout: jax.Array  # the dropout schedule's levels [1 + number of switch points]
    noise: jax.Array  # the input-noise schedule's levels
    kernel_dropout: jax.Array  # the sampled kernel net's dropout levels
    extra_weights: tuple  # one weight per spec.extra_losses term


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params_x: Any
    params_k: Any
    opt_x: Any  # optax state; its base learning rate: optim.learning_rate(opt_x)
    opt_k: Any
    zx: jax.Array  # [H + K - 1, W + K - 1, Cz], fixed input of Gx
    zk: jax.Array  # fixed input of Gk
    hyper: Hyper  # the traced hyper-parameters but the learning rates


class RunSpec(NamedTuple):
    """Static description of a run (closed over by the jitted step, never traced): the one
    source of truth for the networks, optimisers, schedules, kernel size and loss of a run.

    A value: specs built from equal configs and shapes are equal and hash alike, so they share
    compiled functions (``jaxdeconv.run.runner``). Change a field with ``spec._replace(...)``.
    """

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
    extra_losses: tuple[ExtraLoss, ...] = ()  # added to the loss; () : the paper's loss alone
    param_init: str = "flax"  # initial weights: 'flax' or 'pytorch' (core.initializers)


# What the entry points take as ``spec=``: a RunSpec, a builder ``spec(config, blurry_shape)``
# (one spec per shape and kernel size), or None (``build_spec(config, blurry_shape)``).
SpecArgument = RunSpec | Callable[[ml_collections.ConfigDict, tuple], RunSpec] | None


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


def _adam(lr: float, optim_cfg: ml_collections.ConfigDict, num_steps: int, hold: float = 0.0):
    """Adam with the config's step decay; ``hold``: the fraction of the first steps at rate 0
    (the parameters are kept while the moments accumulate)."""
    bounds = schedules.fraction_boundaries(optim_cfg.decay_boundaries, num_steps)
    return optim.Adam(lr, bounds, optim_cfg.decay_factor, int(round(hold * num_steps)))


def validate(config: ml_collections.ConfigDict, blurry_shape: tuple) -> None:
    """Raises ``ValueError`` for a kernel size or image shape the method cannot use."""
    k = config_lib.check_kernel_size(config.kernel_size, allow_auto=False)
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
    loss_terms.from_config(config)
    if config.get("param_init", "flax") not in initializers.SCHEMES:
        raise ValueError(
            f"param_init must be one of {initializers.SCHEMES}, got {config.param_init!r}"
        )


def build_spec(
    config: ml_collections.ConfigDict,
    blurry_shape: tuple,
    *,
    extra_losses: Sequence = (),
) -> RunSpec:
    """The run spec for a blurry image of shape ``[H, W, C]``.

    ``extra_losses``: loss terms added to the ones the config picks (``extra_loss.names``),
    each an ``ExtraLoss``, a ``(name, weight, fn)`` tuple or a bare function
    ``fn(images, kernel, key, step) -> (value, metrics)`` (weight 1, named after it); terms
    of weight 0 are left out, so a run with them is bit-identical to one without.
    """
    validate(config, blurry_shape)
    terms = loss_terms.from_config(config) + tuple(map(loss_terms.as_extra_loss, extra_losses))
    h, w, c = blurry_shape
    k = config.kernel_size
    # Both generators are plug-ins chosen by name (jaxdeconv.core.plugins).
    image_net = plugins.image_net(config.image_net.get("type", "unet"))(config, c)
    kernel_net, zk_shape = plugins.kernel_net(config.kernel_net.type).build(config, k)
    return RunSpec(
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
        extra_losses=loss_terms.active(terms),
        param_init=str(config.get("param_init", "flax")),
    )


def resolve_spec(spec, config: ml_collections.ConfigDict, blurry_shape: tuple) -> RunSpec:
    """The run spec of a run on a blurry image of ``blurry_shape [H, W, C]``.

    ``spec``: None (``build_spec(config, blurry_shape)``), a builder ``spec(config,
    blurry_shape) -> RunSpec`` (so runs on other shapes and kernel sizes, e.g. the levels of
    ``jaxdeconv.run.progressive``, each get their own), or a ``RunSpec``, which must have been
    built for this shape (``ValueError`` otherwise). The spec is then the one source of truth
    for what it holds (networks, schedules, kernel size, loss); the config gives the loop.
    """
    blurry_shape = tuple(int(s) for s in blurry_shape)
    if spec is None:
        return build_spec(config, blurry_shape)
    if not isinstance(spec, RunSpec) and callable(spec):
        spec = spec(config, blurry_shape)
    if not isinstance(spec, RunSpec):
        raise ValueError(f"spec must be a RunSpec or a function returning one, got {spec!r}")
    if tuple(spec.image_shape) != blurry_shape:
        raise ValueError(
            f"the spec was built for a blurry image of shape {tuple(spec.image_shape)}, not "
            f"{blurry_shape}; pass a builder (spec=lambda config, shape: ...) to build one per "
            "shape"
        )
    check_spec(spec, config)
    return spec


def check_spec(spec: RunSpec, config: ml_collections.ConfigDict | None = None) -> None:
    """Raises ``ValueError`` naming both values when ``spec`` disagrees with ``config`` (the
    kernel size) or with itself (its kernel net's size, ``zx_shape`` or ``zk_shape`` against
    its ``kernel_size`` and ``image_shape``): before anything is compiled."""
    k = int(spec.kernel_size)
    wanted = None if config is None else config.get("kernel_size")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted != k:
        raise ValueError(
            f"the spec is built for {k}x{k} kernels but config.kernel_size is {wanted}; build "
            "the spec from this config (or pass a builder spec=lambda config, shape: ...)"
        )
    net_k = getattr(spec.kernel_net, "kernel_size", None)
    if isinstance(net_k, int) and net_k != k:
        raise ValueError(
            f"the spec's kernel net makes {net_k}x{net_k} kernels but spec.kernel_size is {k}"
        )
    h, w, _ = spec.image_shape
    if tuple(spec.zx_shape[:2]) != (h + k - 1, w + k - 1):
        raise ValueError(
            f"spec.zx_shape {tuple(spec.zx_shape)} does not fit a {h}x{w} image and {k}x{k} "
            f"kernels (expected {h + k - 1}x{w + k - 1} x channels)"
        )
    if len(spec.zk_shape) == 3 and tuple(spec.zk_shape[:2]) != (k, k):
        raise ValueError(
            f"spec.zk_shape {tuple(spec.zk_shape)} does not fit {k}x{k} kernels (expected "
            f"{k}x{k} x channels)"
        )


def drawn_zx(spec: RunSpec, key: jax.Array) -> jax.Array:
    """The image net's fixed input :func:`init_state` draws from ``key`` when none is given:
    ``U(0, input_scale_x)`` of ``spec.zx_shape`` from the first of ``split(key, 4)``."""
    return jax.random.uniform(jax.random.split(key, 4)[0], spec.zx_shape, maxval=spec.input_scale_x)


def init_state(
    spec: RunSpec, key: jax.Array, zx: jax.Array | None = None, zk: jax.Array | None = None
) -> TrainState:
    """Draws the fixed inputs and initial parameters from four sub-keys of ``key``:
    ``key_zx, key_zk, key_init_x, key_init_k = split(key, 4)``.

    ``zx`` ``[H + K - 1, W + K - 1, Cz]`` / ``zk`` (``spec.zk_shape``): fixed inputs to use
    instead of drawing them (their keys are then unused; the other draws do not change).

    Called outside a trace, the draws run as one compiled function (cached per spec): flax's
    initialisers run op by op took about 10 s on a CPU for the tiny test nets. Inside ``jit``
    or ``vmap`` the same code is traced into the caller's program.
    """
    if any(isinstance(a, jax.core.Tracer) for a in (key, zx, zk)):
        return _draw_state(spec, key, zx, zk)
    return _draw_state_jit(spec, key, zx, zk)


def _draw_state(spec: RunSpec, key, zx, zk) -> TrainState:
    _, key_zk, key_init_x, key_init_k = jax.random.split(key, 4)
    if zx is None:
        zx = drawn_zx(spec, key)
    else:
        zx = _fixed_input("zx", zx, spec.zx_shape)
    if zk is None:
        zk = jax.random.uniform(key_zk, spec.zk_shape, maxval=spec.input_scale_k)
    else:
        zk = _fixed_input("zk", zk, spec.zk_shape)
    params_x = spec.image_net.init(key_init_x, zx, deterministic=True)
    params_k = spec.kernel_net.init(key_init_k, zk)
    if spec.param_init != "flax":  # the same keys, folded: 'flax' draws stay as they were
        params_x = initializers.reinit(params_x, key_init_x, spec.param_init)
        params_k = initializers.reinit(params_k, key_init_k, spec.param_init)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params_x=params_x,
        params_k=params_k,
        opt_x=spec.tx_x.init(params_x),
        opt_k=spec.tx_k.init(params_k),
        zx=zx,
        zk=zk,
        hyper=default_hyper(spec),
    )


def _f32(value) -> jax.Array:
    return jnp.asarray(value, dtype=jnp.float32)


def _like(value, old: jax.Array) -> jax.Array:
    """``value`` as an array: its own float type if it has one (a float64 sweep stays
    float64), else ``old``'s."""
    return jnp.asarray(value, dtype=getattr(value, "dtype", old.dtype))


def default_hyper(spec: RunSpec) -> Hyper:
    """The spec's own values of the traced hyper-parameters (what the config said)."""
    return Hyper(
        mu=_f32(spec.mu),
        tv_weight=_f32(spec.tv_weight),
        grad_weight=_f32(spec.grad_weight),
        dropout=_f32(spec.dropout.levels),
        noise=_f32(spec.noise.levels),
        kernel_dropout=_f32(spec.kernel_dropout.levels),
        extra_weights=tuple(_f32(t.weight) for t in spec.extra_losses),
    )


HYPERPARAMETERS = (
    "lr_x",
    "lr_k",
    "mu",
    "tv_weight",
    "grad_weight",
    "dropout",
    "noise",
    "kernel_dropout",
    "extra_weights",
)


def hyperparameters(state: TrainState) -> dict[str, Any]:
    """The run's traced hyper-parameters by name (:data:`HYPERPARAMETERS`): the two base
    learning rates from the optimiser states, the rest from ``state.hyper``."""
    values = {"lr_x": optim.learning_rate(state.opt_x), "lr_k": optim.learning_rate(state.opt_k)}
    values.update({name: getattr(state.hyper, name) for name in HYPERPARAMETERS[2:]})
    return values


def with_hyperparameters(state: TrainState, **values) -> TrainState:
    """``state`` with hyper-parameters replaced: ``lr_x``, ``lr_k`` (base rates; the decay
    steps stay), ``mu``, ``tv_weight``, ``grad_weight``, ``dropout`` / ``noise`` /
    ``kernel_dropout`` (a schedule's levels, one more than its switch points, or one scalar
    for every level) and ``extra_weights`` (one per extra loss term). Numbers or traced
    values: call it inside ``jax.vmap`` or ``jax.grad``. A weight whose term the spec left out
    (0 in the config) changes nothing: build the spec with a nonzero weight to sweep it.
    ``ValueError`` for an unknown name or a wrong number of levels or weights."""
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown hyper-parameters {unknown}; known: {list(HYPERPARAMETERS)}")
    if "lr_x" in values:
        state = state.replace(opt_x=optim.with_learning_rate(state.opt_x, values.pop("lr_x")))
    if "lr_k" in values:
        state = state.replace(opt_k=optim.with_learning_rate(state.opt_k, values.pop("lr_k")))
    hyper = state.hyper
    changes = {}
    for name, value in values.items():
        old = getattr(hyper, name)
        if name == "extra_weights":
            value = tuple(value)
            if len(value) != len(old):
                raise ValueError(
                    f"extra_weights needs one weight per extra loss term ({len(old)}), got "
                    f"{len(value)}"
                )
            changes[name] = tuple(_like(v, o) for v, o in zip(value, old, strict=True))
            continue
        value = _like(value, old)
        if old.ndim == 1 and value.ndim == 0:
            value = jnp.broadcast_to(value, old.shape)
        if value.shape != old.shape:
            raise ValueError(
                f"{name} needs shape {old.shape} (the schedule's levels), got {value.shape}"
                if old.ndim
                else f"{name} is a scalar, got shape {value.shape}"
            )
        changes[name] = value
    return state.replace(hyper=hyper.replace(**changes))


_draw_state_jit = jax.jit(_draw_state, static_argnums=0)


def _fixed_input(name: str, z, shape: tuple) -> jax.Array:
    z = jnp.asarray(z)
    if tuple(z.shape) != tuple(shape):
        raise ValueError(f"{name} must have the spec's shape {tuple(shape)}, got {z.shape}")
    return z


def _loss_fn(spec: RunSpec, params_x, params_k, state: TrainState, y, key, noise_std, rate, rate_k):
    hyper = state.hyper
    terms = loss_lib.mc_loss(
        params_x,
        params_k,
        y,
        state.zx,
        state.zk,
        key,
        image_net=spec.image_net,
        kernel_net=spec.kernel_net,
        num_draws=spec.num_draws,
        noise_std=noise_std,
        dropout_rate=rate,
        mu=hyper.mu,
        tv_weight=hyper.tv_weight if spec.tv_weight else 0.0,  # 0 in the spec: no TV term
        blur_method=spec.blur_method,
        randomize=spec.randomize,
        kernel_dropout_rate=rate_k,
        data_term=spec.data_term,
        ssim_weight=ssim_weight(spec, state.step),
        grad_weight=hyper.grad_weight if spec.grad_weight else 0.0,
        extra=loss_terms.combine(spec.extra_losses, key, state.step, hyper.extra_weights),
    )
    return terms.total, terms


def ssim_weight(spec: RunSpec, step: jax.Array) -> jax.Array | float:
    """Weight of ``1 - SSIM`` in the data term at ``step``: 1 from ``spec.ssim_after`` on
    (SelfDeblur's switch), else 0; a plain 0 when the switch is off (SSIM never computed)."""
    if not spec.ssim_after:
        return 0.0
    return (step >= spec.ssim_after).astype(jnp.float32)


def schedule_levels(
    spec: RunSpec, state: TrainState, step: jax.Array | int | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input-noise level, the dropout rate and the sampled kernel net's dropout rate at
    ``step`` (default ``state.step``), from the schedules' switch points in ``spec`` and their
    levels in ``state.hyper``."""
    step = state.step if step is None else step
    hyper = state.hyper
    return (
        spec.noise.at(step, hyper.noise),
        spec.dropout.at(step, hyper.dropout),
        spec.kernel_dropout.at(step, hyper.kernel_dropout),
    )


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
    spec: RunSpec, state: TrainState, y: jax.Array, key: jax.Array
) -> tuple[TrainState, dict]:
    """One training iteration on the blurry image ``y [H, W, C]``.

    'alternating': update Gk, then Gx against the new kernel (paper eq. 25-26, Algorithm 1),
    both with the same draw (``shared_draw``, the paper) or with independent draws.
    'joint': one gradient step on both from one loss evaluation.
    Returns the new state and device-side metrics (pull them to the host only when logging).
    """
    step_key = jax.random.fold_in(key, state.step)
    noise_std, rate, rate_k = schedule_levels(spec, state)
    loss_fn = functools.partial(
        _loss_fn, spec, state=state, y=y, noise_std=noise_std, rate=rate, rate_k=rate_k
    )

    if spec.scheme == "joint":
        grad_fn = jax.value_and_grad(
            lambda px, pk: loss_fn(px, pk, key=step_key), argnums=(0, 1), has_aux=True
        )
        (_, terms), (g_x, g_k) = grad_fn(state.params_x, state.params_k)
        upd_k, opt_k = spec.tx_k.update(g_k, state.opt_k, state.params_k)
        params_k = optax.apply_updates(state.params_k, upd_k)
    else:
        key_k, key_x = half_step_keys(step_key, spec.shared_draw)
        grad_k = jax.grad(lambda pk: loss_fn(state.params_x, pk, key=key_k), has_aux=True)
        g_k, _ = grad_k(state.params_k)
        upd_k, opt_k = spec.tx_k.update(g_k, state.opt_k, state.params_k)
        params_k = optax.apply_updates(state.params_k, upd_k)
        grad_x = jax.value_and_grad(lambda px: loss_fn(px, params_k, key=key_x), has_aux=True)
        (_, terms), g_x = grad_x(state.params_x)

    upd_x, opt_x = spec.tx_x.update(g_x, state.opt_x, state.params_x)
    params_x = optax.apply_updates(state.params_x, upd_x)
    new_state = state.replace(
        step=state.step + 1, params_x=params_x, params_k=params_k, opt_x=opt_x, opt_k=opt_k
    )
    metrics = {
        "loss": terms.total,
        "data": terms.data,
        "kernel_norm": terms.kernel_norm,
        "tv": terms.tv,
        "noise_std": noise_std,
        "dropout_rate": rate,
        **(terms.extra_metrics or {}),
    }
    return new_state, metrics


def unrolled(
    spec: RunSpec,
    state: TrainState,
    y: jax.Array,
    key: jax.Array,
    num_steps: int,
    step_fn: Callable | None = None,
) -> tuple[TrainState, dict]:
    """``num_steps`` train steps as one ``lax.scan`` (one step body in the program, whatever
    ``num_steps``): the final state and every metric stacked ``[num_steps]``. Pure, so
    ``jax.grad`` of a function of its output reaches ``state``'s hyper-parameters
    (:func:`with_hyperparameters`), and ``jax.vmap`` trains many states at once.
    ``step_fn(spec, state, y, key)``: default :func:`train_step`."""
    step_fn = step_fn or train_step

    def body(s, _):
        return step_fn(spec, s, y, key)

    return jax.lax.scan(body, state, None, length=int(num_steps))


def make_train_step(spec: RunSpec):
    """``step(state, y, key) -> (state, metrics)``, jitted, with the state donated."""
    return jax.jit(functools.partial(train_step, spec), donate_argnums=0)


def kernel_estimate(spec: RunSpec, state: TrainState) -> jax.Array:
    """``Gk(zk)``: the kernel ``[K, K]``."""
    return spec.kernel_net.apply(state.params_k, state.zk)


def image_estimate(spec: RunSpec, state: TrainState) -> jax.Array:
    """Deterministic ``Gx(zx)`` (no noise, no dropout), cropped to the blurry size ``[H, W, C]``."""
    x = spec.image_net.apply(state.params_x, state.zx, deterministic=True)
    return crop_to_blurry(x, spec.kernel_size)


def crop_to_blurry(x: jax.Array, kernel_size: int) -> jax.Array:
    """Centre crop ``[H + K - 1, W + K - 1, C] -> [H, W, C]``."""
    m = (kernel_size - 1) // 2
    return x[m : x.shape[0] - m, m : x.shape[1] - m]


def sample_statistics(
    spec: RunSpec,
    state: TrainState,
    key: jax.Array,
    num_samples: int,
    noise_std: jax.Array | float,
    dropout_rate: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Per-pixel mean and standard deviation of ``num_samples`` draws of Gx, each ``[H, W, C]``."""
    draws = loss_lib.sample_images(
        spec.image_net, state.params_x, state.zx, key, num_samples, noise_std, dropout_rate
    )
    draws = jax.vmap(crop_to_blurry, in_axes=(0, None))(draws, spec.kernel_size)
    return jnp.mean(draws, axis=0), jnp.std(draws, axis=0)
