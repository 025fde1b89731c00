import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdeconv
from jaxdeconv.bench import synthetic
from jaxdeconv.classical import metrics


def test_end_to_end_tiny_recovers_kernel_and_sharpens(tiny_config):
    """32x32 synthetic camera shake, K = 5: the estimate beats a delta kernel and the input."""
    ex = synthetic.make_example(32, 32, 5, noise=0.002, seed=0, kernel_length=2.0)
    result = jaxdeconv.deblur(ex.blurry, tiny_config, key=jax.random.key(0))

    delta = np.zeros_like(ex.kernel)
    delta[2, 2] = 1.0
    err = np.linalg.norm(result.kernel - ex.kernel)
    err_delta = np.linalg.norm(delta - ex.kernel)
    assert err < 0.5 * err_delta
    assert metrics.psnr(result.image, ex.sharp) > metrics.psnr(ex.blurry, ex.sharp) + 1.0

    assert result.image.shape == result.mean.shape == result.std.shape == (32, 32, 1)
    assert result.kernel.min() >= 0 and abs(result.kernel.sum() - 1) < 1e-5
    assert result.loss_history.shape == (tiny_config.num_steps,)
    assert np.all(np.isfinite(result.loss_history))


def test_same_seed_same_result(tiny_config):
    tiny_config.num_steps = 20
    ex = synthetic.make_example(24, 24, 5, seed=1)
    a = jaxdeconv.deblur(ex.blurry[..., 0], tiny_config)
    b = jaxdeconv.deblur(ex.blurry[..., 0], tiny_config)
    np.testing.assert_array_equal(a.kernel, b.kernel)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.std, b.std)


def _nan_from_step_2(spec, state, y, key):
    state, metrics = jaxdeconv.train_step(spec, state, y, key)
    metrics["loss"] = jnp.where(state.step >= 2, jnp.nan, metrics["loss"])
    return state, metrics


def test_non_finite_loss_names_the_step(tiny_config):
    tiny_config.num_steps = 6
    tiny_config.log_every = 4
    blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
    with pytest.raises(jaxdeconv.NonFiniteLossError, match="at step 2;"):
        jaxdeconv.deblur(blurry, tiny_config, step=_nan_from_step_2)


def test_bad_input_shapes(tiny_config):
    with pytest.raises(ValueError, match=r"\[H, W\] or \[H, W, C\]"):
        jaxdeconv.deblur(np.zeros((2, 8, 8, 1)), tiny_config)
    with pytest.raises(ValueError, match="smaller than the 5x5 kernel"):
        jaxdeconv.deblur(np.zeros((4, 12)), tiny_config)


def test_async_checkpoints_every_step_change_nothing(tiny_config, tmp_path):
    """Saves run in the background from host copies, so the donating step cannot delete them."""
    tiny_config.num_steps = 4
    tiny_config.checkpoint_every = 1
    blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
    plain = jaxdeconv.deblur(blurry, tiny_config)
    saved = jaxdeconv.deblur(blurry, tiny_config, checkpoint_dir=str(tmp_path / "ckpt"))
    assert os.listdir(tmp_path / "ckpt")
    np.testing.assert_array_equal(saved.kernel, plain.kernel)
    np.testing.assert_array_equal(saved.loss_history, plain.loss_history)
