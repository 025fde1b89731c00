"""Synthetic test scenes and camera-shake kernels (host-side NumPy, seeded).

Used for the built-in example and the tests, so nothing needs downloading. ``make_example``
follows the library's forward model exactly: a sharp scene of ``[H + K - 1, W + K - 1]`` is
cross-correlated ('valid') with a random motion kernel and Gaussian noise is added.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _gaussian_1d(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array with edge padding."""
    if sigma <= 0:
        return img
    g = _gaussian_1d(sigma)
    r = len(g) // 2
    out = np.pad(img, r, mode="edge")
    out = np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 0, out)
    return np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 1, out)


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A piecewise-smooth grey scene with edges, corners and some texture, ``[H, W]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = 0.35 + 0.3 * (xx / max(width - 1, 1)) * (0.5 + 0.5 * yy / max(height - 1, 1))
    scale = min(height, width)
    for _ in range(8 + scale // 8):
        kind = rng.integers(3)
        value = rng.uniform(0.05, 0.95)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        size = rng.uniform(0.08, 0.35) * scale
        if kind == 0:  # axis-aligned rectangle
            mask = (np.abs(yy - cy) < size / 2) & (np.abs(xx - cx) < size * rng.uniform(0.3, 1))
        elif kind == 1:  # disk
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 2) ** 2
        else:  # rotated bar
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            mask = (np.abs(u) < size / 2) & (np.abs(v) < max(1.5, size / 8))
        img = np.where(mask, value, img)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * 0.11 + yy * 0.07))
    patch = (yy > 0.6 * height) & (xx < 0.4 * width)
    img = np.where(patch, 0.25 + 0.5 * stripes, img)
    img = _smooth(img, 0.6)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def motion_kernel(size: int, seed: int = 0, length: float | None = None) -> np.ndarray:
    """A random camera-shake trajectory splatted on a ``[size, size]`` grid, summing to one.

    A random walk with momentum is drawn, scaled to fit the grid, centred on its mass,
    rasterised with bilinear splats and lightly smoothed.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd integer, got {size}")
    if size == 1:
        return np.ones((1, 1), np.float32)
    rng = np.random.default_rng(seed)
    n = 200
    velocity = rng.normal(size=2)
    points = np.zeros((n, 2))
    for i in range(1, n):
        velocity = 0.9 * velocity + 0.45 * rng.normal(size=2)
        points[i] = points[i - 1] + velocity
    points -= points.mean(axis=0)
    extent = np.abs(points).max()
    length = (size - 1) / 2 * 0.85 if length is None else length
    points *= length / max(extent, 1e-6)
    points += (size - 1) / 2
    k = np.zeros((size, size))
    for py, px in points:
        y0, x0 = int(np.floor(py)), int(np.floor(px))
        fy, fx = py - y0, px - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    k[y0 + dy, x0 + dx] += wy * wx
    k = _smooth(k, 0.5) if size >= 7 else k
    return (k / k.sum()).astype(np.float32)


def correlate_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """NumPy 'valid' cross-correlation ``[Hb, Wb] x [K, K] -> [Hb-K+1, Wb-K+1]``."""
    k = kernel.shape[0]
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    out = np.zeros((h, w), np.float64)
    for a in range(k):
        for b in range(k):
            out += kernel[a, b] * x[a : a + h, b : b + w]
    return out


class Example(NamedTuple):
    blurry: np.ndarray  # [H, W, 1]
    sharp: np.ndarray  # [H, W, 1], the centre of the scene that made ``blurry``
    kernel: np.ndarray  # [K, K], correlation kernel
    sharp_big: np.ndarray  # [H + K - 1, W + K - 1, 1]


def make_example(
    height: int = 128,
    width: int = 128,
    kernel_size: int = 15,
    noise: float = 0.005,
    seed: int = 0,
    kernel_length: float | None = None,
) -> Example:
    """A blurry synthetic scene made with the library's forward model.

    ``kernel_length``: half-extent of the shake in pixels (default: 85% of the kernel radius).
    """
    k = motion_kernel(kernel_size, seed=seed + 1, length=kernel_length)
    big = scene(height + kernel_size - 1, width + kernel_size - 1, seed=seed)
    rng = np.random.default_rng(seed + 2)
    blurry = correlate_valid(big, k) + noise * rng.normal(size=(height, width))
    m = (kernel_size - 1) // 2
    sharp = big[m : m + height, m : m + width]
    return Example(
        blurry=np.clip(blurry, 0, 1).astype(np.float32)[..., None],
        sharp=sharp[..., None],
        kernel=k,
        sharp_big=big[..., None],
    )
