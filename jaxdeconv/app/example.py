"""The built-in example: a street-like scene shaken by a camera-shake kernel, with 1% noise.

``make(size, kernel_size, noise, seed)`` returns an :class:`Example` made with the library's
forward model (the valid correlation of :mod:`jaxdeconv.core.blur`, NumPy implementation, of a
``[size + K - 1]^2`` scene, Gaussian noise, clipped to [0, 1]). The scene has what a photo of a
street has and what blind deblurring needs: sky, buildings with rows of windows (edges in both
directions), a sign with dark lettering, thin poles, a bright lamp and a textured road; the
kernel is a random camera-shake path (:func:`jaxdeconv.classical.shake.shake_kernel`) spanning
the whole ``K x K`` window. Nothing here comes from the benchmark layer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxdeconv.classical import shake
from jaxdeconv.core import blur


class Example(NamedTuple):
    """A synthetic blurry image with the truth that made it (host NumPy arrays)."""

    blurry: np.ndarray  # [H, W, 1]
    sharp: np.ndarray  # [H, W, 1], the centre of the scene that made ``blurry``
    kernel: np.ndarray  # [K, K], correlation kernel
    sharp_big: np.ndarray  # [H + K - 1, W + K - 1, 1]


def street_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A street-like grey scene ``[H, W]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    horizon = rng.uniform(0.55, 0.7) * height
    img = np.where(yy < horizon, 0.75 - 0.25 * yy / horizon, 0.3)
    x = 0.0
    while x < width:  # buildings along the horizon, each with a grid of windows
        w = rng.uniform(0.12, 0.3) * width
        top = rng.uniform(0.1, 0.45) * height
        value = rng.uniform(0.15, 0.55)
        body = (xx >= x) & (xx < x + w) & (yy >= top) & (yy < horizon)
        img = np.where(body, value, img)
        step_y, step_x = rng.uniform(5, 9), rng.uniform(5, 9)
        win = body & ((yy - top) % step_y > step_y * 0.45) & ((xx - x) % step_x > step_x * 0.5)
        win &= (yy - top > 3) & (x + w - xx > 2) & (xx - x > 2)
        img = np.where(win, np.clip(value + rng.choice([-0.12, 0.35]), 0, 1), img)
        x += w + rng.uniform(0, 0.05) * width
    # A light sign with dark strokes like lettering.
    sy, sx = rng.uniform(0.65, 0.75) * height, rng.uniform(0.1, 0.5) * width
    sh, sw = 0.14 * height, 0.4 * width
    sign = (yy >= sy) & (yy < sy + sh) & (xx >= sx) & (xx < sx + sw)
    img = np.where(sign, 0.9, img)
    for i in range(int(sw // 6) - 1):
        gx = sx + 3 + 6 * i
        for _ in range(2):
            if rng.random() < 0.8:
                vertical = rng.random() < 0.5
                y0 = sy + rng.uniform(2, sh * 0.4)
                dx = np.abs(xx - gx - (rng.uniform(0, 3) if vertical else 2))
                dy = np.abs(yy - y0 - (sh * 0.25 if vertical else 0))
                stroke = (dx < (0.8 if vertical else 2.2)) & (dy < (sh * 0.28 if vertical else 0.8))
                img = np.where(sign & stroke, 0.08, img)
    for _ in range(2):  # poles
        px = rng.uniform(0, width)
        pole = (np.abs(xx - px) < 1.2) & (yy > rng.uniform(0.2, 0.4) * height)
        img = np.where(pole, 0.05, img)
    cy, cx, r = rng.uniform(0.1, 0.3) * height, rng.uniform(0.6, 0.9) * width, 0.06 * height
    img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 0.97, img)  # a lamp
    texture = blur.gaussian_smooth_numpy(rng.normal(size=(height, width)), 2.0)
    road = (yy >= horizon) & ~sign
    img = np.where(road, img + 0.15 * texture / (np.abs(texture).max() + 1e-9), img)
    return np.clip(blur.gaussian_smooth_numpy(img, 0.6), 0.0, 1.0).astype(np.float32)


def make(size: int = 128, kernel_size: int = 15, noise: float = 0.01, seed: int = 0) -> Example:
    """The example: ``street_scene`` blurred by ``shake_kernel(kernel_size)`` plus noise."""
    kernel = shake.shake_kernel(kernel_size, seed=seed + 1)
    big = street_scene(size + kernel_size - 1, size + kernel_size - 1, seed=seed)
    rng = np.random.default_rng(seed + 2)
    blurry = blur.valid_correlate_numpy(big, kernel) + noise * rng.normal(size=(size, size))
    m = (kernel_size - 1) // 2
    return Example(
        blurry=np.clip(blurry, 0, 1).astype(np.float32)[..., None],
        sharp=big[m : m + size, m : m + size][..., None].astype(np.float32),
        kernel=kernel,
        sharp_big=big[..., None],
    )
