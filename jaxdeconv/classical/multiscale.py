"""Working at a coarser scale: image down-sampling and kernel re-sampling (host-side).

A blur of ``K`` pixels on a photo becomes a blur of about ``s K`` pixels on the photo
down-sampled by ``s`` (anti-aliased), so the network can estimate a large kernel as a small one
on a small image, cheaply; the kernel is then re-sampled to the full-resolution grid and
refined there (``jaxdeconv.classical.refine``). Kernels are correlation kernels ``[K, K]``, K odd,
non-negative, summing to one, centred on the middle tap; re-sampling keeps the middle tap
fixed, so the estimate does not shift.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def odd(n: float) -> int:
    """The odd integer nearest to ``n`` (ties go up), at least 1."""
    m = int(math.floor(n))
    m = m if m % 2 else m + 1
    if m - n > 1:  # n in (m-2, m-1]: m - 2 is nearer
        m -= 2
    return max(m, 1)


def working_scale(kernel_size: int, max_kernel: int) -> float:
    """The down-sampling factor ``s <= 1`` that brings a ``kernel_size`` blur to at most
    ``max_kernel`` pixels (1 when it already is, or when ``max_kernel`` is 0)."""
    if max_kernel <= 0 or kernel_size <= max_kernel:
        return 1.0
    return float(max_kernel) / float(kernel_size)


def scaled_kernel_size(kernel_size: int, scale: float) -> int:
    """Odd side of the kernel grid at ``scale`` (at least 3 for kernels of 3 or more)."""
    if scale >= 1.0:
        return int(kernel_size)
    return max(odd(kernel_size * scale), min(3, int(kernel_size)))


def downscaled_shape(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(h, w)`` of :func:`downscale`'s output for an input of ``hw``."""
    if scale >= 1.0:
        return int(hw[0]), int(hw[1])
    return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))


def downscale(image: np.ndarray, scale: float) -> np.ndarray:
    """Anti-aliased (triangle filter) down-sampling of ``[H, W, C]`` by ``scale <= 1``."""
    img = np.asarray(image, np.float32)
    if scale >= 1.0:
        return img
    shape = downscaled_shape(img.shape[:2], scale) + img.shape[2:]
    out = jax.image.resize(jnp.asarray(img), shape, method="linear", antialias=True)
    return np.clip(np.asarray(out), 0.0, 1.0)


def resize_kernel(kernel: np.ndarray, size: int, scale: float | None = None) -> np.ndarray:
    """Re-samples ``kernel [k, k]`` onto a ``[size, size]`` grid (bilinear up, triangle
    filter down), keeping the middle taps aligned; clipped at zero, renormalised to sum one.

    Args:
      kernel: ``[k, k]``, k odd.
      size: odd side of the output grid.
      scale: ratio of the output grid's pixel density to the input's (an up-sampling by 2 is
        ``2``); default ``size / k``. A tap ``u`` pixels from the middle of the output lies
        ``u / scale`` pixels from the middle of the input.
    """
    k = np.asarray(kernel, np.float64)
    n = k.shape[0]
    if scale is None:
        scale = size / n
    u = (np.arange(size) - (size - 1) / 2) / scale + (n - 1) / 2
    # Separable triangle-filter weights: bilinear interpolation when up-sampling, a filter
    # 1/scale input pixels wide when down-sampling (so thin blur paths keep their mass).
    width = min(1.0, scale)
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(n)[None, :] - u[:, None]) * width)
    out = weights @ k @ weights.T
    out = np.maximum(out, 0.0)
    total = out.sum()
    if total <= 0:
        out = np.zeros((size, size))
        out[size // 2, size // 2] = 1.0
        return out.astype(np.float32)
    return (out / total).astype(np.float32)
