"""Tests for jaxdeconv.core.fourier: fast canvas sizes and the real FFTs over the image axes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv.core import fourier


def _random(shape, seed):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def test_next_smooth_size():
    assert fourier.next_smooth_size(281) == 288
    assert fourier.next_smooth_size(255) == 256
    assert fourier.next_smooth_size(7) == 8
    assert fourier.next_smooth_size(1) == 1
    for n in range(1, 200):
        m = fourier.next_smooth_size(n)
        assert m >= n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1


@pytest.mark.parametrize("channels", [(), (3,)])
def test_rfft2_is_numpy_over_the_first_two_axes_and_inverts(channels):
    x = _random((12, 17) + channels, 0)
    spectrum = np.asarray(fourier.rfft2(jnp.asarray(x), (16, 18)))
    want = np.fft.rfft2(x.astype(np.float64), s=(16, 18), axes=(0, 1))
    np.testing.assert_allclose(spectrum, want, atol=1e-4)
    back = np.asarray(fourier.irfft2(jnp.asarray(spectrum), (16, 18)))
    np.testing.assert_allclose(back[:12, :17], x, atol=1e-5)
    np.testing.assert_allclose(back[12:], 0.0, atol=1e-5)
