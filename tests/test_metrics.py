"""Tests for jaxdeconv.classical.metrics against independent references (scikit-image, brute
force)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxdeconv.classical import metrics


def _smooth_image(shape, sigma: float, seed: int) -> np.ndarray:
    img = scipy.ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return (img - img.min()) / (img.max() - img.min())


def _noisy(img: np.ndarray, std: float, seed: int) -> np.ndarray:
    noise = std * np.random.default_rng(seed).standard_normal(img.shape)
    return np.clip(img + noise, 0.0, 1.0)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's SSIM without down-sampling, by scikit-image.

    scikit-image filters with reflected borders but averages the SSIM map only over the region
    at least (11 - 1) / 2 pixels from the border, which is exactly the 'valid' region of ssim.m.
    """
    return structural_similarity(
        255.0 * a,
        255.0 * b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
    )


CASES = [
    (_smooth_image((40, 52), 1.0, 0), 0.02, 1),
    (_smooth_image((64, 64), 3.0, 2), 0.10, 3),
    (np.random.default_rng(4).random((33, 45)), 0.05, 5),
]


@pytest.mark.parametrize("ref, std, seed", CASES)
def test_psnr_matches_skimage(ref, std, seed):
    est = _noisy(ref, std, seed)
    want = peak_signal_noise_ratio(255.0 * ref, 255.0 * est, data_range=255.0)
    assert metrics.psnr(est, ref) == pytest.approx(want, abs=1e-9)
    assert metrics.psnr(est[..., None], ref[..., None]) == pytest.approx(want, abs=1e-9)
    assert metrics.psnr(ref, ref) == float("inf")


@pytest.mark.parametrize("ref, std, seed", CASES)
def test_ssim_matches_skimage(ref, std, seed):
    est = _noisy(ref, std, seed)
    got = metrics.ssim(est, ref)
    assert got == pytest.approx(_skimage_ssim(est, ref), abs=1e-9)
    assert 0.0 < got < 1.0
    assert metrics.ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)


def test_ssim_downsamples_by_two_for_large_images():
    """min(H, W) = 384 gives f = round(1.5) = 2: a 2x2 box average (MATLAB places an even filter
    so that pixel i averages i and i + 1), then every other pixel, i.e. 2x2 block means."""
    ref = _smooth_image((384, 400), 2.0, 6)
    est = _noisy(ref, 0.05, 7)

    def blocks(x):
        return x.reshape(192, 2, 200, 2).mean(axis=(1, 3))

    want = _skimage_ssim(blocks(est), blocks(ref))
    assert metrics.ssim(est, ref) == pytest.approx(want, abs=1e-9)
    assert abs(_skimage_ssim(est, ref) - want) > 1e-3  # down-sampling does change the value


def test_ssim_downsamples_by_three():
    """f = 3 (odd): a centred 3x3 mean with symmetric borders, then every third pixel."""
    ref = _smooth_image((700, 770), 3.0, 8)
    est = _noisy(ref, 0.05, 9)

    def down(x):
        return scipy.ndimage.uniform_filter(x, size=3, mode="reflect")[::3, ::3]

    want = _skimage_ssim(down(est), down(ref))
    assert metrics.ssim(est, ref) == pytest.approx(want, abs=1e-9)


def _brute_force_alignment(est, ref, max_shift, step, crop):
    """Literal comp_upto_shift: interpolate the estimate at every shift and keep the best SSD."""
    h, w = ref.shape[0] - 2 * crop, ref.shape[1] - 2 * crop
    ref_c = ref[crop : crop + h, crop : crop + w]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    best = (np.inf, None, None)
    for dy in np.arange(-max_shift, max_shift + step / 2, step):
        for dx in np.arange(-max_shift, max_shift + step / 2, step):
            coords = [crop + rows + dy, crop + cols + dx]
            shifted = scipy.ndimage.map_coordinates(est, coords, order=1, mode="nearest")
            ssd = np.sum((shifted - ref_c) ** 2)
            if ssd < best[0]:
                best = (ssd, (dy, dx), shifted)
    ssd, shift, aligned = best
    return 10 * np.log10(ref_c.size / ssd), shift, aligned, ref_c


def test_alignment_matches_brute_force():
    ref = _smooth_image((46, 50), 2.0, 10)
    est = scipy.ndimage.shift(ref, (0.8, -1.4), order=3, mode="nearest")
    est = _noisy(est, 0.01, 11)
    want_psnr, want_shift, want_aligned, ref_c = _brute_force_alignment(est, ref, 3, 0.25, 6)
    got = metrics.aligned_psnr_ssim(est, ref, max_shift=3, step=0.25, crop=6)
    assert got["shift"] == want_shift
    assert got["psnr"] == pytest.approx(want_psnr, abs=1e-9)
    np.testing.assert_allclose(got["aligned"], want_aligned, atol=1e-12)
    assert got["ssim"] == pytest.approx(_skimage_ssim(want_aligned, ref_c), abs=1e-9)
    assert got["psnr"] > metrics.psnr(est[6:-6, 6:-6], ref[6:-6, 6:-6]) + 5.0


def test_known_subpixel_shift_is_recovered():
    ref = _smooth_image((80, 80), 4.0, 12)
    rows, cols = np.mgrid[0:80, 0:80].astype(np.float64)
    # The estimate shows the reference moved by (1.25, -2.5): est(i, j) = ref(i - 1.25, j + 2.5).
    est = scipy.ndimage.map_coordinates(ref, [rows - 1.25, cols + 2.5], order=1, mode="nearest")
    got = metrics.aligned_psnr_ssim(est, ref)
    assert got["shift"] == (1.25, -2.5)
    assert got["aligned"].shape == (50, 50)
    assert got["psnr"] > 40.0
    assert got["ssim"] > 0.99


def test_identical_images_align_at_zero_shift():
    ref = _smooth_image((60, 60), 2.0, 13)
    got = metrics.aligned_psnr_ssim(ref[..., None], ref[..., None])
    assert got["shift"] == (0.0, 0.0)
    assert got["psnr"] == float("inf")
    assert got["ssim"] == pytest.approx(1.0)


def test_aligned_metrics_find_a_subpixel_shift_at_benchmark_size():
    # (Its speed is a benchmark's business, not a test's: no wall-clock assertion here.)
    ref = _smooth_image((255, 255), 1.5, 14)
    est = _noisy(scipy.ndimage.shift(ref, (2.3, -4.1), order=1, mode="nearest"), 0.02, 15)
    got = metrics.aligned_psnr_ssim(est, ref)
    assert abs(got["shift"][0] - 2.3) <= 0.25 and abs(got["shift"][1] + 4.1) <= 0.25


def test_colour_is_compared_on_luminance():
    ref = np.stack([_smooth_image((48, 48), 2.0, s) for s in (16, 17, 18)], axis=-1)
    est = _noisy(ref, 0.05, 19)
    luma = np.array([0.299, 0.587, 0.114])
    assert metrics.psnr(est, ref) == pytest.approx(metrics.psnr(est @ luma, ref @ luma))
    assert metrics.ssim(est, ref) == pytest.approx(metrics.ssim(est @ luma, ref @ luma))


def test_studio_luma_is_matlabs_rgb2ycbcr_luma():
    """MATLAB's rgb2ycbcr luma for [0, 1] input: (16 + 65.481 R + 128.553 G + 24.966 B) / 255."""
    rgb = np.random.default_rng(20).random((6, 7, 3))
    matlab = (16.0 + rgb @ np.array([65.481, 128.553, 24.966])) / 255.0
    np.testing.assert_allclose(metrics.studio_luma(rgb), matlab, atol=1e-12)
    y = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(metrics.studio_luma(y[..., None]), matlab, atol=1e-12)


def test_studio_range_scores_1_32_db_higher():
    """Published Lai tables score on studio-range luma: the same pair reads 20 log10(255/219)
    dB higher, with the same shift."""
    ref = _smooth_image((64, 64), 2.0, 21)
    est = scipy.ndimage.shift(_noisy(ref, 0.03, 22), (1.25, -0.5), mode="nearest")
    full = metrics.aligned_psnr_ssim(est, ref)
    studio = metrics.aligned_psnr_ssim(metrics.studio_luma(est), metrics.studio_luma(ref))
    assert studio["psnr"] - full["psnr"] == pytest.approx(20 * np.log10(255 / 219), abs=1e-6)
    assert studio["shift"] == full["shift"]
    assert studio["ssim"] != full["ssim"]  # SSIM's constants do not scale with the range


def test_error_ratio():
    ref = 0.1 + 0.8 * _smooth_image((64, 64), 2.0, 20)
    # Smooth error patterns: sub-pixel re-sampling cannot average them away like white noise.
    error = _smooth_image((64, 64), 3.0, 21) - 0.5
    gtk = ref + 0.02 * error
    worse = ref + 0.06 * error
    assert metrics.error_ratio(gtk, gtk, ref) == pytest.approx(1.0)
    ratio = metrics.error_ratio(worse, gtk, ref)
    ssd_w = metrics.aligned_psnr_ssim(worse, ref)["ssd"]
    ssd_g = metrics.aligned_psnr_ssim(gtk, ref)["ssd"]
    assert ratio == pytest.approx(ssd_w / ssd_g)
    assert ratio == pytest.approx(9.0, rel=0.02)  # (0.06 / 0.02)^2


def test_success_rates():
    rates = metrics.success_rates([1.0, 1.9, 2.0, 2.5, 3.5])
    assert rates == {2.0: pytest.approx(0.4), 3.0: pytest.approx(0.8)}
    assert metrics.success_rates(np.array([5.0]), thresholds=(2,)) == {2.0: 0.0}


def test_kernel_similarity():
    rng = np.random.default_rng(23)
    k = rng.random((7, 7)) * (rng.random((7, 7)) > 0.5)
    k /= k.sum()
    shifted = np.zeros((11, 11))
    shifted[3:10, 1:8] = k  # the same kernel, off-centre in a larger support
    assert metrics.kernel_similarity(k, k) == pytest.approx(1.0)
    assert metrics.kernel_similarity(shifted, k) == pytest.approx(1.0)
    assert metrics.kernel_similarity(k, shifted) == pytest.approx(1.0)
    other = rng.random((9, 9))
    other /= other.sum()
    s = metrics.kernel_similarity(other, k)
    assert 0.0 <= s < 0.95
    line = np.zeros((5, 5))
    line[2, :] = 0.2
    assert metrics.kernel_similarity(line, line.T) < 0.5
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    assert 0.0 < metrics.kernel_similarity(delta, k) < 1.0


def test_bad_inputs_raise():
    a = np.zeros((40, 40))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(a, np.zeros((40, 41)))
    with pytest.raises(ValueError, match="max_shift"):
        metrics.aligned_psnr_ssim(a, a, max_shift=12, crop=10)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        metrics.ssim(np.zeros((2, 40, 40, 1)), np.zeros((2, 40, 40, 1)))
