"""The network stage, optionally trained progressively from coarse to fine scales.

``network_run(luminance, config)`` is the one call that trains the networks on an image's
luminance ``[H, W, 1]`` and returns the run at the working scale (``jaxdeconv.planning``). With
``config.progressive.levels = L > 0`` it first trains at ``L`` coarser scales, coarsest first:
level ``l`` has a kernel grid of ``odd(K_w / factor^l)`` taps (``K_w``: the working scale's
grid; none under ``progressive.min_kernel``), i.e. the photo down-sampled so that the blur spans
that many pixels, on the most textured ``crop_size`` window at that scale (``crop_select``'s
rule): a coarser level sees a larger part of the photo for the same cost per step, the whole
photo once it is small enough; ``progressive.crop_size`` gives the coarser levels their own
window (0: the whole photo at their scale). The kernel generator's weights are carried from each
level to the next when the generator is resolution-free (``plugins.register_kernel_net(...,
resolution_free=True)``, e.g. ``kernel_net.type='coord'``); any other generator (Ren's MLP, the
U-Net Gk) starts afresh at every level, and then the image has to carry the coarse estimate up
(``image_input='previous'`` or ``carry_image``). With ``progressive.carry_image`` the image
generator's weights are carried (a fully convolutional net on an input of the new size).
``progressive.image_input`` sets that input at each level after the first: ``'noise'`` a fresh
draw; ``'resampled'`` the previous level's input resized to the new shape (the carried net sees
the same field, finer); ``'previous'`` the previous level's latent estimate, pasted into the
blurry photo at full resolution, cut to the new window, down-sampled and edge-padded, in channel
0, with the fresh draw in the other channels (the new level starts from the coarser level's
image, as a classical coarse-to-fine method does). Optimiser states start afresh at every level;
with ``progressive.hold_kernel`` the carried kernel is held (rate 0) for that fraction of a
level's first steps while the fresh image network catches up with it. ``progressive.step_share``
of ``num_steps`` goes to the coarser levels, evenly; the working scale gets the rest, with every
schedule (dropout, input noise, learning-rate decay) compressed to its steps, so the Monte-Carlo
randomisation of the paper runs at every level.

Keys: level ``l`` trains with ``fold_in(key, l)``; the working scale with ``key`` itself, so
``levels=0`` is exactly the single run. A checkpoint (``checkpoint_dir``) covers the working
scale's run; a resumed run repeats the (deterministic) coarser levels first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdeconv import planning
from jaxdeconv.classical import multiscale
from jaxdeconv.core import plugins, train
from jaxdeconv.run import api


def level_kernel_sizes(config: ml_collections.ConfigDict, p: planning.Plan) -> list[int]:
    """The kernel grid sides of the coarser levels, coarsest first (``[]``: no progression),
    for the image planned as ``p`` (``planning.plan(shape, config)``)."""
    prog = config.get("progressive")
    if prog is None or int(prog.levels) <= 0:
        return []
    working = p.net_kernel_size
    sizes = []
    for level in range(1, int(prog.levels) + 1):
        k = multiscale.odd(working / float(prog.factor) ** level)
        if k < int(prog.min_kernel) or k >= working or (sizes and k >= sizes[-1]):
            break
        sizes.append(k)
    return sizes[::-1]


def level_config(
    config: ml_collections.ConfigDict, kernel: int, num_steps: int
) -> ml_collections.ConfigDict:
    """``config`` for the level whose kernel grid has ``kernel`` taps: the working scale
    brought down to it (``scale.max_kernel``), with ``num_steps`` steps, no progression, and
    ``progressive.crop_size`` as its window where that is 0 or more."""
    d = config.to_dict()
    d["scale"]["max_kernel"] = int(kernel)
    if int(d["progressive"].get("crop_size", -1)) >= 0:
        d["crop_size"] = int(d["progressive"]["crop_size"])
    d["num_steps"] = int(num_steps)
    d["progressive"]["levels"] = 0
    return ml_collections.ConfigDict(d)


def step_split(config: ml_collections.ConfigDict, num_levels: int) -> tuple[int, int]:
    """``(steps per coarser level, steps at the working scale)``."""
    if num_levels == 0:
        return 0, int(config.num_steps)
    share = float(config.progressive.step_share)
    per_level = max(1, int(round(share * config.num_steps / num_levels)))
    return per_level, max(1, int(config.num_steps) - per_level * num_levels)


def carry(
    previous: train.TrainState | None, carry_image: bool, carry_kernel: bool = True
) -> Callable | None:
    """``warm_start(spec, state)`` putting ``previous``'s kernel weights (with
    ``carry_kernel``: a resolution-free generator) and, with ``carry_image``, its image weights
    into a fresh state, with fresh optimiser states; None when nothing is carried."""
    if previous is None or not (carry_kernel or carry_image):
        return None

    def warm_start(spec: train.RunSpec, state: train.TrainState) -> train.TrainState:
        if carry_kernel:
            params_k = jax.tree_util.tree_map(np.asarray, previous.params_k)
            state = state.replace(params_k=params_k, opt_k=spec.tx_k.init(params_k))
        if carry_image:
            params_x = jax.tree_util.tree_map(np.asarray, previous.params_x)
            state = state.replace(params_x=params_x, opt_x=spec.tx_x.init(params_x))
        return state

    return warm_start


def _upsample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image [h, w]`` resized (bilinear) to ``shape``."""
    return np.asarray(jax.image.resize(np.asarray(image, np.float32), shape, "linear"))


def level_input(
    mode: str,
    spec: train.RunSpec,
    key: jax.Array,
    previous: api.DeblurResult,
    luminance: np.ndarray,
    boxes: tuple[tuple[int, int, int, int], tuple[int, int, int, int]],
    scale: float,
) -> jax.Array | None:
    """The image net's fixed input ``zx`` (``spec.zx_shape``) for a level after the first, by
    ``progressive.image_input`` (``mode``; None for 'noise': drawn as usual from ``key``, the
    level's key). ``boxes``: the full-resolution windows ``(top, left, h, w)`` of the previous
    level and of this one; ``scale``: this level's scale; ``luminance``: ``[H, W, 1]``."""
    if mode == "noise":
        return None
    shape = spec.zx_shape
    if mode == "resampled":
        zx = np.asarray(previous.state.zx)
        return jnp.asarray(
            jax.image.resize(zx, (shape[0], shape[1], zx.shape[-1]), "linear"), jnp.float32
        )
    if mode != "previous":
        raise ValueError(f"progressive.image_input must be noise|resampled|previous, got {mode!r}")
    (pt, pl, ph, pw), (t, left, h, w) = boxes
    canvas = np.array(luminance[..., 0], np.float32)
    canvas[pt : pt + ph, pl : pl + pw] = np.clip(_upsample(previous.image[..., 0], (ph, pw)), 0, 1)
    latent = multiscale.downscale(canvas[t : t + h, left : left + w, None], scale)[..., 0]
    pad_h, pad_w = shape[0] - latent.shape[0], shape[1] - latent.shape[1]
    latent = np.pad(
        latent, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)), mode="edge"
    )
    noise = train.drawn_zx(spec, api.run_keys(key)[0])  # what the level would draw itself
    return noise.at[..., 0].set(jnp.asarray(latent))


def network_run(
    luminance: np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    p: planning.Plan,
    region: np.ndarray,
    box: tuple[int, int, int, int],
    key: jax.Array | None = None,
    checkpoint_dir: str | None = None,
    callback: Callable[[int, dict], None] | None = None,
    spec=None,
    step: Callable | None = None,
) -> api.DeblurResult:
    """Trains the networks for the image whose luminance is ``[H, W, 1]`` and returns the run
    at the working scale, trained on ``region`` with ``planning.network_config(config, p)``
    (its ``num_steps`` lowered by the coarser levels' share). ``p``: the image's plan
    (``planning.plan(luminance.shape, config)``); ``region``, ``box``: what
    ``planning.estimation_region(luminance, config, p=p)`` (or another window rule's config)
    gave, made once by the caller. ``key`` defaults to ``jax.random.key(config.seed)``.

    ``spec``, ``step``: as for ``api.deblur``, for every run (each coarser level and the
    working scale): a builder ``spec(config, shape) -> train.RunSpec`` gets each run's own
    config and shape; a fixed ``RunSpec`` fits one shape only."""
    key = jax.random.key(config.seed) if key is None else key
    shape = luminance.shape
    sizes = level_kernel_sizes(config, p)
    net_cfg = planning.network_config(config, p)
    hooks = dict(spec=spec, step=step)
    if not sizes:
        return api.deblur(
            region, net_cfg, key=key, checkpoint_dir=checkpoint_dir, callback=callback, **hooks
        )
    per_level, final_steps = step_split(config, len(sizes))
    carry_image = bool(config.progressive.carry_image)
    mode = str(config.progressive.get("image_input", "noise"))
    carry_kernel = plugins.kernel_net(config.kernel_net.type).resolution_free
    if not (carry_kernel or carry_image or mode == "previous"):
        raise ValueError(
            f"progressive.levels={config.progressive.levels} carries nothing up: the kernel "
            f"generator {config.kernel_net.type!r} is not resolution-free (e.g. "
            "kernel_net.type='coord' is), so set progressive.image_input='previous' or "
            "progressive.carry_image=True"
        )
    previous = previous_box = None
    keys = [jax.random.fold_in(key, len(sizes) + 1 - level) for level in range(1, len(sizes) + 1)]
    for k, level_key in [*zip(sizes, keys, strict=True), (None, key)]:
        if k is None:  # the working scale
            level_plan, run_cfg, run_region, level_box = p, net_cfg, region, box
            run_cfg.num_steps = final_steps
        else:
            cfg = level_config(config, k, per_level)
            level_plan = planning.plan(shape, cfg)
            run_region, level_box = planning.estimation_region(luminance, cfg, p=level_plan)
            run_cfg = planning.network_config(cfg, level_plan)
        zx = None
        if previous is not None:
            run_cfg.optim.hold_k = float(config.progressive.hold_kernel)
        if previous is not None and mode != "noise":
            level_spec = train.resolve_spec(spec, run_cfg, run_region.shape)
            zx = level_input(
                mode,
                level_spec,
                level_key,
                previous,
                luminance,
                (previous_box, level_box),
                level_plan.scale,
            )
        run = api.deblur(
            run_region,
            run_cfg,
            key=level_key,
            warm_start=carry(
                previous.state if previous is not None else None, carry_image, carry_kernel
            ),
            zx=zx,
            **hooks,
            **(dict(checkpoint_dir=checkpoint_dir, callback=callback) if k is None else {}),
        )
        previous, previous_box = run, level_box
    return run


def network_runs(
    luminances: Sequence[np.ndarray],
    config: ml_collections.ConfigDict,
    *,
    plans: Sequence[planning.Plan],
    regions: Sequence[np.ndarray],
    boxes: Sequence[tuple[int, int, int, int]],
    checkpoint_dir: str | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> list[api.DeblurResult]:
    """:func:`network_run` for several images of one config whose regions have one shape
    (luminances ``[H, W, 1]``, each with its plan, its region and the region's box), every one
    with the key ``jax.random.key(config.seed)``: trained together (``api.deblur_batch``,
    vmapped, with the first image's network config) at the working scale, or one at a time when
    progressive (each image carries its own coarser levels; ``checkpoint_dir`` then serves a
    single image only)."""
    if len(regions) == 1 or level_kernel_sizes(config, plans[0]):
        return [
            network_run(
                luminance,
                config,
                p=p,
                region=region,
                box=box,
                key=jax.random.key(config.seed),
                checkpoint_dir=checkpoint_dir if len(regions) == 1 else None,
                callback=callback,
            )
            for luminance, p, region, box in zip(luminances, plans, regions, boxes, strict=True)
        ]
    net_cfg = planning.network_config(config, plans[0])
    return api.deblur_batch(
        list(regions), net_cfg, checkpoint_dir=checkpoint_dir, callback=callback
    )
