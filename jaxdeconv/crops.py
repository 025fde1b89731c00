"""Choosing where to estimate the kernel on a large image (host-side NumPy).

The blur kernel is shared by the whole image, so it can be estimated on a crop; the most
textured crop (largest total gradient magnitude, the paper's own suggestion for large images)
carries the most information about it. The non-blind step then uses the kernel on the whole
image. Cost per training step grows with the crop's area.
"""

from __future__ import annotations

import numpy as np


def most_textured_crop(image: np.ndarray, size: int, stride: int = 8) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the ``size x size`` window with the most gradient.

    Args:
      image: ``[H, W, C]`` or ``[H, W]``.
      size: side of the window; clipped to the image's sides.
      stride: step between candidate windows (the last row/column is always a candidate).
    """
    img = np.asarray(image, np.float64)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    h, w = img.shape
    ch, cw = min(size, h), min(size, w)
    grad = np.zeros_like(img)
    grad[:, :-1] += np.abs(np.diff(img, axis=1))
    grad[:-1, :] += np.abs(np.diff(img, axis=0))
    integral = np.pad(grad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tops = sorted(set(range(0, h - ch + 1, stride)) | {h - ch})
    lefts = sorted(set(range(0, w - cw + 1, stride)) | {w - cw})
    t = np.asarray(tops)[:, None]
    l = np.asarray(lefts)[None, :]  # noqa: E741
    sums = integral[t + ch, l + cw] - integral[t, l + cw] - integral[t + ch, l] + integral[t, l]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(tops[i]), int(lefts[j]), ch, cw


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, h, w = box
    return image[top : top + h, left : left + w]


def textured_window(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The most textured ``size x size`` window of ``image`` and its box, or the whole image
    (box ``(0, 0, H, W)``) when ``size`` is 0 or not smaller than the image's longer side."""
    h, w = image.shape[:2]
    box = (0, 0, h, w)
    if size and size < max(h, w):
        box = most_textured_crop(image, size)
    return crop(image, box), box
