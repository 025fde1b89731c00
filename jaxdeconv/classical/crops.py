"""Choosing where to estimate the kernel on a large image (host-side NumPy).

The blur kernel is shared by the whole image, so it can be estimated on a crop; the most
textured crop (largest total gradient magnitude, the paper's own suggestion for large images)
carries the most information about it. The non-blind step then uses the kernel on the whole
image. Cost per training step grows with the crop's area.
"""

from __future__ import annotations

import numpy as np

from jaxdeconv.core import blur

SELECTIONS = ("gradient", "structure")


def _window_sums(maps, size: int, shape: tuple[int, int], stride: int):
    """Sums of each ``[H, W]`` map over every candidate ``size`` window; and the candidates."""
    h, w = shape
    ch, cw = min(size, h), min(size, w)
    tops = sorted(set(range(0, h - ch + 1, stride)) | {h - ch})
    lefts = sorted(set(range(0, w - cw + 1, stride)) | {w - cw})
    t = np.asarray(tops)[:, None]
    l = np.asarray(lefts)[None, :]  # noqa: E741
    sums = []
    for m in maps:
        a = np.pad(m.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sums.append(a[t + ch, l + cw] - a[t, l + cw] - a[t + ch, l] + a[t, l])
    return sums, tops, lefts, ch, cw


def most_textured_crop(
    image: np.ndarray,
    size: int,
    stride: int = 8,
    *,
    select: str = "gradient",
    sigma: float = 1.5,
) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the best ``size x size`` window.

    Args:
      image: ``[H, W, C]`` or ``[H, W]``.
      size: side of the window; clipped to the image's sides.
      stride: step between candidate windows (the last row/column is always a candidate).
      select: ``'gradient'``: the most total gradient magnitude (the paper's "most textured");
        ``'structure'``: the largest smaller eigenvalue of the window's structure tensor (the
        summed outer products of the gradients) of the image smoothed by a Gaussian of
        ``sigma`` pixels, i.e. strong edges in every direction: a window of parallel bars (a
        fence) or of fine texture the smoothing flattens (foliage) scores low.
    """
    score, tops, lefts, ch, cw = window_scores(image, size, stride, select=select, sigma=sigma)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(tops[i]), int(lefts[j]), ch, cw


def window_scores(
    image: np.ndarray, size: int, stride: int = 8, *, select: str = "gradient", sigma: float = 1.5
):
    """Every candidate ``size`` window's score (``[len(tops), len(lefts)]``, higher is more
    textured by ``select``, as :func:`most_textured_crop` ranks them), the candidates' tops and
    lefts, and the window's height and width."""
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    img = np.asarray(image, np.float64)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    if select == "structure":
        img = blur.gaussian_filter_numpy(img, sigma)
    gx, gy = np.zeros_like(img), np.zeros_like(img)
    gx[:, :-1] = np.diff(img, axis=1)
    gy[:-1, :] = np.diff(img, axis=0)
    if select == "gradient":
        (score,), tops, lefts, ch, cw = _window_sums(
            [np.abs(gx) + np.abs(gy)], size, img.shape, stride
        )
    else:
        (a, b, c), tops, lefts, ch, cw = _window_sums(
            [gx * gx, gy * gy, gx * gy], size, img.shape, stride
        )
        score = (a + b) / 2 - np.sqrt(((a - b) / 2) ** 2 + c**2)
    return score, tops, lefts, ch, cw


def textured_windows(
    image: np.ndarray,
    size: int,
    count: int,
    stride: int = 8,
    *,
    max_overlap: float = 0.25,
    select: str = "gradient",
    sigma: float = 1.5,
) -> list[tuple[int, int, int, int]]:
    """Up to ``count`` boxes ``(top, left, h, w)`` of ``size`` windows, the most textured
    first (the first is :func:`most_textured_crop`'s), each next one the most textured whose
    overlap with every box already taken is at most ``max_overlap`` of a window's area (0:
    disjoint). Fewer when the image has no room for more."""
    score, tops, lefts, ch, cw = window_scores(image, size, stride, select=select, sigma=sigma)
    t = np.asarray(tops)[:, None]
    l = np.asarray(lefts)[None, :]  # noqa: E741
    allowed = np.ones(score.shape, bool)
    boxes = []
    for _ in range(int(count)):
        if not allowed.any():
            break
        i, j = np.unravel_index(int(np.argmax(np.where(allowed, score, -np.inf))), score.shape)
        top, left = int(tops[i]), int(lefts[j])
        boxes.append((top, left, ch, cw))
        rows = np.clip(np.minimum(t + ch, top + ch) - np.maximum(t, top), 0, None)
        cols = np.clip(np.minimum(l + cw, left + cw) - np.maximum(l, left), 0, None)
        allowed &= rows * cols <= max_overlap * ch * cw
    return boxes


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, h, w = box
    return image[top : top + h, left : left + w]


def textured_window(
    image: np.ndarray, size: int, **select
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The most textured ``size x size`` window of ``image`` and its box, or the whole image
    (box ``(0, 0, H, W)``) when ``size`` is 0 or not smaller than the image's longer side.
    ``select``: :func:`most_textured_crop`'s ``select`` and ``sigma``."""
    h, w = image.shape[:2]
    box = (0, 0, h, w)
    if window_shape((h, w), size) != (h, w):
        box = most_textured_crop(image, size, **select)
    return crop(image, box), box


def window_shape(hw: tuple[int, int], size: int) -> tuple[int, int]:
    """``(h, w)`` of :func:`textured_window`'s window on an image of ``hw``: the whole image
    when ``size`` is 0 or not smaller than its longer side, else ``size`` clipped to each side."""
    h, w = hw
    if size and size < max(h, w):
        return min(size, h), min(size, w)
    return h, w
