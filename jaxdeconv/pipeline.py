"""From a blurry image array to the deblurred image, the kernel and the uncertainty: the
path the launchers share (they write the files: ``jaxdeconv.app.image_io.save_outputs``).

``deblur_image`` runs the blind estimate on the luminance and, for the final picture, a
non-blind hyper-Laplacian deconvolution with the estimated kernel on every channel (the
paper's two-stage protocol, which beats the network's direct output on real photos). The
network's own image and the uncertainty map (per-pixel standard deviation of stochastic draws
of Gx) are returned too.

The doors ``deblur_image`` and ``estimate`` (and the folder run, ``jaxdeconv.app.batch``) make
one :class:`Plan` per image (``plan(luminance.shape, config)``) and its estimation region with
the region's box (``estimation_region``), once, and pass them on: the functions below take them
as required arguments (``p=``, ``region``, ``box=``). The research hooks ``spec=`` and
``step=`` (``jaxdeconv.run.api.deblur``) reach every network run of an image, recovery and
other-window runs included; ``spec`` is then best a builder ``spec(config, shape) ->
RunSpec``, since those runs differ in shape.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxdeconv import variants
from jaxdeconv.classical import (
    colour,
    crops,
    diagnose,
    evidence,
    kernel_size,
    multiscale,
    nonblind,
    refine,
)
from jaxdeconv.core import train

# Where and at what scale the network works (re-exported: jaxdeconv.planning).
from jaxdeconv.planning import (  # noqa: F401
    Plan,
    _largest_kernel,
    _with_field,
    estimation_region,
    estimation_regions,
    network_config,
    plan,
    region_shape,
    window_rule,
    with_kernel_size,
)
from jaxdeconv.run import api, progressive


@dataclasses.dataclass
class Outputs:
    deblurred: np.ndarray  # [H, W, C]: two-stage result, every input channel
    network: np.ndarray  # [h, w, 1]: Gx's deterministic output (luminance; the crop if any)
    kernel: np.ndarray  # [K, K]
    uncertainty: np.ndarray  # [h, w, 1]
    result: api.DeblurResult
    facts: dict = dataclasses.field(default_factory=dict)  # how the kernel was found (Plan etc.)


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
    *,
    p: Plan,
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
    ``p``: the plan of ``luminance`` (of ``region`` when not given).
    """
    lum = region if luminance is None else luminance
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
    *,
    p: Plan,
) -> np.ndarray:
    """:func:`kernel_from_network`'s kernel alone."""
    return kernel_from_network(result, region, config, luminance, p=p)[0]


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
    p: Plan,
    box: tuple[int, int, int, int],
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> tuple[np.ndarray, dict]:
    """:func:`kernel_from_network`, checked by ``jaxdeconv.classical.diagnose``: a flagged kernel (a
    delta, or mass piled on the border) triggers up to ``config.recover.attempts`` more
    network runs with other keys (and the hooks ``spec``, ``step``); among the candidates,
    unflagged ones come first and the lowest data residual on the polish window wins. Returns
    the kernel and facts. ``p``: the plan of ``luminance`` (of ``region`` when not given);
    ``box``: the region's box ``(top, left, h, w)`` in it (from :func:`estimation_region`)."""
    lum = region if luminance is None else luminance
    kernel, facts = kernel_from_network(result, region, config, lum, p=p)
    found = _check(kernel, config)
    facts["diagnosis"] = found._asdict()
    attempts = int(config.recover.attempts)
    if found.ok or attempts <= 0:
        return kernel, facts
    image = _polish_window(lum, config, p)
    candidates = [(not found.ok, _residual(image, kernel), kernel, facts)]
    base = jax.random.key(config.seed) if key is None else key
    for i in range(attempts):
        retry = progressive.network_run(
            lum,
            config,
            p=p,
            region=region,
            box=box,
            key=jax.random.fold_in(base, 1000 + i),
            spec=spec,
            step=step,
        )
        k, f = kernel_from_network(retry, region, config, lum, p=p)
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
    p: Plan,
    box: tuple[int, int, int, int],
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> Choice:
    """:func:`robust_kernel` on the network run ``result`` (trained on ``region``, the
    window ``config.crop_select`` picks in ``luminance [H, W, 1]``) and, for each other
    window rule in ``config.recover.windows``, on a network run trained on that rule's window
    (same key and hooks ``spec``, ``step``; skipped where it picks the same window).
    Unflagged kernels first, then the lowest data residual of the final non-blind step on the
    polish window decides. ``p``: the plan of ``luminance`` (the window rule does not change
    it); ``box``: ``region``'s box ``(top, left, h, w)`` in ``luminance``."""
    hooks = dict(spec=spec, step=step)
    kernel, facts = robust_kernel(result, region, config, luminance, p=p, box=box, key=key, **hooks)
    facts["window"] = window_rule(config, p)
    best = Choice(kernel, facts, result, box)
    if int(config.recover.get("seeds", 1)) > 1 or config.recover.get("variants", ()):
        best = most_consistent(best, region, config, luminance, p=p, key=key, **hooks)
    if int(config.recover.get("agree_windows", 1)) > 1:
        best = agreeing_window(best, config, luminance, p=p, key=key, **hooks)
    others = [w for w in config.recover.windows if w != facts["window"]]
    if not others or not config.crop_size:
        return best
    image = _polish_window(luminance, config, p)

    def rank(choice: Choice) -> tuple[bool, float]:
        flagged = not _check(choice.kernel, config).ok
        return flagged, _residual(image, choice.kernel)

    tried, best_rank = 1, rank(best)
    for select in others:
        cfg = _with_field(config, "crop_select", select)
        other_region, other_box = estimation_region(luminance, cfg, p=p)
        if other_box == box:
            continue
        other = progressive.network_run(
            luminance, cfg, p=p, region=other_region, box=other_box, key=key, **hooks
        )
        k, f = robust_kernel(
            other, other_region, cfg, luminance, p=p, box=other_box, key=key, **hooks
        )
        f["window"] = select
        candidate = Choice(k, f, other, other_box)
        tried += 1
        candidate_rank = rank(candidate)  # a non-blind deconvolution: computed once
        if candidate_rank < best_rank:
            best, best_rank = candidate, candidate_rank
    best.facts["windows_tried"] = tried
    return best


def seed_config(
    config: ml_collections.ConfigDict, key: jax.Array | None, i: int
) -> tuple[ml_collections.ConfigDict, jax.Array | None]:
    """The config and key of the ``i``-th estimate of ``recover.seeds``: seed ``config.seed + i``
    (so with ``key=None`` it is exactly the run ``--seed=seed+i`` would make), or with a given
    ``key``, that config and ``fold_in(key, i)``."""
    cfg = _with_field(config, "seed", int(config.seed) + i)
    return cfg, None if key is None else jax.random.fold_in(key, i)


def most_consistent(
    first: Choice,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray,
    *,
    p: Plan,
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> Choice:
    """``recover.seeds = N`` whole estimates (``first``, then :func:`seed_config`'s seeds
    1..N-1, each a network run on ``region`` and :func:`robust_kernel`), then one per name in
    ``recover.variants`` (``variants.apply(name, config)`` at ``first``'s seed and key: the
    estimate that variant makes alone on the same window). With
    ``recover.seed_select = "agreement"`` the kept one is the unflagged kernel with the highest
    mean similarity (``diagnose.kernel_similarity``) to the others' (a medoid: the kernel the
    seeds agree on); with ``"evidence"``, the unflagged kernel under which the whole blurry
    ``luminance`` is most probable (:func:`most_evident`, ``recover.camera_blur`` px of camera
    blur allowed for), among the seeds' final kernels and, with ``recover.network_kernels``
    and the network at full resolution, their networks' own kernels before refit and polish
    (``facts["seeds"]["kept_kernel"]`` says which). The data residual of a deconvolution is
    not used: it picked the worse seed on all three Levin images tried (README). Facts: each
    seed, its agreement (and each candidate's evidence), the seed kept and, with variants,
    each candidate's label and the one kept. ``p``: the plan of ``luminance``; ``region``'s
    box is ``first.box``."""
    hooks = dict(spec=spec, step=step)
    choices = [first]
    seeds = int(config.recover.seeds)
    names = tuple(config.recover.get("variants", ()))
    others = [seed_config(config, key, i) for i in range(1, seeds)]
    others += [(variants.apply(name, config), key) for name in names]
    for cfg, k in others:
        run = progressive.network_run(
            luminance, cfg, p=p, region=region, box=first.box, key=k, **hooks
        )
        kernel, facts = robust_kernel(
            run, region, cfg, luminance, p=p, box=first.box, key=k, **hooks
        )
        facts["window"] = first.facts.get("window")
        choices.append(Choice(kernel, facts, run, first.box))
    n = len(choices)
    labels = [f"seed {int(config.seed) + i}" for i in range(seeds)] + list(names)

    def kept_facts(i: int) -> dict:  # the kept candidate's seed (a variant's: the base seed)
        out = {"kept": int(config.seed) + (i if i < seeds else 0)}
        return {**out, "candidates": labels, "kept_candidate": labels[i]} if names else out

    kept, agreement, flagged = medoid([c.kernel for c in choices], config)
    facts = {
        "seeds": [int(config.seed) + i for i in range(seeds)],
        "agreement": [round(a, 4) for a in agreement],
        "flagged": flagged,
    }
    if config.recover.get("seed_select", "agreement") != "evidence":
        best = choices[kept]
        best.facts["seeds"] = {**facts, **kept_facts(kept)}
        return best
    pool, pool_flags = [c.kernel for c in choices], list(flagged)
    if config.recover.get("network_kernels", False) and p.scale == 1.0:
        # Each run's own kernel, before refit and polish: at full resolution, a candidate too.
        pool += [np.asarray(c.result.kernel, np.float32) for c in choices]
        pool_flags += flagged_kernels(pool[n:], config)
    kept, scores = most_evident(pool, pool_flags, luminance, config.recover.camera_blur)
    facts["evidence"] = [round(e, 5) for e in scores]
    facts["kept_kernel"] = "final" if kept < n else "network"
    source = choices[kept % n]
    best = Choice(pool[kept], source.facts, source.result, source.box)
    best.facts["seeds"] = {**facts, **kept_facts(kept % n)}
    return best


def most_evident(
    kernels: list[np.ndarray], flagged: list[bool], image: np.ndarray, camera_blur: float
) -> tuple[int, list[float]]:
    """The index of the kernel under which the blurry ``image`` ([H, W] or [H, W, C]) is most
    probable (``classical.evidence``, each kernel with ``camera_blur`` px of Gaussian blur
    added): unflagged first, then the highest evidence, then the first; with each score."""
    score = evidence.kernel_scorer(image, camera_blur)
    scores = [score(k) for k in kernels]
    kept = max(range(len(kernels)), key=lambda i: (not flagged[i], scores[i], -i))
    return kept, scores


def medoid(kernels: list[np.ndarray], config: ml_collections.ConfigDict):
    """The index of the kernel the others agree on: unflagged first, then the highest mean
    similarity (``diagnose.kernel_similarity``) to the others, then the first; with each
    kernel's mean similarity and flag."""
    n = len(kernels)
    similarity = diagnose.kernel_similarity
    agreement = [
        float(np.mean([similarity(kernels[i], kernels[j]) for j in range(n) if j != i]))
        for i in range(n)
    ]
    flagged = flagged_kernels(kernels, config)
    kept = max(range(n), key=lambda i: (not flagged[i], agreement[i], -i))
    return kept, agreement, flagged


def flagged_kernels(kernels: list[np.ndarray], config: ml_collections.ConfigDict) -> list[bool]:
    """For each kernel, whether the blind checks flag it (a delta or mass piled on its
    border, ``config.recover``'s limits): the kernels a choice among candidates puts last."""
    return [not _check(k, config).ok for k in kernels]


def agreeing_window(
    first: Choice,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray,
    *,
    p: Plan,
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> Choice:
    """Agreement across windows (``recover.agree_windows = N``): the same estimate (a network
    run and :func:`robust_kernel`, same key) on up to N - 1 further windows of the photo, each
    overlapping the others by at most ``recover.max_overlap`` of its area
    (``planning.estimation_regions``), and the :func:`medoid` of the N kernels kept: the blur
    is the same in every window, a path that fits one window's content is not. ``first``: the
    estimate on the first window. Facts: the windows, their agreement, the one kept."""
    hooks = dict(spec=spec, step=step)
    count = int(config.recover.agree_windows)
    regions = estimation_regions(luminance, config, count, p=p)
    choices = [first]
    for region, box in regions:
        if tuple(box) == tuple(first.box):
            continue
        where = dict(p=p, box=box, key=key, **hooks)
        run = progressive.network_run(luminance, config, region=region, **where)
        kernel, facts = robust_kernel(run, region, config, luminance, **where)
        facts["window"] = first.facts.get("window")
        choices.append(Choice(kernel, facts, run, box))
    if len(choices) == 1:
        return first
    kept, agreement, flagged = medoid([c.kernel for c in choices], config)
    best = choices[kept]
    best.facts["agree_windows"] = {
        "boxes": [list(map(int, c.box)) for c in choices],
        "agreement": [round(a, 4) for a in agreement],
        "flagged": flagged,
        "kept": kept,
    }
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
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> tuple[api.DeblurResult, tuple[int, int, int, int], np.ndarray]:
    """Blind estimate on ``[H, W, 1]``: the result (its images cover the estimation window,
    at full resolution), the window's box and the final kernel. ``checkpoint_dir`` (with
    ``config.checkpoint_every > 0``) lets a stopped network run resume (``api.deblur``);
    ``spec``, ``step``: the research hooks of every network run."""
    api.check_config(config)
    luminance = api.check_image(luminance, "luminance image")
    p = plan(luminance.shape, config)
    hooks = dict(spec=spec, step=step)
    region, box = estimation_region(luminance, config, p=p)
    result = progressive.network_run(
        luminance,
        config,
        p=p,
        region=region,
        box=box,
        key=key,
        checkpoint_dir=checkpoint_dir,
        **hooks,
    )
    kernel, _, result, box = choose_estimate(
        result, region, config, luminance, p=p, box=box, key=key, **hooks
    )
    return _full_resolution(result, box[2:]), box, kernel


def two_stage_from_run(
    blurry: np.ndarray,
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    p: Plan,
    box: tuple[int, int, int, int],
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> Outputs:
    """The two-stage result from a network run: final kernel, then non-blind deconvolution
    (``nonblind.final_deconv``) of every channel of ``blurry [H, W, C]``.

    ``result`` is the network run on ``region`` (``region, box = estimation_region(...)``,
    trained with :func:`network_config`); ``p``: the plan of ``blurry``'s luminance; ``key``
    seeds any further network run (:func:`choose_estimate`; default
    ``jax.random.key(config.seed)``), which gets the hooks ``spec`` and ``step``."""
    luminance = colour.luminance(blurry)
    kernel, facts, result, box = choose_estimate(
        result, region, config, luminance, p=p, box=box, key=key, spec=spec, step=step
    )
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


# An image whose brightest value is below this is brightened to a maximum of 1 for the
# estimate and the deconvolution, and the outputs are scaled back (blur is linear, so this
# changes nothing but the priors' footing: a 16-bit image using 60 of 65535 levels would
# otherwise look flat to them).
DARK_MAX = 1.0 / 16.0


def exposure_gain(blurry: np.ndarray) -> float:
    """The factor a dark image is brightened by (1 unless its maximum is under DARK_MAX)."""
    top = float(np.max(blurry))
    return 1.0 if top >= DARK_MAX or top <= 0.0 else 1.0 / top


def brightened(blurry: np.ndarray) -> tuple[np.ndarray, float]:
    """``(blurry * gain, gain)`` with ``gain = exposure_gain(blurry)``: what the estimate and
    the deconvolution work on; :func:`scaled_outputs` by ``1 / gain`` scales their outputs
    back."""
    gain = exposure_gain(blurry)
    return blurry * np.float32(gain), gain


def scaled_outputs(outputs: Outputs, factor: float) -> Outputs:
    """``outputs`` with its images and uncertainty multiplied by ``factor`` (kernel kept)."""
    if factor == 1.0:
        return outputs
    return dataclasses.replace(
        outputs,
        deblurred=outputs.deblurred * factor,
        network=outputs.network * factor,
        uncertainty=outputs.uncertainty * factor,
    )


def deblur_image(
    blurry: np.ndarray,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    spec: train.SpecArgument = None,
    step: Callable | None = None,
) -> Outputs:
    """Blind deblurring of ``[H, W, C]`` in [0, 1]: kernel on luminance, then every channel.
    A dark image (maximum under ``DARK_MAX``) is worked on brightened (:func:`brightened`).

    ``spec``, ``step``: the research hooks of ``jaxdeconv.run.api.deblur`` for every network
    run of the image; ``spec`` as a builder ``spec(config, shape) -> RunSpec`` (each run gets
    its own config and shape: the network works on the estimation window, at the working
    scale) or as a ``RunSpec`` built for the one run's shape.

    Raises ``ValueError`` for a bad image or config, as ``jaxdeconv.deblur`` does
    (``api.check_image``)."""
    api.check_config(config)
    blurry = api.check_image(blurry)
    blurry, gain = brightened(blurry)
    luminance = colour.luminance(blurry)
    p = plan(luminance.shape, config)
    hooks = dict(spec=spec, step=step)
    region, box = estimation_region(luminance, config, p=p)
    result = progressive.network_run(
        luminance, config, p=p, region=region, box=box, key=key, **hooks
    )
    outputs = two_stage_from_run(blurry, result, region, config, p=p, box=box, key=key, **hooks)
    return scaled_outputs(outputs, 1.0 / gain)


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
