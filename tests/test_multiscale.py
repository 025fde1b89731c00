import numpy as np
import pytest

from jaxdeconv.bench import synthetic
from jaxdeconv.classical import metrics, multiscale


@pytest.mark.parametrize("n,expected", [(1, 1), (2, 3), (2.9, 3), (4.1, 5), (5.9, 5), (9.7, 9)])
def test_odd_is_the_nearest_odd_integer(n, expected):
    assert multiscale.odd(n) == expected


def test_working_scale_brings_the_kernel_under_the_limit():
    assert multiscale.working_scale(21, 27) == 1.0
    assert multiscale.working_scale(75, 0) == 1.0
    s = multiscale.working_scale(75, 25)
    assert multiscale.scaled_kernel_size(75, s) == 25
    assert multiscale.scaled_kernel_size(5, 0.1) == 3


@pytest.mark.parametrize("size", [5, 13, 31])
def test_resized_kernel_keeps_sum_one_and_shape(size):
    k = synthetic.motion_kernel(9, seed=2)
    out = multiscale.resize_kernel(k, size)
    assert out.shape == (size, size) and out.min() >= 0
    np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)


def test_down_then_up_sampling_keeps_the_kernel_shape():
    k = synthetic.motion_kernel(31, seed=4)
    small = multiscale.resize_kernel(k, 15, scale=0.5)
    back = multiscale.resize_kernel(small, 31, scale=2.0)
    assert metrics.kernel_similarity(back, k) > 0.8
    # A delta stays a (spread) peak in the middle: the middle taps stay aligned.
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1
    up = multiscale.resize_kernel(delta, 9, scale=2.0)
    assert np.unravel_index(np.argmax(up), up.shape) == (4, 4)


def test_downscale_is_antialiased_and_sized():
    rng = np.random.default_rng(0)
    noise = rng.random((40, 60, 1)).astype(np.float32)
    small = multiscale.downscale(noise, 0.5)
    assert small.shape == (20, 30, 1)
    assert small.std() < 0.6 * noise.std()  # averaging, not point sampling
    np.testing.assert_array_equal(multiscale.downscale(noise, 1.0), noise)
