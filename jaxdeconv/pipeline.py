"""From a blurry image (array or file) to files on disk: the path the launchers share.

``deblur_image`` runs the blind estimate on the luminance and, for the final picture, a
non-blind hyper-Laplacian deconvolution with the estimated kernel on every channel (the
paper's two-stage protocol, which beats the network's direct output on real photos). The
network's own image and the uncertainty map (per-pixel standard deviation of stochastic draws
of Gx) are returned too. ``save_outputs`` writes them atomically under one name prefix.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxdeconv import (
    api,
    crops,
    diagnose,
    image_io,
    kernel_size,
    multiscale,
    nonblind,
    refine,
    train,
)


@dataclasses.dataclass
class Outputs:
    deblurred: np.ndarray  # [H, W, C]: two-stage result, every input channel
    network: np.ndarray  # [h, w, 1]: Gx's deterministic output (luminance; the crop if any)
    kernel: np.ndarray  # [K, K]
    uncertainty: np.ndarray  # [h, w, 1]
    result: api.DeblurResult
    facts: dict = dataclasses.field(default_factory=dict)  # how the kernel was found (Plan etc.)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and at what scale the network estimates the kernel of an ``[H, W]`` image."""

    kernel_size: int  # full-resolution side estimated: the given size (times the support
    # margin), or the upper bound when auto
    auto: bool  # the size is to be found (kernel_size.trim) after the estimate
    scale: float  # the network's working scale (1: full resolution)
    net_kernel_size: int  # the network's kernel side at that scale
    window: int  # side of the full-resolution estimation window (0: the whole image)
    size: int = 0  # side of the kernel returned (0 when auto: found after the estimate)


def _with_field(config: ml_collections.ConfigDict, name: str, value) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the top-level field ``name`` set to ``value`` (types not
    checked: ``kernel_size`` may be ``"auto"``)."""
    d = config.to_dict()
    d[name] = value
    return ml_collections.ConfigDict(d)


def with_kernel_size(config: ml_collections.ConfigDict, kernel_size) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``kernel_size`` set (an odd integer or ``"auto"``)."""
    return _with_field(config, "kernel_size", kernel_size)


def _largest_kernel(shape: tuple[int, ...]) -> int:
    """The largest odd side estimated on an ``[H, W]`` image: at most half its short side,
    less one (the valid part of a blur by a larger kernel would be a few pixels)."""
    limit = max(int(min(shape[:2]) / 2 - 1), 1)
    return limit if limit % 2 else limit - 1


def plan(shape: tuple[int, ...], config: ml_collections.ConfigDict) -> Plan:
    """The :class:`Plan` for an image of ``shape`` (``[H, W(, C)]``)."""
    k = config.kernel_size
    auto = isinstance(k, str)
    if auto:
        if k != "auto":
            raise ValueError(f"kernel_size must be an odd integer or 'auto', got {k!r}")
        bound = int(config.auto_size.max_size) or kernel_size.default_max_size(shape)
        k = min(bound, _largest_kernel(shape))
        k = k if k % 2 else k - 1
    k = int(k)
    s = multiscale.working_scale(k, int(config.scale.max_kernel))
    window = int(round(config.crop_size / s)) if config.crop_size else 0
    size = 0 if auto else k
    margin = float(config.get("support_margin", 1.0))
    if not auto and margin > 1.0:
        # A larger support than the blur's, at the same working scale: the estimate may drift
        # (the shift ambiguity of blind deconvolution) without being cut at the border.
        k = max(k, min(multiscale.odd(k * margin), _largest_kernel(shape)))
    return Plan(k, auto, s, multiscale.scaled_kernel_size(k, s), window, size)


def network_config(
    config: ml_collections.ConfigDict, shape: tuple[int, ...]
) -> ml_collections.ConfigDict:
    """The config the network trains with on an image of ``shape``: ``config`` with the
    kernel side at the working scale, and an unset input-noise level resolved from the blur's
    full-resolution size (a 55 px blur estimated as 27 taps is still a large kernel)."""
    p = plan(shape, config)
    cfg = with_kernel_size(config, p.net_kernel_size)
    if cfg.noise.init is None:
        full = with_kernel_size(config, p.size or p.kernel_size)
        cfg.noise.init = train.initial_noise_std(full)
    return cfg


def estimation_region(
    luminance: np.ndarray, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What the network is trained on, and its box ``(top, left, h, w)`` in ``[H, W, 1]``:
    the most textured ``crop_size / s`` window (everything when ``crop_size`` is 0 or the
    image is smaller), down-sampled by the working scale ``s`` (:func:`plan`)."""
    p = plan(luminance.shape, config)
    # 'structure' smooths by crop_sigma pixels of the working scale ('gradient' ignores it).
    window, box = crops.textured_window(
        luminance,
        p.window,
        select=window_rule(config, p),
        sigma=float(config.get("crop_sigma", 1.5)) / p.scale,
    )
    return multiscale.downscale(window, p.scale), box


def window_rule(config: ml_collections.ConfigDict, p: Plan) -> str:
    """``config.crop_select``, with ``'auto'`` resolved: ``'structure'`` where the network works
    coarse-to-fine (working scale below 1), else ``'gradient'``."""
    select = str(config.get("crop_select", "gradient"))
    if select == "auto":
        return "structure" if p.scale < 1.0 else "gradient"
    return select


def region_shape(shape: tuple[int, ...], config: ml_collections.ConfigDict) -> tuple[int, int]:
    """``(h, w)`` of :func:`estimation_region` for an image of ``shape``, without the image
    (so a folder can be grouped into batches before anything is decoded)."""
    p = plan(shape, config)
    return multiscale.downscaled_shape(crops.window_shape(shape[:2], p.window), p.scale)


def _polish_args(config: ml_collections.ConfigDict, size: int | None = None) -> dict:
    """The polish's arguments; with ``size``, the L0 weight for a kernel of that side."""
    lam = config.polish.lam
    if size is not None:
        lam = refine.size_scaled_lam(lam, size, config.polish.lam_ref_size)
    return dict(
        iters=config.polish.iters,
        lam=lam,
        reg=config.polish.reg,
        threshold=config.polish.threshold,
    )


def _polish_window(luminance: np.ndarray, config, p: Plan) -> np.ndarray:
    """The most textured window of side ``max(polish.crop_size, polish.kernel_factor * K)``:
    where the kernel is polished and candidate kernels are compared."""
    side = max(int(config.polish.crop_size), int(config.polish.kernel_factor) * p.kernel_size)
    return crops.textured_window(luminance, side)[0]


def _residual(image: np.ndarray, kernel: np.ndarray) -> float:
    if min(image.shape[:2]) <= 2 * kernel.shape[0]:
        return float("inf")
    return float(refine.deconv_residual(image, kernel))


def _network_kernel(result: api.DeblurResult, region: np.ndarray, size: int, config) -> np.ndarray:
    """The network's kernel, refit by NNLS (``config.refine``) at the network's scale."""
    if not config.refine.enabled:
        return np.asarray(result.kernel)
    return np.asarray(
        refine.refine_kernel(
            result.image_big, region, size, reg=config.refine.reg, threshold=config.refine.threshold
        )
    )


def kernel_from_network(
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """The final kernel from one network run, and facts about how it was found.

    The network's kernel (refit by NNLS when ``config.refine.enabled``); at a working scale
    below 1, re-sampled and polished up a pyramid to full resolution
    (``refine.polish_coarse_to_fine``); else polished at full resolution
    (``refine.polish_kernel``). Either polish runs on the most textured window of
    ``luminance [H, W, 1]`` (the region when not given) of side ``max(polish.crop_size,
    polish.kernel_factor * K)`` and, with ``config.polish.select``, is kept only where the
    final non-blind step fits that window better. With ``kernel_size="auto"`` the kernel is
    then cut to its support (``kernel_size.trim``) and polished once more at that size.
    """
    lum = region if luminance is None else luminance
    p = plan(lum.shape, config)
    facts = {"scale": p.scale, "net_kernel_size": p.net_kernel_size, "polished": False}
    coarse = _network_kernel(result, region, p.net_kernel_size, config)
    if p.scale < 1.0:
        # The pixel-density ratio the region was actually down-sampled by.
        window = p.window or max(lum.shape[:2])
        sides = [min(window, n) for n in lum.shape[:2]]
        ratio = float(np.mean([r / n for r, n in zip(region.shape[:2], sides, strict=True)]))
        kernel = multiscale.resize_kernel(coarse, p.kernel_size, scale=1.0 / ratio)
    else:
        ratio, kernel = 1.0, coarse
    if not config.polish.enabled:
        return _auto_trim(kernel, p, config, None, facts)
    image = _polish_window(lum, config, p)
    # The polish refits on the image's interior, which needs more than twice the kernel's
    # side; on smaller images the (refit) network kernel is kept.
    if min(image.shape[:2]) > 2 * p.kernel_size:
        if ratio < 1.0:
            polished = np.asarray(
                refine.polish_coarse_to_fine(
                    image,
                    coarse,
                    p.kernel_size,
                    ratio,
                    factor=config.scale.pyramid_factor,
                    lam_ref_size=config.polish.lam_ref_size,
                    **_polish_args(config),
                )
            )
        else:
            args = _polish_args(config, p.kernel_size)
            polished = np.asarray(refine.polish_kernel(image, kernel, **args))
        better = _keep_polished(image, kernel, polished, config)
        if better:
            kernel = polished
        facts["polished"] = bool(better)
    return _auto_trim(kernel, p, config, image if config.polish.enabled else None, facts)


def _keep_polished(image, kernel, polished, config) -> bool:
    """Whether the polish's kernel replaces ``kernel``: never when it is flagged by
    ``diagnose`` (a delta or border-piled kernel) while ``kernel`` is not, since a delta fits
    the data well and would win on the residual (measured: synthetic quick case
    07_k33t_n1_smooth_128, a clean network kernel polished into a single tap); otherwise, with
    ``polish.select``, only where the final non-blind step fits ``image`` better."""
    if not _check(polished, config).ok and _check(kernel, config).ok:
        return False
    return not config.polish.select or _residual(image, polished) < _residual(image, kernel)


def _auto_trim(kernel, p: Plan, config, image, facts) -> tuple[np.ndarray, dict]:
    """The kernel at its returned size: as estimated for a given size without margin; cut
    to its support (``kernel_size.trim``) when auto; re-centred on its support at the given
    size after an estimate with ``support_margin``. A cut kernel is polished once more."""
    if not p.auto and p.size == p.kernel_size:
        facts["kernel_size_used"] = int(kernel.shape[0])
        return np.asarray(kernel, np.float32), facts
    a = config.auto_size
    if p.auto:
        cut, size = kernel_size.trim(
            kernel, mass=a.mass, margin=a.margin, min_size=a.min_size, threshold=a.threshold
        )
    else:
        size = p.size
        cut = kernel_size.recentre(kernel, size, mass=a.mass, threshold=a.threshold)
    facts["kernel_size_bound"] = p.kernel_size
    if image is not None and size < p.kernel_size and min(image.shape[:2]) > 2 * size:
        args = _polish_args(config, size)
        args["iters"] = max(1, args["iters"] // 2)
        polished = np.asarray(refine.polish_kernel(image, cut, **args))
        if _keep_polished(image, cut, polished, config):
            cut = polished
    facts["kernel_size_used"] = int(size)
    return np.asarray(cut, np.float32), facts


def final_kernel(
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`kernel_from_network`'s kernel alone."""
    return kernel_from_network(result, region, config, luminance)[0]


def _check(kernel: np.ndarray, config) -> diagnose.Diagnosis:
    return diagnose.diagnose(
        kernel, delta_peak=config.recover.delta_peak, border_limit=config.recover.border_mass
    )


def robust_kernel(
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray | None = None,
    *,
    key: jax.Array | None = None,
) -> tuple[np.ndarray, dict]:
    """:func:`kernel_from_network`, checked by ``jaxdeconv.diagnose``: a flagged kernel (a
    delta, or mass piled on the border) triggers up to ``config.recover.attempts`` more
    network runs with other keys; among the candidates, unflagged ones come first and the
    lowest data residual on the polish window wins. Returns the kernel and facts."""
    lum = region if luminance is None else luminance
    kernel, facts = kernel_from_network(result, region, config, lum)
    found = _check(kernel, config)
    facts["diagnosis"] = found._asdict()
    attempts = int(config.recover.attempts)
    if found.ok or attempts <= 0:
        return kernel, facts
    p = plan(lum.shape, config)
    image = _polish_window(lum, config, p)
    candidates = [(not found.ok, _residual(image, kernel), kernel, facts)]
    base = jax.random.key(config.seed) if key is None else key
    net_cfg = network_config(config, lum.shape)
    for i in range(attempts):
        retry = api.deblur(region, net_cfg, key=jax.random.fold_in(base, 1000 + i))
        k, f = kernel_from_network(retry, region, config, lum)
        d = _check(k, config)
        f["diagnosis"] = d._asdict()
        candidates.append((not d.ok, _residual(image, k), k, f))
        if d.ok:
            break
    flagged, _, kernel, facts = min(candidates, key=lambda c: (c[0], c[1]))
    facts["recovery_runs"] = len(candidates) - 1
    return kernel, facts


class Choice(NamedTuple):
    """The kept estimate: final kernel, how it was found, the network run it came from and
    that run's window box ``(top, left, h, w)`` in the full-resolution image."""

    kernel: np.ndarray
    facts: dict
    result: api.DeblurResult
    box: tuple[int, int, int, int]


def choose_estimate(
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray,
    *,
    key: jax.Array | None = None,
) -> Choice:
    """:func:`robust_kernel` on the network run ``result`` (trained on ``region``, the
    window ``config.crop_select`` picks in ``luminance [H, W, 1]``) and, for each other
    window rule in ``config.recover.windows``, on a network run trained on that rule's window
    (same key; skipped where it picks the same window). Unflagged kernels first, then the
    lowest data residual of the final non-blind step on the polish window decides."""
    _, box = estimation_region(luminance, config)
    p = plan(luminance.shape, config)
    kernel, facts = robust_kernel(result, region, config, luminance, key=key)
    facts["window"] = window_rule(config, p)
    best = Choice(kernel, facts, result, box)
    others = [w for w in config.recover.get("windows", ()) if w != facts["window"]]
    if not others or not config.crop_size:
        return best
    image = _polish_window(luminance, config, p)

    def rank(choice: Choice) -> tuple[bool, float]:
        flagged = not _check(choice.kernel, config).ok
        return flagged, _residual(image, choice.kernel)

    tried, best_rank = 1, rank(best)
    for select in others:
        cfg = _with_field(config, "crop_select", select)
        other_region, other_box = estimation_region(luminance, cfg)
        if other_box == box:
            continue
        other = api.deblur(other_region, network_config(cfg, luminance.shape), key=key)
        k, f = robust_kernel(other, other_region, cfg, luminance, key=key)
        f["window"] = select
        candidate = Choice(k, f, other, other_box)
        tried += 1
        candidate_rank = rank(candidate)  # a non-blind deconvolution: computed once
        if candidate_rank < best_rank:
            best, best_rank = candidate, candidate_rank
    best.facts["windows_tried"] = tried
    return best


def _full_resolution(result: api.DeblurResult, shape: tuple[int, int]) -> api.DeblurResult:
    """``result`` with its cropped images re-sampled to the estimation window's ``shape``
    (a no-op at full resolution); ``image_big`` stays at the network's scale."""
    if tuple(result.image.shape[:2]) == tuple(shape):
        return result

    def up(a):
        a = np.asarray(a)
        return np.asarray(jax.image.resize(a, tuple(shape) + a.shape[2:], method="linear"))

    return result._replace(image=up(result.image), mean=up(result.mean), std=up(result.std))


def estimate(
    luminance: np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    checkpoint_dir: str | None = None,
) -> tuple[api.DeblurResult, tuple[int, int, int, int], np.ndarray]:
    """Blind estimate on ``[H, W, 1]``: the result (its images cover the estimation window,
    at full resolution), the window's box and the final kernel. ``checkpoint_dir`` (with
    ``config.checkpoint_every > 0``) lets a stopped network run resume (``api.deblur``)."""
    region, _ = estimation_region(luminance, config)
    result = api.deblur(
        region, network_config(config, luminance.shape), key=key, checkpoint_dir=checkpoint_dir
    )
    kernel, _, result, box = choose_estimate(result, region, config, luminance, key=key)
    return _full_resolution(result, box[2:]), box, kernel


def finish(
    blurry: np.ndarray,
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
) -> Outputs:
    """Final kernel, then non-blind deconvolution (``nonblind.final_deconv``) of every channel
    of ``blurry [H, W, C]``.

    ``result`` is the network run on ``region`` (from :func:`estimation_region`, trained with
    :func:`network_config`); ``key`` seeds any further network run (:func:`choose_estimate`;
    default ``jax.random.key(config.seed)``)."""
    luminance = image_io.luminance(blurry)
    kernel, facts, result, box = choose_estimate(result, region, config, luminance, key=key)
    # The configured non-blind step (config.nonblind: hyper-Laplacian, or the outlier-robust
    # solver where clipped pixels are found).
    deblurred = np.asarray(nonblind.final_deconv(blurry, kernel, config))
    full = _full_resolution(result, box[2:])
    return Outputs(
        deblurred=deblurred.reshape(blurry.shape),
        network=full.image,
        kernel=kernel,
        uncertainty=full.std,
        result=result,
        facts=facts,
    )


def deblur_image(
    blurry: np.ndarray, config: ml_collections.ConfigDict, *, key: jax.Array | None = None
) -> Outputs:
    """Blind deblurring of ``[H, W, C]`` in [0, 1]: kernel on luminance, then every channel."""
    blurry = np.asarray(blurry, np.float32)
    if blurry.ndim == 2:
        blurry = blurry[..., None]
    region, _ = estimation_region(image_io.luminance(blurry), config)
    result = api.deblur(region, network_config(config, blurry.shape), key=key)
    return finish(blurry, result, region, config, key=key)


def save_outputs(outdir: str, name: str, outputs: Outputs) -> dict[str, str]:
    """Writes ``NAME_deblurred.png``, ``NAME_network.png``, ``NAME_kernel.png``/``.npy`` and
    ``NAME_uncertainty.png`` (scaled so the largest deviation is white) plus ``.npy``."""
    paths = {
        "deblurred": os.path.join(outdir, f"{name}_deblurred.png"),
        "network": os.path.join(outdir, f"{name}_network.png"),
        "kernel_png": os.path.join(outdir, f"{name}_kernel.png"),
        "kernel_npy": os.path.join(outdir, f"{name}_kernel.npy"),
        "uncertainty_png": os.path.join(outdir, f"{name}_uncertainty.png"),
        "uncertainty_npy": os.path.join(outdir, f"{name}_uncertainty.npy"),
    }
    image_io.write_image(paths["deblurred"], outputs.deblurred)
    image_io.write_image(paths["network"], outputs.network)
    image_io.write_kernel_png(paths["kernel_png"], outputs.kernel)
    image_io.write_npy(paths["kernel_npy"], outputs.kernel)
    std = outputs.uncertainty
    image_io.write_image(paths["uncertainty_png"], std / max(float(std.max()), 1e-12))
    image_io.write_npy(paths["uncertainty_npy"], std)
    return paths


def run_facts(config: ml_collections.ConfigDict, outputs: Outputs, **extra: Any) -> dict:
    """What a run was: config, seed, time, final loss, machine."""
    return {
        "config": config.to_dict(),
        "seed": config.seed,
        "kernel_size": config.kernel_size,
        "kernel_size_used": int(outputs.kernel.shape[0]),
        "estimate": outputs.facts,
        "num_steps": config.num_steps,
        "seconds": round(outputs.result.seconds, 3),
        "final_loss": float(outputs.result.loss_history[-1]),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
