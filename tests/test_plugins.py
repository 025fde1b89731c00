"""Plug-ins by name: a generator defined outside the package is used without editing it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdeconv
from jaxdeconv.bench import synthetic
from jaxdeconv.core import plugins, train


class _GaussianKernel(nn.Module):
    """A user's kernel generator: an isotropic Gaussian with one learnt width."""

    kernel_size: int

    @nn.compact
    def __call__(self, z, noise_std=0.0, dropout_rate=0.0, *, deterministic=True):
        log_sigma = self.param("log_sigma", nn.initializers.zeros, ())
        u = jnp.arange(self.kernel_size) - (self.kernel_size - 1) / 2
        g = jnp.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * jnp.exp(2 * log_sigma)))
        return g / g.sum()


def test_a_users_kernel_generator_plugs_in_by_name(tiny_config):
    built = []

    @plugins.register_kernel_net("test_gaussian")
    def build(config, kernel_size):
        built.append(kernel_size)
        return _GaussianKernel(kernel_size), (1,)

    try:
        cfg = tiny_config
        cfg.kernel_net.type = "test_gaussian"
        cfg.num_steps = 20
        model = train.build_model(cfg, (24, 24, 1))
        assert isinstance(model.kernel_net, _GaussianKernel) and model.zk_shape == (1,)
        ex = synthetic.make_example(24, 24, 5, seed=0)
        result = jaxdeconv.deblur(ex.blurry, cfg)
        assert built and built[-1] == 5
        assert set(result.state.params_k["params"]) == {"log_sigma"}
        # Training moved the user's parameter.
        assert float(result.state.params_k["params"]["log_sigma"]) != 0.0
        np.testing.assert_allclose(result.kernel.sum(), 1.0, rtol=1e-5)
    finally:
        plugins.KERNEL_NETS.pop("test_gaussian", None)


def test_a_users_image_generator_plugs_in_by_name(tiny_config):
    class Flat(nn.Module):
        out_channels: int

        @nn.compact
        def __call__(self, z, noise_std=0.0, dropout_rate=0.0, *, deterministic=False):
            level = self.param("level", nn.initializers.zeros, (self.out_channels,))
            return jnp.broadcast_to(jax.nn.sigmoid(level), z.shape[:2] + (self.out_channels,))

    plugins.register_image_net("test_flat")(lambda config, c: Flat(c))
    try:
        tiny_config.image_net.type = "test_flat"
        model = train.build_model(tiny_config, (16, 16, 1))
        assert isinstance(model.image_net, Flat)
    finally:
        plugins.IMAGE_NETS.pop("test_flat", None)


def test_unknown_names_are_refused_with_the_known_ones(tiny_config):
    tiny_config.kernel_net.type = "nonesuch"
    with pytest.raises(ValueError, match=r"kernel_net.type must be one of \['coord', 'mlp'"):
        train.build_model(tiny_config, (16, 16, 1))
    tiny_config.kernel_net.type = "mlp"
    tiny_config.image_net.type = "nonesuch"
    with pytest.raises(ValueError, match="image_net.type must be one of"):
        train.build_model(tiny_config, (16, 16, 1))
