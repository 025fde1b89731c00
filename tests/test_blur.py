import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from jaxdeconv.core import blur


def _random(shape, seed):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize(
    "shape,k",
    [((16, 16, 1), 3), ((23, 29, 3), 5), ((40, 37, 1), 9), ((31, 31, 2), 1), ((20, 21, 1), 4)],
)
def test_matches_scipy_correlate2d(method, shape, k):
    x = _random(shape, 0)
    kernel = _random((k, k), 1)
    kernel /= kernel.sum()
    out = np.asarray(jax.jit(blur.valid_correlate, static_argnums=2)(x, kernel, method))
    assert out.shape == (shape[0] - k + 1, shape[1] - k + 1, shape[2])
    for c in range(shape[2]):
        ref = signal.correlate2d(x[:, :, c], kernel, mode="valid")
        np.testing.assert_allclose(out[:, :, c], ref, atol=1e-5)


def test_direct_and_fft_gradients_agree():
    x = jnp.asarray(_random((30, 27, 1), 2))
    kernel = jnp.asarray(_random((7, 7), 3))
    target = jnp.asarray(_random((24, 21, 1), 4))

    def loss(method, x, k):
        return jnp.sum((blur.valid_correlate(x, k, method) - target) ** 2)

    g_direct = jax.grad(lambda x, k: loss("direct", x, k), argnums=(0, 1))(x, kernel)
    g_fft = jax.grad(lambda x, k: loss("fft", x, k), argnums=(0, 1))(x, kernel)
    for a, b in zip(g_direct, g_fft, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_auto_uses_crossover():
    crossover = blur.FFT_MIN_KERNEL_SIZE.get(
        jax.default_backend(), blur.FFT_MIN_KERNEL_SIZE_DEFAULT
    )
    small = jnp.zeros((crossover - 2,) * 2)
    large = jnp.zeros((crossover,) * 2)
    x = jnp.zeros((32, 32, 1))
    # Same numbers either way; check the dispatch through the lowered HLO.
    assert "fft" not in jax.jit(blur.valid_correlate).lower(x, small).as_text().lower()
    assert "fft" in jax.jit(blur.valid_correlate).lower(x, large).as_text().lower()


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="larger than the image"):
        blur.valid_correlate(jnp.zeros((4, 4, 1)), jnp.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        blur.valid_correlate(jnp.zeros((8, 8)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown blur method"):
        blur.valid_correlate(jnp.zeros((8, 8, 1)), jnp.zeros((3, 3)), "wavelet")
