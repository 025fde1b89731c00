"""Automatic kernel size: the support of a kernel estimated on a generous grid (host-side NumPy).

The blind estimate runs with an upper bound ``K_max`` on the blur's size (given by the user or
:func:`default_max_size`); the blur then occupies only part of the ``K_max x K_max`` grid. Its
support is the bounding box of the connected groups of taps that carry the mass (isolated weak
taps, the refit's noise, are dropped), trimmed to the taps holding ``mass`` of the total. The
size used is that box's longer side plus a margin, made odd, and the kernel is re-cut around
the box's centre (a shift of the kernel shifts the deblurred image by the same amount, which
the field's shift-aligned scores ignore and a user does not see).
"""

from __future__ import annotations

import numpy as np

from jaxdeconv.classical import multiscale

# Upper bound of the automatic search when the user gives none: large enough for Lai's 75 px
# kernels, small enough that a quarter of the image's short side still holds the blur four times.
DEFAULT_MAX_SIZE = 75


def default_max_size(shape: tuple[int, ...], cap: int = DEFAULT_MAX_SIZE) -> int:
    """``min(cap, short side / 4)``, odd, at least 5."""
    return max(5, min(multiscale.odd(cap), multiscale.odd(min(shape[:2]) / 4 - 1)))


def _components(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels of a boolean ``[K, K]`` mask (0 = background)."""
    labels = np.zeros(mask.shape, np.int32)
    current = 0
    h, w = mask.shape
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        current += 1
        labels[start] = current
        stack = [start]
        while stack:
            i, j = stack.pop()
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w and mask[a, b] and not labels[a, b]:
                        labels[a, b] = current
                        stack.append((a, b))
    return labels


def clean(kernel: np.ndarray, threshold: float = 0.02, keep: float = 0.1) -> np.ndarray:
    """``kernel`` without its isolated weak taps: taps below ``threshold * max`` are dropped,
    then every 8-connected group of the rest holding less than ``keep`` times the heaviest
    group's mass. Not renormalised."""
    k = np.asarray(kernel, np.float64)
    mask = k >= threshold * k.max()
    labels = _components(mask)
    if labels.max() == 0:
        return k
    masses = np.bincount(labels.ravel(), weights=k.ravel())
    masses[0] = 0.0
    kept = np.nonzero(masses >= keep * masses.max())[0]
    return np.where(np.isin(labels, kept), k, 0.0)


def support_box(
    kernel: np.ndarray, mass: float = 0.99, threshold: float = 0.02
) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the blur's support in ``kernel [K, K]``: the box of
    the :func:`clean` taps, trimmed on each side to the rows/columns holding ``mass`` of the
    cleaned total (a fraction ``(1 - mass) / 2`` may go from each end)."""
    k = clean(kernel, threshold)
    total = k.sum()
    if total <= 0:
        n = k.shape[0]
        return n // 2, n // 2, 1, 1
    tail = (1.0 - mass) / 2.0

    def span(profile: np.ndarray) -> tuple[int, int]:
        c = np.cumsum(profile) / total
        first = int(np.searchsorted(c, tail, side="right"))
        last = int(np.searchsorted(c, 1.0 - tail, side="left"))
        return first, min(last, len(profile) - 1)

    top, bottom = span(k.sum(axis=1))
    left, right = span(k.sum(axis=0))
    return top, left, bottom - top + 1, right - left + 1


def choose_size(
    kernel: np.ndarray,
    *,
    mass: float = 0.99,
    margin: int = 2,
    min_size: int = 5,
    threshold: float = 0.02,
) -> int:
    """Odd kernel side for the blur in ``kernel [K, K]``: the support's longer side plus
    ``margin`` taps on each side, between ``min_size`` and K."""
    _, _, h, w = support_box(kernel, mass, threshold)
    need = max(h, w) + 2 * margin
    size = need if need % 2 else need + 1
    return int(min(max(size, min_size), kernel.shape[0]))


def recentre(kernel: np.ndarray, size: int, *, mass: float = 0.99, threshold: float = 0.02):
    """The ``[size, size]`` cut of ``kernel [K, K]`` centred on its support box (zeros where
    the cut leaves the grid), renormalised to sum one."""
    k = np.asarray(kernel, np.float64)
    top, left, h, w = support_box(k, mass, threshold)
    ci, cj = top + (h - 1) // 2, left + (w - 1) // 2
    r = size // 2
    padded = np.pad(k, r)
    out = padded[ci : ci + size, cj : cj + size]
    if out.sum() <= 0:
        out = np.zeros((size, size))
        out[r, r] = 1.0
    return (out / out.sum()).astype(np.float32)


def trim(kernel: np.ndarray, **kwargs) -> tuple[np.ndarray, int]:
    """:func:`choose_size`, then :func:`recentre`: the kernel cut to its support, and the size."""
    size = choose_size(kernel, **kwargs)
    cut = {k: v for k, v in kwargs.items() if k in ("mass", "threshold")}
    return recentre(kernel, size, **cut), size
