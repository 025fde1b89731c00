"""Image and kernel quality metrics, computed the way the deblurring literature does.

Conventions:

* Images are float arrays in [0, 1], grey ``[H, W]`` or ``[H, W, 1]``. A colour image
  ``[H, W, 3]`` is reduced to its luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (full range,
  the definition used by the Lai ``blurry_y`` files) before it is compared, so colour results are
  always scored on luminance. Both images of a pair must use the same representation.
* PSNR uses peak 255 on images scaled to 0..255, that is ``10 log10(1 / MSE)`` on [0, 1] images.
* SSIM is Z. Wang's ``ssim.m`` (the version with automatic down-sampling): 11x11 Gaussian window
  with sigma 1.5, K = (0.01, 0.03), L = 255, statistics on the 'valid' region only, and for large
  images a down-sampling by ``f = max(1, round(min(H, W) / 256))`` (an f x f box average with
  symmetric borders, then every f-th pixel).
* Published Lai tables (SelfDeblur's ``statistic_lai.m``, which the paper and its peers report)
  score on the luma of MATLAB's ``rgb2ycbcr``, the **studio** range 16..235 of 255:
  ``16/255 + 219/255 Y`` (:func:`studio_luma`), for the ground truth and for the result alike.
  That affine map shrinks every difference by 219/255, so the same images score
  ``20 log10(255/219) = 1.32`` dB higher in PSNR than on full-range luma (SSIM moves a little).
* :func:`aligned_psnr_ssim` is Levin et al.'s ``comp_upto_shift`` protocol: a ``crop`` pixel
  border is removed from the reference, and the estimate is re-sampled with bilinear
  interpolation at every shift ``(dy, dx)`` of a grid over ``[-max_shift, max_shift]^2``; the
  shift with the smallest sum of squared differences (SSD) wins. The shift convention is

      aligned[r, c] = estimate[crop + r + dy, crop + c + dx]

  so a positive ``dy`` means the estimate's content sits ``dy`` pixels lower than the
  reference's.

Everything here runs on the host in NumPy/SciPy float64 (metrics are evaluated once per image,
outside any traced code). The shift search evaluates the SSD of all grid shifts in closed form
(see :func:`_shift_ssd_grid`), so a 255x255 image takes a few tens of milliseconds instead of
the 6561 image interpolations of a literal implementation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import scipy.signal
from numpy.typing import ArrayLike

from jaxdeconv.classical import colour
from jaxdeconv.classical.diagnose import kernel_similarity  # noqa: F401 (one definition)

# Z. Wang's ssim.m defaults.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_L = 255.0


# MATLAB rgb2ycbcr's luma range: 16..235 of 255.
_STUDIO_OFFSET = 16.0 / 255.0
_STUDIO_SCALE = 219.0 / 255.0


def studio_luma(img: ArrayLike) -> np.ndarray:
    """The luma of MATLAB's ``rgb2ycbcr`` for a [0, 1] image: ``16/255 + 219/255 Y``.

    ``img`` is a full-range luminance ``[H, W]``/``[H, W, 1]`` (as Lai's ``blurry_y`` files and
    our estimates on them) or an RGB ``[H, W, 3]`` image (reduced to full-range Y first); the
    result is ``[H, W]`` float64. Published Lai scores are computed on this scale.
    """
    return _STUDIO_OFFSET + _STUDIO_SCALE * _as_gray(img, "image")


def _as_gray(img: ArrayLike, name: str) -> np.ndarray:
    """Returns a float64 ``[H, W]`` view of a grey ``[H, W]``/``[H, W, 1]`` or RGB image."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[-1] == 3:
        a = colour.luminance(a)[..., 0]
    elif a.ndim != 2:
        raise ValueError(f"{name} must be [H, W], [H, W, 1] or [H, W, 3], got shape {a.shape}")
    return a


def _as_pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a2, b2 = _as_gray(a, "first image"), _as_gray(b, "second image")
    if a2.shape != b2.shape:
        raise ValueError(f"image shapes differ: {a2.shape} vs {b2.shape}")
    return a2, b2


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def psnr(a: ArrayLike, b: ArrayLike) -> float:
    """PSNR in dB of two [0, 1] images, no alignment: ``10 log10(1 / MSE)``.

    This equals PSNR with peak 255 on the 0..255-scaled images.

    Args:
      a, b: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` (compared on luminance).

    Returns:
      PSNR in dB (``inf`` for identical images).
    """
    a2, b2 = _as_pair(a, b)
    return _psnr_from_mse(float(np.mean((a2 - b2) ** 2)))


def _gaussian_window_1d() -> np.ndarray:
    r = np.arange(_SSIM_WINDOW) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(r**2) / (2.0 * _SSIM_SIGMA**2))
    return g / g.sum()


def _valid_filter(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation with a symmetric 1-D window, 'valid' output only."""
    r = (len(g) - 1) // 2
    out = scipy.ndimage.correlate1d(img, g, axis=0, mode="constant")
    out = scipy.ndimage.correlate1d(out, g, axis=1, mode="constant")
    return out[r : img.shape[0] - r, r : img.shape[1] - r]


def _box_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """f x f mean filter as MATLAB ``imfilter(.., 'symmetric', 'same')`` places it, then every
    f-th pixel from the first one.

    MATLAB puts the origin of an even-sized filter at index ``ceil(f / 2)`` (1-based), so the
    window covering output pixel i spans ``[i - (ceil(f/2) - 1), i + f - ceil(f/2)]``.
    """
    before = (f + 1) // 2 - 1
    after = f - 1 - before
    p = np.pad(img, ((before, after), (before, after)), mode="symmetric")
    c = np.cumsum(np.cumsum(p, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = img.shape
    box = c[f : f + h, f : f + w] - c[:h, f : f + w] - c[f : f + h, :w] + c[:h, :w]
    return (box / (f * f))[::f, ::f]


def _ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's SSIM of two float64 ``[H, W]`` images already scaled to 0..255."""
    h, w = a.shape
    f = max(1, int(np.floor(min(h, w) / 256.0 + 0.5)))  # MATLAB round: half away from zero
    if f > 1:
        a, b = _box_downsample(a, f), _box_downsample(b, f)
    if min(a.shape) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, got {a.shape}")
    g = _gaussian_window_1d()
    c1 = (_SSIM_K1 * _SSIM_L) ** 2
    c2 = (_SSIM_K2 * _SSIM_L) ** 2
    mu_a, mu_b = _valid_filter(a, g), _valid_filter(b, g)
    var_a = _valid_filter(a * a, g) - mu_a**2
    var_b = _valid_filter(b * b, g) - mu_b**2
    cov = _valid_filter(a * b, g) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(a: ArrayLike, b: ArrayLike) -> float:
    """Z. Wang's SSIM (``ssim.m`` with automatic down-sampling) of two [0, 1] images.

    The images are scaled to 0..255 and compared with L = 255, as the benchmark scripts do.

    Args:
      a, b: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` (compared on luminance), at least 11
        pixels on each side after down-sampling.

    Returns:
      Mean SSIM over the 'valid' region.
    """
    a2, b2 = _as_pair(a, b)
    return _ssim_gray(255.0 * a2, 255.0 * b2)


def _shift_grid(max_shift: float, step: float) -> np.ndarray:
    n = int(np.floor(2.0 * max_shift / step + 1e-9)) + 1
    return -max_shift + step * np.arange(n)


def _box_sums(p: np.ndarray, offsets: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of ``p`` over the h x w windows whose top-left corners are ``offsets x offsets``."""
    c = np.pad(np.cumsum(np.cumsum(p, axis=0), axis=1), ((1, 0), (1, 0)))
    r0 = offsets[:, None]
    c0 = offsets[None, :]
    return c[r0 + h, c0 + w] - c[r0, c0 + w] - c[r0 + h, c0] + c[r0, c0]


def _shift_ssd_grid(est: np.ndarray, ref: np.ndarray, crop: int, shifts: np.ndarray) -> np.ndarray:
    """SSD between the cropped reference and the bilinearly shifted estimate, for every shift.

    For a shift ``s = a + t`` (integer part ``a``, fraction ``t``) in each axis, the shifted
    estimate is a weighted sum of the four integer-shifted windows ``E(a + i, b + j)``,
    ``i, j in {0, 1}``, with weights ``(1 - t_y or t_y) * (1 - t_x or t_x)``. Its SSD to the
    reference ``R`` is therefore a quadratic form in those weights whose coefficients are the
    inner products ``<E(p), E(q)>`` and ``<E(p), R>``. Window inner products between neighbouring
    integer shifts are box sums of products of the estimate with a shifted copy of itself
    (summed-area tables), and ``<E(p), R>`` for all integer shifts is one 'valid'
    cross-correlation. All float64.

    Args:
      est: estimate ``[H, W]``.
      ref: cropped reference ``[h, w]`` with ``h = H - 2 crop``, ``w = W - 2 crop``.
      crop: border removed from the reference.
      shifts: the 1-D shift grid (same for both axes).

    Returns:
      ``[len(shifts), len(shifts)]`` SSD, indexed ``[dy index, dx index]``.
    """
    h, w = ref.shape
    base = np.floor(shifts).astype(int)
    frac = shifts - base
    lo, hi = int(base.min()), int(base.max()) + 1  # integer offsets needed (hi inclusive)
    # Two extra rows and columns (edge copies) so that every window the tables need exists,
    # including the neighbours of offset hi; those enter the SSD only with weight zero.
    e = np.pad(est, ((0, 2), (0, 2)), mode="edge")
    offs = crop + np.arange(lo, hi + 1)
    # Region of e spanned by all integer-shift windows.
    region = e[crop + lo : crop + hi + h, crop + lo : crop + hi + w]
    corr = scipy.signal.correlate(region, ref, mode="valid", method="fft")  # <E(a, b), R>
    s00 = _box_sums(e * e, offs, h, w)
    sx = np.zeros_like(e)
    sx[:, :-1] = e[:, :-1] * e[:, 1:]
    sx = _box_sums(sx, offs, h, w)  # <E(a, b), E(a, b + 1)>
    sy = np.zeros_like(e)
    sy[:-1] = e[:-1] * e[1:]
    sy = _box_sums(sy, offs, h, w)  # <E(a, b), E(a + 1, b)>
    sd = np.zeros_like(e)
    sd[:-1, :-1] = e[:-1, :-1] * e[1:, 1:]
    sd = _box_sums(sd, offs, h, w)  # <E(a, b), E(a + 1, b + 1)>
    sa = np.zeros_like(e)
    sa[:-1, :-1] = e[:-1, 1:] * e[1:, :-1]
    sa = _box_sums(sa, offs, h, w)  # <E(a, b + 1), E(a + 1, b)>

    ia = base - lo  # index of the integer part in the tables, per grid shift
    y0, y1 = (1.0 - frac)[:, None], frac[:, None]  # weights along dy (rows of the result)
    x0, x1 = (1.0 - frac)[None, :], frac[None, :]  # weights along dx (columns)
    iy, ix = ia[:, None], ia[None, :]

    def at(t: np.ndarray, di: int, dj: int) -> np.ndarray:
        return t[iy + di, ix + dj]

    # ||row-offset-0 half||^2, ||row-offset-1 half||^2 and their inner product.
    row0 = x0**2 * at(s00, 0, 0) + x1**2 * at(s00, 0, 1) + 2 * x0 * x1 * at(sx, 0, 0)
    row1 = x0**2 * at(s00, 1, 0) + x1**2 * at(s00, 1, 1) + 2 * x0 * x1 * at(sx, 1, 0)
    rows01 = x0**2 * at(sy, 0, 0) + x1**2 * at(sy, 0, 1) + x0 * x1 * (at(sd, 0, 0) + at(sa, 0, 0))
    quad = y0**2 * row0 + y1**2 * row1 + 2 * y0 * y1 * rows01
    lin = (
        y0 * x0 * at(corr, 0, 0)
        + y0 * x1 * at(corr, 0, 1)
        + y1 * x0 * at(corr, 1, 0)
        + y1 * x1 * at(corr, 1, 1)
    )
    return quad - 2.0 * lin + float(np.sum(ref * ref))


def _bilinear_window(est: np.ndarray, crop: int, h: int, w: int, dy: float, dx: float):
    """``out[r, c] = est[crop + r + dy, crop + c + dx]`` with bilinear interpolation."""
    e = np.pad(est, ((0, 1), (0, 1)), mode="edge")
    ay, ax = int(np.floor(dy)), int(np.floor(dx))
    ty, tx = dy - ay, dx - ax
    r0, c0 = crop + ay, crop + ax

    def win(i: int, j: int) -> np.ndarray:
        return e[r0 + i : r0 + i + h, c0 + j : c0 + j + w]

    return (1 - ty) * ((1 - tx) * win(0, 0) + tx * win(0, 1)) + ty * (
        (1 - tx) * win(1, 0) + tx * win(1, 1)
    )


def _align(
    estimate: ArrayLike, reference: ArrayLike, max_shift: float, step: float, crop: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:
    est, ref = _as_pair(estimate, reference)
    if step <= 0 or max_shift < 0:
        raise ValueError(f"need step > 0 and max_shift >= 0, got {step}, {max_shift}")
    if np.ceil(max_shift) > crop:
        raise ValueError(f"max_shift ({max_shift}) must not exceed crop ({crop})")
    h, w = ref.shape[0] - 2 * crop, ref.shape[1] - 2 * crop
    if h < 1 or w < 1:
        raise ValueError(f"crop {crop} leaves nothing of a {ref.shape} image")
    ref_c = ref[crop : crop + h, crop : crop + w]
    shifts = _shift_grid(max_shift, step)
    ssd = _shift_ssd_grid(est, ref_c, crop, shifts)
    iy, ix = np.unravel_index(int(np.argmin(ssd)), ssd.shape)
    dy, dx = float(shifts[iy]), float(shifts[ix])
    aligned = _bilinear_window(est, crop, h, w, dy, dx)
    ssd_best = float(np.sum((aligned - ref_c) ** 2))  # exact, not from the quadratic form
    return aligned, ref_c, (dy, dx), ssd_best


def aligned_psnr_ssim(
    estimate: ArrayLike,
    reference: ArrayLike,
    *,
    max_shift: float = 10,
    step: float = 0.25,
    crop: int = 15,
) -> dict:
    """PSNR and SSIM after the best sub-pixel shift (Levin et al.'s ``comp_upto_shift``).

    Args:
      estimate: deblurred image ``[H, W]`` / ``[H, W, 1]`` (or ``[H, W, 3]``: luminance) in
        [0, 1], same size as ``reference``.
      reference: ground truth, same shape.
      max_shift: largest shift searched in each axis (pixels); must not exceed ``crop``.
      step: shift grid step (pixels).
      crop: border removed from the reference before comparing.

    Returns:
      ``dict(psnr=float, ssim=float, shift=(dy, dx), aligned=[H - 2 crop, W - 2 crop] float64,
      ssd=float)``, where ``aligned`` is the shifted estimate (see the module docstring for the
      shift convention) and ``ssd`` its sum of squared differences to the cropped reference on
      the [0, 1] scale.
    """
    aligned, ref_c, shift, ssd_best = _align(estimate, reference, max_shift, step, crop)
    return dict(
        psnr=_psnr_from_mse(ssd_best / ref_c.size),
        ssim=_ssim_gray(255.0 * aligned, 255.0 * ref_c),
        shift=shift,
        aligned=aligned,
        ssd=ssd_best,
    )


def error_ratio(
    estimate: ArrayLike,
    truekernel_estimate: ArrayLike,
    reference: ArrayLike,
    *,
    max_shift: float = 10,
    step: float = 0.25,
    crop: int = 15,
) -> float:
    """Levin et al.'s error ratio ``||x_est - x||^2 / ||x_gtk - x||^2``.

    Both squared errors are the SSD after each image's own best shift, found with the same
    protocol as :func:`aligned_psnr_ssim`. ``x_gtk`` is the result of the same non-blind method
    run with the true kernel.

    Args:
      estimate: result with the estimated kernel, ``[H, W]`` / ``[H, W, 1]``.
      truekernel_estimate: result with the true kernel, same shape.
      reference: ground truth, same shape.
      max_shift, step, crop: as in :func:`aligned_psnr_ssim`.

    Returns:
      The ratio (1 when both estimates are equal; ``inf`` if the true-kernel result is exact and
      the estimate is not).
    """
    _, _, _, ssd_est = _align(estimate, reference, max_shift, step, crop)
    _, _, _, ssd_gtk = _align(truekernel_estimate, reference, max_shift, step, crop)
    if ssd_gtk == 0:
        return 1.0 if ssd_est == 0 else float("inf")
    return ssd_est / ssd_gtk


def success_rates(ratios: ArrayLike, thresholds: Sequence[float] = (2, 3)) -> dict[float, float]:
    """Fraction of images whose error ratio is strictly below each threshold.

    Args:
      ratios: 1-D error ratios, one per image.
      thresholds: thresholds to report (Levin et al. use 2 and 3).

    Returns:
      ``{threshold: fraction}`` with fractions in [0, 1].
    """
    r = np.asarray(ratios, dtype=np.float64).ravel()
    if r.size == 0:
        raise ValueError("success_rates needs at least one ratio")
    return {float(t): float(np.mean(r < t)) for t in thresholds}
