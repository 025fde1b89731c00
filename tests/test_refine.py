import numpy as np
import pytest
import scipy.ndimage

from jaxdeconv.bench import synthetic
from jaxdeconv.classical import refine


def test_refit_from_the_true_image_recovers_the_kernel():
    ex = synthetic.make_example(64, 64, 9, noise=0.0, seed=2)
    k = np.asarray(
        refine.refine_kernel(ex.sharp_big, ex.blurry, 9, reg=1e-6, threshold=0.0, iters=3000)
    )
    assert k.shape == (9, 9) and k.min() >= 0 and abs(k.sum() - 1) < 1e-5
    assert np.abs(k - ex.kernel).sum() < 0.1  # L1 distance; 2 is the worst possible


def test_refit_improves_a_spread_kernel_estimate():
    ex = synthetic.make_example(64, 64, 9, noise=0.002, seed=4)
    box = np.full((9, 9), 1 / 81)
    k = np.asarray(refine.refine_kernel(ex.sharp_big, ex.blurry, 9))
    assert np.abs(k - ex.kernel).sum() < 0.5 * np.abs(box - ex.kernel).sum()


def _spread(kernel: np.ndarray, weight: float) -> np.ndarray:
    """The kernel mixed with a Gaussian-blurred copy of itself: right shape, too spread."""
    blurred = scipy.ndimage.gaussian_filter(kernel, 1.5, mode="constant")
    k = (1 - weight) * kernel + weight * blurred / blurred.sum()
    return k / k.sum()


def test_polish_tightens_a_spread_kernel():
    ex = synthetic.make_example(96, 96, 9, noise=0.002, seed=5)
    start = _spread(ex.kernel, 0.8)
    k = np.asarray(refine.polish_kernel(ex.blurry, start, iters=5))
    assert k.shape == (9, 9) and k.min() >= 0 and abs(k.sum() - 1) < 1e-5
    assert np.abs(k - ex.kernel).sum() < 0.7 * np.abs(start - ex.kernel).sum()


def test_polish_rejects_an_image_smaller_than_twice_the_kernel():
    with pytest.raises(ValueError, match="too small"):
        refine.polish_kernel(np.zeros((16, 16)), np.full((9, 9), 1 / 81))


def test_the_true_kernel_explains_the_data_better_than_a_spread_one():
    ex = synthetic.make_example(96, 96, 9, noise=0.002, seed=5)
    spread = _spread(ex.kernel, 0.8)
    assert refine.deconv_residual(ex.blurry, ex.kernel) < refine.deconv_residual(ex.blurry, spread)


def test_polish_or_keep_returns_the_better_fitting_kernel():
    for seed in (5, 6):
        ex = synthetic.make_example(96, 96, 9, noise=0.002, seed=seed)
        for start in (ex.kernel, _spread(ex.kernel, 0.8)):
            k, polished = refine.polish_or_keep(ex.blurry, start, iters=3)
            other = refine.polish_kernel(ex.blurry, start, iters=3) if not polished else start
            assert refine.deconv_residual(ex.blurry, k) <= refine.deconv_residual(ex.blurry, other)
            if not polished:
                np.testing.assert_array_equal(k, start)


def test_matrix_free_refit_matches_the_normal_matrix_one():
    ex = synthetic.make_example(48, 48, 7, noise=0.002, seed=3)
    args = dict(reg=1e-3, threshold=0.05, iters=300)
    a = np.asarray(refine._refine_gram(ex.sharp_big, ex.blurry, 7, **args))
    b = np.asarray(refine._refine_fft(ex.sharp_big, ex.blurry, 7, **args))
    assert np.abs(a - b).sum() < 0.02
    assert np.abs(b - ex.kernel).sum() < 0.2


def test_coarse_to_fine_polish_returns_a_full_size_kernel_near_the_truth():
    ex = synthetic.make_example(80, 80, 11, noise=0.002, seed=5)
    # The kernel as seen at half resolution, spread: what the network hands over.
    from jaxdeconv.classical import metrics, multiscale

    coarse = _spread(multiscale.resize_kernel(ex.kernel, 5, scale=0.5), 0.5)
    start = multiscale.resize_kernel(coarse, 11, scale=2.0)
    k = np.asarray(refine.polish_coarse_to_fine(ex.blurry, coarse, 11, 0.5, iters=3))
    assert k.shape == (11, 11) and k.min() >= 0 and abs(k.sum() - 1) < 1e-5
    assert metrics.kernel_similarity(k, ex.kernel) > metrics.kernel_similarity(start, ex.kernel)


def test_l0_weight_falls_with_the_kernel_size_only_above_the_reference():
    assert refine.size_scaled_lam(2e-3, 27, 27) == 2e-3
    assert refine.size_scaled_lam(2e-3, 75, 0) == 2e-3
    assert np.isclose(refine.size_scaled_lam(2e-3, 54, 27), 5e-4)
