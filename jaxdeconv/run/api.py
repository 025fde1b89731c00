"""``deblur``: one blurry image in, a kernel, an image and an uncertainty map out.

``deblur_batch`` trains several same-shaped images at once with ``jax.vmap`` over the whole
per-image step (each image keeps its own networks, optimiser state and key): the way to fill
an accelerator. On a CPU, one image after another is faster (XLA lowers vmapped per-image
convolutions to grouped convolutions). Both can save an Orbax checkpoint every
``config.checkpoint_every`` steps and resume from it; per-step keys are
``fold_in(key, step)``, so a resumed run draws exactly what the uninterrupted run would.

Keys: the key of an image is split once, ``key_state, key_loop, key_sample = split(key, 3)``
(:func:`run_keys`): ``key_state`` initialises the state (``train.init_state``: ``zx``, ``zk``
and both networks' parameters), ``key_loop`` is passed to every step (which folds in the step
index, ``train.train_step``), ``key_sample`` draws the ``sample.num_samples`` images of the
mean and uncertainty map (``train.sample_statistics``). ``jaxdeconv.core.train`` documents the
keys inside the state's initialisation and the step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxdeconv.core import train
from jaxdeconv.run import runner as runner_lib


class DeblurResult(NamedTuple):
    kernel: np.ndarray  # [K, K], non-negative, sums to 1 (correlation kernel)
    image: np.ndarray  # [H, W, C], deterministic Gx output cropped to the blurry size
    image_big: np.ndarray  # [H + K - 1, W + K - 1, C], the same output uncropped
    mean: np.ndarray  # [H, W, C], mean of S stochastic draws
    std: np.ndarray  # [H, W, C], per-pixel standard deviation of the draws (uncertainty)
    loss_history: np.ndarray  # [num_steps]
    seconds: float  # wall clock of the whole run, compilation included
    state: train.TrainState  # final training state, a host (NumPy) copy (for research use)
    snapshots: dict | None = None  # step -> [H, W, C] network image (config.snapshot_every)
    metrics: dict | None = None  # every metric the step returns, name -> [num_steps]
    spec: train.RunSpec | None = None  # the run spec the state belongs to
    key: jax.Array | None = None  # the loop key: step(state, y, key) continues the run


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def check_image(blurry, what: str = "blurry image") -> np.ndarray:
    """The one input check of the library's entry points (``deblur``, ``deblur_batch``,
    ``pipeline.deblur_image``, ``pipeline.estimate`` and so the command): ``[H, W]`` or
    ``[H, W, C]`` array-like of floats in [0, 1], C = 1 or 3 -> float32 NumPy ``[H, W, C]``.

    Raises ``ValueError`` naming the problem: not an array of numbers, an integer or boolean
    array (``uint8`` data: divide by 255), a complex one, no pixels, a wrong rank, a
    channels-first layout, 2 or 4 channels (an alpha channel), NaN, infinite or out-of-range
    values."""
    try:
        host = np.asarray(blurry)
    except Exception as e:  # noqa: BLE001 - ragged lists and the like
        raise ValueError(f"{what} is not an array of numbers ({type(e).__name__}: {e})") from None
    if host.dtype.kind in "biu":
        raise ValueError(
            f"{what} has dtype {host.dtype}; give floats in [0, 1] "
            "(e.g. image.astype(np.float32) / 255 for 8-bit data)"
        )
    if host.dtype.kind == "c":
        raise ValueError(f"{what} has complex dtype {host.dtype}; give real floats in [0, 1]")
    if host.dtype.kind != "f":
        raise ValueError(f"{what} must be an array of floats in [0, 1], got dtype {host.dtype}")
    if host.ndim not in (2, 3):
        raise ValueError(f"{what} must be [H, W] or [H, W, C], got shape {host.shape}")
    if host.size == 0:
        raise ValueError(f"{what} has no pixels (shape {host.shape})")
    if host.ndim == 2:
        host = host[:, :, None]
    c = host.shape[-1]
    if c not in (1, 3) and host.shape[0] in (1, 3):
        raise ValueError(
            f"{what} of shape {host.shape} looks channels-first; give [H, W, C] "
            "(e.g. np.moveaxis(image, 0, -1))"
        )
    if c not in (1, 3):
        hint = {2: "grey + alpha: image[..., :1]", 4: "RGBA: image[..., :3]"}.get(c)
        raise ValueError(
            f"{what} must have 1 or 3 channels, got {c} (shape {host.shape})"
            + (f"; drop the alpha channel first ({hint})" if hint else "")
        )
    if not np.all(np.isfinite(host)):
        raise ValueError(f"{what} holds NaN or infinite values")
    lo, hi = float(host.min()), float(host.max())
    if lo < -1e-4 or hi > 1 + 1e-4:  # a margin for float rounding (resized images)
        raise ValueError(f"{what} values must lie in [0, 1], got {lo:g}..{hi:g}")
    return host.astype(np.float32, copy=False)


def as_image(blurry) -> jnp.ndarray:
    """``[H, W]`` or ``[H, W, C]`` array-like in [0, 1] -> float32 ``[H, W, C]``, checked by
    :func:`check_image` (a traced value is only reshaped)."""
    if isinstance(blurry, jax.core.Tracer):
        arr = jnp.asarray(blurry, dtype=jnp.float32)
        return arr[:, :, None] if arr.ndim == 2 else arr
    return jnp.asarray(check_image(blurry))


def check_batch_images(blurry, what: str = "blurry images") -> list:
    """``deblur_batch``'s images: a sequence of images, or an array ``[B, H, W, C]`` (or
    ``[B, H, W]`` grey). A 2-D array (one grey image) or a 3-D array whose last axis could be
    colour is refused rather than guessed."""
    if isinstance(blurry, np.ndarray | jax.Array):
        shape = tuple(blurry.shape)
        if len(shape) == 3 and shape[-1] in (1, 3):
            raise ValueError(
                f"{what} of shape {shape} is ambiguous (one [H, W, C] image or a batch of "
                "[H, W] images?); give a batch as [B, H, W, C], or one image as [image]"
            )
        if len(shape) not in (3, 4):
            raise ValueError(
                f"{what} must be a batch [B, H, W, C] (or a sequence of images), got shape "
                f"{shape}"
                + ("; for one image use deblur or pass [image]" if len(shape) == 2 else "")
            )
    elif isinstance(blurry, str | bytes) or not hasattr(blurry, "__len__"):
        raise ValueError(f"{what} must be a sequence of images or a [B, H, W, C] array")
    return list(blurry)


def check_config(config) -> None:
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(
            f"config must be an ml_collections.ConfigDict (e.g. jaxdeconv.config.fast()), got "
            f"{type(config).__name__}; a dict d becomes one with ml_collections.ConfigDict(d)"
        )


def check_finite(losses: np.ndarray, first_step: int) -> None:
    """Raises ``NonFiniteLossError`` naming the first step (and image) whose loss is bad.

    ``losses`` is ``[steps]`` or ``[steps, B]``; steps count from 1.
    """
    bad = np.argwhere(~np.isfinite(losses))
    if bad.size:
        step = first_step + int(bad[0][0])
        where = f" (image {int(bad[0][1])} of the batch)" if losses.ndim == 2 else ""
        raise NonFiniteLossError(
            f"loss became {losses[tuple(bad[0])]} at step {step}{where}; lower the learning "
            "rates or check the input image"
        )


def _checkpoint_manager(directory: str, every: int):
    import orbax.checkpoint as ocp  # only needed when checkpointing

    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, save_interval_steps=every, enable_async_checkpointing=True
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def _snapshot_array(shape: tuple, num_steps: int, every: int, taken: dict | None = None):
    """The snapshots (each of ``shape``) as one array ``[num_steps // every, *shape]`` for a
    checkpoint (NaN where none was taken yet)."""
    out = np.full((num_steps // every, *shape), np.nan, np.float32)
    for step, snap in (taken or {}).items():
        out[step // every - 1] = snap
    return out


def _typed_keys(keys) -> jax.Array:
    """Typed keys (``jax.random.key``); raw ``uint32 [..., 2]`` keys (``PRNGKey``) are wrapped."""
    keys = jnp.asarray(keys)
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return keys
    if keys.dtype == jnp.uint32 and keys.ndim >= 1 and keys.shape[-1] == 2:
        return jax.random.wrap_key_data(keys)
    raise ValueError(f"keys must be jax.random.key(...) keys, got {keys.dtype} {keys.shape}")


def run_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(key_state, key_loop, key_sample) = split(key, 3)``: the keys of one image's run."""
    key_state, key_loop, key_sample = jax.random.split(key, 3)
    return key_state, key_loop, key_sample


def _check_batch(ys: jax.Array, keys: jax.Array) -> None:
    """Shapes and dtypes at the API boundary: ``ys [B, H, W, C]`` float32, ``keys [B]``."""
    try:
        chex.assert_rank(ys, 4)
        chex.assert_type(ys, jnp.float32)
        chex.assert_shape(keys, (ys.shape[0],))
    except AssertionError as e:
        raise ValueError(
            f"expected images [B, H, W, C] float32 and keys [B]; got images {ys.shape} "
            f"{ys.dtype} and keys {getattr(keys, 'shape', None)} ({e})"
        ) from None


def _run(
    ys: jax.Array,
    config: ml_collections.ConfigDict,
    keys: jax.Array,
    *,
    batched: bool,
    callback: Callable[[int, dict], None] | None,
    checkpoint_dir: str | None,
    num_devices: int | None = None,
    num_real: int | None = None,
    spec: train.SpecArgument = None,
    step_fn: Callable | None = None,
    warm_start: Callable | None = None,
    zx: jax.Array | None = None,
    zk: jax.Array | None = None,
) -> list[DeblurResult]:
    """Trains ``ys [B, H, W, C]``; ``num_real``: results for the first ones only (padding)."""
    start = time.perf_counter()
    _check_batch(ys, keys)
    fns = runner_lib.get_runner(
        config,
        ys.shape[1:],
        batch_size=ys.shape[0] if batched else None,
        num_devices=num_devices,
        spec=spec,
        step_fn=step_fn,
    )
    spec = fns.spec
    key_state, key_loop, key_sample = jax.vmap(run_keys)(keys)
    if batched:
        y, k_state, k_loop, k_sample = fns.place((ys, key_state, key_loop, key_sample))
    else:
        y, k_state, k_loop, k_sample = ys[0], key_state[0], key_loop[0], key_sample[0]
    if zx is None and zk is None:
        state = fns.init(k_state)
    else:
        state = fns.init(k_state, zx, zk)
    if warm_start is not None:
        state = warm_start(spec, state)

    num_steps = config.num_steps
    # One host array per metric the step returns: [num_steps] (or [num_steps, B]).
    shapes = jax.eval_shape(fns.step, state, y, k_loop)[1]
    history = {
        name: np.full((num_steps, *s.shape), np.nan, np.float32) for name, s in shapes.items()
    }
    if "loss" not in history:
        raise ValueError(f"the train step must return a 'loss' metric, got {sorted(history)}")
    snapshot_every = int(config.snapshot_every)
    snapshots: dict[int, np.ndarray] = {}
    snapshot_shape = jax.eval_shape(fns.snapshot, state).shape if snapshot_every else ()
    manager = None
    first = 0
    if checkpoint_dir and config.checkpoint_every > 0:
        import orbax.checkpoint as ocp

        manager = _checkpoint_manager(checkpoint_dir, config.checkpoint_every)
        latest = manager.latest_step()
        if latest is not None:
            target = {"state": state, "history": history}
            if snapshot_every:
                target["snapshots"] = _snapshot_array(snapshot_shape, num_steps, snapshot_every)
            restored = manager.restore(latest, args=ocp.args.StandardRestore(target))
            state = restored["state"]
            history = {k: np.asarray(v) for k, v in restored["history"].items()}
            if snapshot_every:  # the curve keeps the points taken before the stop
                for i, snap in enumerate(np.asarray(restored["snapshots"])):
                    if (i + 1) * snapshot_every <= latest:
                        snapshots[(i + 1) * snapshot_every] = snap
            if batched:
                state = fns.place(state)
            first = int(latest)
            logging.info("resumed from the checkpoint at step %d in %s", first, checkpoint_dir)

    pending: list[dict] = []
    log_every = max(1, int(config.log_every))
    try:
        for i in range(first, num_steps):
            state, metrics = fns.step(state, y, k_loop)
            pending.append(metrics)
            done = i + 1
            save = manager is not None and done % config.checkpoint_every == 0 and done < num_steps
            if snapshot_every and done % snapshot_every == 0:
                snapshots[done] = fns.snapshot(state)
            if not (save or done % log_every == 0 or done == num_steps):
                continue
            pulled = jax.device_get(pending)
            for name in history:
                history[name][done - len(pending) : done] = np.stack(
                    [np.asarray(m[name], np.float32) for m in pulled]
                )
            losses = history["loss"][done - len(pending) : done]
            check_finite(losses[:, :num_real] if batched else losses, done + 1 - len(pending))
            pending = []
            if save:
                import orbax.checkpoint as ocp

                # Asynchronous: the files are written while training goes on. Saved from host
                # copies: the next step donates the state's buffers and the loop keeps filling
                # the history.
                saved = {
                    "state": jax.device_get(state),
                    "history": {k: v.copy() for k, v in history.items()},
                }
                if snapshot_every:
                    saved["snapshots"] = _snapshot_array(
                        snapshot_shape, num_steps, snapshot_every, jax.device_get(snapshots)
                    )
                manager.save(done, args=ocp.args.StandardSave(saved))
            last = {
                k: float(np.mean(v[:num_real] if batched else v)) for k, v in pulled[-1].items()
            }
            logging.info("step %d: %s", done, last)
            if callback is not None:
                callback(done, last)
    finally:  # also when a callback or a bad loss stops the run
        if manager is not None:
            manager.wait_until_finished()

    last_step = num_steps - 1
    noise_std, rate = config.sample.noise_std, config.sample.dropout_rate
    # Strong float32 scalars: the same argument types at every call (no retracing).
    noise_std = np.float32(spec.noise(last_step) if noise_std is None else noise_std)
    rate = np.float32(spec.dropout(last_step) if rate is None else rate)
    kernel, big, mean, std = jax.device_get(fns.outputs(state, k_sample, noise_std, rate))
    if not batched:
        kernel, big, mean, std = (a[None] for a in (kernel, big, mean, std))
        history = {k: v[:, None] for k, v in history.items()}
    seconds = time.perf_counter() - start
    snapshots = jax.device_get(snapshots)
    if not batched:
        snapshots = {k: v[None] for k, v in snapshots.items()}
    num_real = ys.shape[0] if num_real is None else num_real
    # A host copy: stepping it through a donating jitted step cannot delete it.
    state = jax.device_get(state)
    results = []
    for b in range(num_real):
        state_b = jax.tree_util.tree_map(lambda a, b=b: a[b], state) if batched else state
        metrics_b = {k: np.ascontiguousarray(v[:, b]) for k, v in history.items()}
        results.append(
            DeblurResult(
                kernel=np.asarray(kernel[b]),
                image=np.asarray(train.crop_to_blurry(big[b], spec.kernel_size)),
                image_big=np.asarray(big[b]),
                mean=np.asarray(mean[b]),
                std=np.asarray(std[b]),
                loss_history=metrics_b["loss"],
                seconds=seconds / num_real,
                state=state_b,
                snapshots={k: np.asarray(v[b]) for k, v in snapshots.items()} or None,
                metrics=metrics_b,
                spec=spec,
                key=key_loop[b],
            )
        )
    return results


def deblur(
    blurry,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    callback: Callable[[int, dict], None] | None = None,
    checkpoint_dir: str | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
    warm_start: Callable | None = None,
    zx: jax.Array | None = None,
    zk: jax.Array | None = None,
) -> DeblurResult:
    """Blind deblurring of one image by training Gx and Gk on it.

    Keys: ``key_state, key_loop, key_sample = split(key, 3)`` (:func:`run_keys`);
    ``train.init_state(spec, key_state)`` draws ``zx``, ``zk`` and the initial parameters
    (``key_zx, key_zk, key_init_x, key_init_k = split(key_state, 4)``); step ``t`` runs
    ``train_step(spec, state, y, key_loop)``, which draws from ``fold_in(key_loop, t)``;
    ``sample_statistics(spec, state, key_sample, ...)`` gives the mean and uncertainty map.
    The same keys in your own loop give exactly this run.

    Args:
      blurry: ``[H, W]`` or ``[H, W, C]`` float image in [0, 1].
      config: a run config (``jaxdeconv.config``); ``config.kernel_size`` (odd) sets ``K``.
      key: PRNG key; defaults to ``jax.random.key(config.seed)``.
      callback: called at every log point with ``(step, metrics)`` (host floats).
      checkpoint_dir: with ``config.checkpoint_every > 0``, an Orbax checkpoint is kept here
        and a run finding one resumes from it.
      spec: your own ``train.RunSpec`` in place of ``train.build_spec(config, shape)``, e.g.
        ``build_spec(config, shape)._replace(kernel_net=MyNet(), zk_shape=...)``, or a builder
        ``spec(config, shape) -> RunSpec``: your networks go through the same loop,
        checkpoints and outputs. The spec is the one source of truth for what it holds
        (networks, optimisers, schedules, kernel size, loss and extra loss terms), which must
        agree with the config's ``kernel_size`` (``ValueError`` naming both otherwise, before
        anything compiles: ``train.check_spec``); the config then gives only the loop
        (``num_steps``, ``log_every``, ``checkpoint_every``, ``snapshot_every``, ``sample``).
        A ``RunSpec`` built for another image shape raises ``ValueError``.
      step: your own ``step(spec, state, y, key) -> (state, metrics)`` in place of
        ``train.train_step``; every metric it returns is recorded per step in
        ``DeblurResult.metrics``; it must return ``'loss'``. (An extra loss term needs no
        step of its own: ``build_spec(..., extra_losses=...)`` or ``config.extra_loss``.)
      warm_start: ``warm_start(spec, state) -> state``, applied to the freshly initialised
        state before training (a checkpoint, if resumed, replaces it): e.g. weights carried
        from a run at a coarser scale (``jaxdeconv.run.progressive``).
      zx, zk: the fixed inputs of the two networks (``spec.zx_shape``, ``spec.zk_shape``) in
        place of the ones drawn from ``key_state`` (the other draws do not change).

    Returns:
      A ``DeblurResult``. Compiled functions are cached by value (``jaxdeconv.run.runner``): a
      second image of the same shape and config (or an equal spec) compiles nothing.
    """
    check_config(config)
    y = as_image(blurry)[None]
    if key is None:
        key = jax.random.key(config.seed)
    return _run(
        y,
        config,
        _typed_keys(key)[None],
        batched=False,
        callback=callback,
        checkpoint_dir=checkpoint_dir,
        spec=spec,
        step_fn=step,
        warm_start=warm_start,
        zx=zx,
        zk=zk,
    )[0]


def deblur_batch(
    blurry: Sequence | np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    keys: jax.Array | None = None,
    callback: Callable[[int, dict], None] | None = None,
    checkpoint_dir: str | None = None,
    num_devices: int | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> list[DeblurResult]:
    """Trains one pair of networks per image, all images in one vmapped step.

    With several local devices the batch is split over them (``jax.shard_map`` of the vmapped
    step, one-axis mesh): each device trains its share of the images. A batch that is not a
    multiple of the device count is padded by repeating its last image, whose extra results are
    dropped.

    Args:
      blurry: ``[B, H, W, C]`` (or a sequence of same-shaped images).
      keys: ``[B]`` keys; defaults to ``jax.random.key(config.seed)`` for every image, so each
        image gets exactly what ``deblur`` alone would give it.
      num_devices: how many local devices to use (default: all).
      spec, step: as for ``deblur``.

    Returns:
      One ``DeblurResult`` per image (``seconds`` is the batch's time divided by B).
    """
    check_config(config)
    images = check_batch_images(blurry)
    if len(images) == 0:
        raise ValueError("deblur_batch needs at least one image, got none")
    checked = [check_image(b, f"blurry image {i} of the batch") for i, b in enumerate(images)]
    if len({b.shape for b in checked}) > 1:
        raise ValueError(
            "deblur_batch needs images of one shape, got "
            + ", ".join(sorted({str(b.shape) for b in checked}))
        )
    ys = jnp.asarray(np.stack(checked))
    if keys is None:
        keys = jnp.stack([jax.random.key(config.seed)] * ys.shape[0])
    keys = _typed_keys(keys)
    _check_batch(ys, keys)
    n = len(jax.local_devices()) if num_devices is None else int(num_devices)
    size = runner_lib.padded_size(ys.shape[0], n)
    return _run(
        runner_lib.pad_batch(ys, size),
        config,
        runner_lib.pad_batch(keys, size),
        batched=True,
        callback=callback,
        checkpoint_dir=checkpoint_dir,
        num_devices=n,
        num_real=ys.shape[0],
        spec=spec,
        step_fn=step,
    )
