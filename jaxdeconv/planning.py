"""Where and at what scale the network estimates the kernel of an image: the :class:`Plan`,
the estimation window and the network's config (host-side, no training).

A blur of ``K`` pixels is estimated at the working scale ``s = min(1, scale.max_kernel / K)``
on the most textured ``crop_size / s`` window of the luminance, down-sampled by ``s``
(``jaxdeconv.classical.multiscale``), so the network's kernel has at most ``scale.max_kernel`` taps.

A plan depends on the image's shape and the config only. It is made once per image, at the
door (``pipeline.deblur_image``, ``pipeline.estimate``, the folder run in ``app.batch``), and
passed on: the functions here take it as a required argument ``p`` and never make one.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from jaxdeconv import config as config_lib
from jaxdeconv.classical import crops, multiscale
from jaxdeconv.classical import kernel_size as kernel_size_lib
from jaxdeconv.core import train


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
        config_lib.check_kernel_size(k, allow_auto=True)
        bound = int(config.auto_size.max_size) or kernel_size_lib.default_max_size(shape)
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


def network_config(config: ml_collections.ConfigDict, p: Plan) -> ml_collections.ConfigDict:
    """The config the network trains with on the image planned as ``p``: ``config`` with the
    kernel side at the working scale, and an unset input-noise level resolved from the blur's
    full-resolution size (a 55 px blur estimated as 27 taps is still a large kernel)."""
    cfg = with_kernel_size(config, p.net_kernel_size)
    if cfg.noise.init is None:
        full = with_kernel_size(config, p.size or p.kernel_size)
        cfg.noise.init = train.initial_noise_std(full)
    return cfg


def estimation_region(
    luminance: np.ndarray, config: ml_collections.ConfigDict, *, p: Plan
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What the network is trained on, and its box ``(top, left, h, w)`` in ``[H, W, 1]``:
    the most textured ``crop_size / s`` window (everything when ``crop_size`` is 0 or the
    image is smaller), down-sampled by the working scale ``s``; ``p``: the image's plan
    (:func:`plan`). Made once per image and passed on with its box."""
    # 'structure' smooths by crop_sigma pixels of the working scale ('gradient' ignores it).
    window, box = crops.textured_window(
        luminance,
        p.window,
        select=window_rule(config, p),
        sigma=float(config.get("crop_sigma", 1.5)) / p.scale,
    )
    return multiscale.downscale(window, p.scale), box


def estimation_regions(
    luminance: np.ndarray, config: ml_collections.ConfigDict, count: int, *, p: Plan
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Up to ``count`` regions and boxes like :func:`estimation_region`'s, on windows that
    overlap each other by at most ``recover.max_overlap`` of their area, the most textured
    first (the first is :func:`estimation_region`'s window); one when the window is the whole
    image."""
    h, w = luminance.shape[:2]
    if crops.window_shape((h, w), p.window) == (h, w):
        return [estimation_region(luminance, config, p=p)]
    boxes = crops.textured_windows(
        luminance,
        p.window,
        count,
        max_overlap=float(config.recover.get("max_overlap", 0.25)),
        select=window_rule(config, p),
        sigma=float(config.get("crop_sigma", 1.5)) / p.scale,
    )
    return [(multiscale.downscale(crops.crop(luminance, b), p.scale), b) for b in boxes]


def window_rule(config: ml_collections.ConfigDict, p: Plan) -> str:
    """``config.crop_select``, with ``'auto'`` resolved: ``'structure'`` where the network works
    coarse-to-fine (working scale below 1), else ``'gradient'``."""
    select = str(config.get("crop_select", "gradient"))
    if select == "auto":
        return "structure" if p.scale < 1.0 else "gradient"
    return select


def region_shape(shape: tuple[int, ...], p: Plan) -> tuple[int, int]:
    """``(h, w)`` of :func:`estimation_region` for an image of ``shape`` planned as ``p``,
    without the image (so a folder can be grouped into batches before anything is decoded)."""
    return multiscale.downscaled_shape(crops.window_shape(shape[:2], p.window), p.scale)
