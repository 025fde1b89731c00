"""Blind failure detection for an estimated kernel (host-side NumPy; no ground truth).

Two ways a blind estimate fails that the kernel itself shows:
* collapse towards the trivial "no blur" answer: one tap holds most of the mass (the field
  counts a largest tap above 0.5 as a delta);
* a support too small for the blur, or a kernel pushed out of its grid: much of the mass piles
  up in the outermost ring of taps.
A third signal, a poor fit of the blurry image, needs the image
(:func:`jaxdeconv.classical.refine.deconv_residual`) and only ranks candidates: it cannot be
thresholded blindly, and a delta kernel fits well (the deconvolution just copies the blurry
image), which is why flagged candidates are ruled out before the residual chooses.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from jaxdeconv.classical import kernel_size
from jaxdeconv.core import blur

DELTA_PEAK = 0.5  # a largest tap above this: collapsed towards a delta
BORDER_MASS = 0.2  # more than this fraction of the mass in the outer ring: piled at the border


class Diagnosis(NamedTuple):
    peak: float  # largest tap
    border_mass: float  # fraction of the mass in the outermost ring of taps
    support: int  # longer side of the support box (kernel_size.support_box)
    delta: bool
    border: bool

    @property
    def ok(self) -> bool:
        return not (self.delta or self.border)


def border_mass(kernel: np.ndarray, width: int = 1) -> float:
    """Fraction of ``kernel [K, K]``'s mass in its outer ``width`` rows and columns."""
    k = np.asarray(kernel, np.float64)
    total = k.sum()
    if total <= 0 or k.shape[0] <= 2 * width:
        return 0.0
    inner = k[width:-width, width:-width].sum()
    return float((total - inner) / total)


def diagnose(
    kernel: np.ndarray, *, delta_peak: float = DELTA_PEAK, border_limit: float = BORDER_MASS
) -> Diagnosis:
    """Flags for ``kernel [K, K]`` (non-negative); see the module docstring."""
    k = np.asarray(kernel, np.float64)
    k = k / max(k.sum(), 1e-12)
    peak = float(k.max())
    ring = border_mass(k)
    _, _, h, w = kernel_size.support_box(k)
    return Diagnosis(
        peak=peak,
        border_mass=ring,
        support=int(max(h, w)),
        delta=peak > delta_peak,
        border=k.shape[0] >= 5 and ring > border_limit,
    )


def kernel_similarity(k_est: ArrayLike, k_true: ArrayLike) -> float:
    """Peak normalised cross-correlation of two kernels over all relative shifts.

    ``max_s <k_est, shift_s(k_true)> / (||k_est|| ||k_true||)`` with both kernels zero-padded,
    so the kernels may differ in size. It is 1 for identical kernels or shifted copies and lies
    in [0, 1] for non-negative kernels. Orientation matters: a kernel rotated by 180 degrees
    (the convolution counterpart of a correlation kernel) generally scores below 1.

    Args:
      k_est: ``[K1, K1]`` (any 2-D shape).
      k_true: ``[K2, K2]`` (any 2-D shape).

    Returns:
      The similarity (0 if either kernel is all zeros).
    """
    a = np.asarray(k_est, dtype=np.float64)
    b = np.asarray(k_true, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"kernels must be 2-D, got shapes {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    xc = blur.full_correlate_numpy(a, b)
    return float(min(xc.max() / (na * nb), 1.0))
