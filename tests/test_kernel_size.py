import numpy as np

from jaxdeconv.bench import synthetic
from jaxdeconv.classical import kernel_size, metrics


def _embedded(k, size, top, left, noise=0.0, seed=0):
    big = np.zeros((size, size))
    big[top : top + k.shape[0], left : left + k.shape[1]] = k
    rng = np.random.default_rng(seed)
    sparse = rng.random((size, size)) < 0.03
    return big + noise * big.max() * sparse * rng.random((size, size))


def test_support_of_a_kernel_on_a_generous_grid_is_found_and_weak_taps_ignored():
    k = synthetic.motion_kernel(13, seed=3)
    _, _, h, w = kernel_size.support_box(k)
    big = _embedded(k, 41, 6, 20, noise=0.04)
    top, left, bh, bw = kernel_size.support_box(big)
    assert (bh, bw) == (h, w)
    assert 6 <= top < 6 + 13 and 20 <= left < 20 + 13


def test_chosen_size_covers_the_blur_with_a_margin_and_the_cut_keeps_it():
    k = synthetic.motion_kernel(15, seed=5)
    _, _, h, w = kernel_size.support_box(k)
    big = _embedded(k, 45, 3, 25, noise=0.04)
    cut, size = kernel_size.trim(big, margin=2)
    assert size % 2 == 1 and max(h, w) + 4 <= size <= max(h, w) + 5
    assert cut.shape == (size, size)
    np.testing.assert_allclose(cut.sum(), 1.0, atol=1e-5)
    assert metrics.kernel_similarity(cut, k) > 0.99


def test_size_stays_within_the_bounds():
    delta = np.zeros((21, 21))
    delta[10, 10] = 1
    assert kernel_size.choose_size(delta, min_size=7) == 7
    flat = np.ones((21, 21))
    assert kernel_size.choose_size(flat, margin=3) == 21


def test_default_upper_bound_follows_the_image():
    assert kernel_size.default_max_size((1024, 900)) == 75
    assert kernel_size.default_max_size((128, 128)) == 31
    assert kernel_size.default_max_size((16, 16)) == 5
