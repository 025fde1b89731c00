"""Random camera-shake kernels for synthetic data (host-side NumPy, seeded).

A kernel is a smooth random camera path (:func:`shake_path`) rasterised on a ``[K, K]`` window:
splatted bilinearly, smoothed (:func:`jaxdeconv.core.blur.gaussian_smooth_numpy`), faint taps
cut, centred and normalised. Kernels are *correlation* kernels (as everywhere in jaxdeconv),
float32, non-negative and summing to one. Used by the built-in example
(:mod:`jaxdeconv.app.example`) and the benchmark's synthetic suite
(:mod:`jaxdeconv.bench.synthetic`); the same seed gives the same kernel.
"""

from __future__ import annotations

import numpy as np

from jaxdeconv.core import blur

# Taps below this fraction of the kernel's largest tap are set to zero, so that the support
# (and whether it touches the window's border) is well defined.
SUPPORT_THRESHOLD = 0.01


def not_a_knot_spline(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The cubic spline through ``values [n, d]`` at the knots ``0 .. n-1`` (n >= 4), with
    not-a-knot ends (one cubic over the first two and over the last two intervals), evaluated
    at ``t [m]`` in ``[0, n - 1]``: ``[m, d]``."""
    y = np.asarray(values, np.float64)
    n = y.shape[0]
    if n < 4:
        raise ValueError(f"a not-a-knot spline needs at least 4 knots, got {n}")
    # Second derivatives M at the knots (unit spacing): M[i-1] + 4 M[i] + M[i+1] =
    # 6 (y[i+1] - 2 y[i] + y[i-1]) inside; a continuous third derivative at knots 1 and n-2
    # (M[0] - 2 M[1] + M[2] = 0, and at the other end) closes the system.
    a = np.zeros((n, n))
    rhs = np.zeros_like(y)
    a[0, :3] = (1.0, -2.0, 1.0)
    a[-1, -3:] = (1.0, -2.0, 1.0)
    for i in range(1, n - 1):
        a[i, i - 1 : i + 2] = (1.0, 4.0, 1.0)
        rhs[i] = 6.0 * (y[i + 1] - 2.0 * y[i] + y[i - 1])
    m = np.linalg.solve(a, rhs)
    t = np.asarray(t, np.float64)
    i = np.clip(np.floor(t).astype(int), 0, n - 2)
    u = (t - i)[:, None]
    v = 1.0 - u
    return v * y[i] + u * y[i + 1] + ((v**3 - v) * m[i] + (u**3 - u) * m[i + 1]) / 6.0


def shake_path(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A smooth random camera path ``[samples, 2]`` (arbitrary scale), sampled uniformly in time.

    Control points follow a random walk with momentum and random acceleration (occasional
    larger jerks, a weak pull back towards the start so the path stays compact); a cubic spline
    through them gives the continuous path. Sampling uniformly in *time* makes the path's slow
    stretches brighter once rasterised, as a real exposure does.
    """
    n_ctrl = int(rng.integers(6, 13))
    pos = np.zeros((n_ctrl, 2))
    vel = rng.normal(size=2)
    for i in range(1, n_ctrl):
        acc = 0.6 * rng.normal(size=2)
        if rng.random() < 0.25:  # a jerk
            acc += 2.0 * rng.normal(size=2)
        vel = 0.8 * vel + acc - 0.05 * pos[i - 1]
        pos[i] = pos[i - 1] + vel
    return not_a_knot_spline(pos, np.linspace(0.0, n_ctrl - 1.0, samples))


def splat(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear splatting of equally weighted points ``[n, 2]`` onto a grid of ``shape``."""
    k = np.zeros(shape)
    y0 = np.floor(points[:, 0]).astype(int)
    x0 = np.floor(points[:, 1]).astype(int)
    fy, fx = points[:, 0] - y0, points[:, 1] - x0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
            np.add.at(k, (yy[ok], xx[ok]), (wy * wx)[ok])
    return k


def _raster(path: np.ndarray, extent: float) -> np.ndarray:
    """The path scaled so its longer side spans ``extent`` px, splatted, smoothed, thresholded
    and cropped to its bounding box."""
    lo = path.min(axis=0)
    span = max(float((path.max(axis=0) - lo).max()), 1e-9)
    pts = (path - lo) * (extent / span) + 3.0
    side = int(np.ceil(extent)) + 8
    k = blur.gaussian_smooth_numpy(splat(pts, (side, side)), 0.5)
    k[k < SUPPORT_THRESHOLD * k.max()] = 0.0
    rows, cols = np.nonzero(k.any(axis=1))[0], np.nonzero(k.any(axis=0))[0]
    return k[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def shake_kernel(size: int, blur_size: int | None = None, seed: int = 0) -> np.ndarray:
    """A random camera-shake kernel ``[size, size]`` whose blur spans ``blur_size`` px.

    The blur's bounding box has ``blur_size`` (odd) as its longer side; it is centred in the
    ``size x size`` window. So ``blur_size == size`` (the default) gives a *tight* support, the
    blur touching two opposite borders of the window, and ``blur_size < size`` a *loose* one,
    leaving an empty margin of at least ``(size - blur_size) // 2`` px on every side (what a user
    who over-estimates the kernel size gives the estimator).

    Args:
      size: odd window side K, at least 3.
      blur_size: odd side of the blur, 3 <= blur_size <= size (default: size).
      seed: the trajectory's seed.

    Returns:
      ``[size, size]`` float32 correlation kernel, non-negative, summing to one.
    """
    blur_size = size if blur_size is None else blur_size
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd integer >= 3, got {size}")
    if not (3 <= blur_size <= size and blur_size % 2 == 1):
        raise ValueError(f"blur_size must be odd, in [3, {size}], got {blur_size}")
    rng = np.random.default_rng(seed)
    path = shake_path(rng, samples=40 * blur_size)
    # The rasterised side grows with the scaled extent but not exactly one for one (splat and
    # smoothing widen it, the threshold trims faint ends): adjust the extent until it matches.
    extent = blur_size - 2.0
    k = _raster(path, extent)
    for _ in range(30):
        side = max(k.shape)
        if side == blur_size:
            break
        extent = max(0.5, extent + 0.5 * (blur_size - side))
        k = _raster(path, extent)
    # Rounding can leave the box one pixel off; trim or zero-pad the longer side to match.
    k = k[:blur_size, :blur_size]
    out = np.zeros((size, size))
    top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
    out[top : top + k.shape[0], left : left + k.shape[1]] = k
    return (out / out.sum()).astype(np.float32)
