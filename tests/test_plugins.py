"""Plug-ins by name: a generator or a loss term defined outside the package is used without
editing it."""

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
        spec = train.build_spec(cfg, (24, 24, 1))
        assert isinstance(spec.kernel_net, _GaussianKernel) and spec.zk_shape == (1,)
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
        spec = train.build_spec(tiny_config, (16, 16, 1))
        assert isinstance(spec.image_net, Flat)
    finally:
        plugins.IMAGE_NETS.pop("test_flat", None)


def test_unknown_names_are_refused_with_the_known_ones(tiny_config):
    tiny_config.kernel_net.type = "nonesuch"
    with pytest.raises(ValueError, match=r"kernel_net.type must be one of \['coord', 'mlp'"):
        train.build_spec(tiny_config, (16, 16, 1))
    tiny_config.kernel_net.type = "mlp"
    tiny_config.image_net.type = "nonesuch"
    with pytest.raises(ValueError, match="image_net.type must be one of"):
        train.build_spec(tiny_config, (16, 16, 1))
    tiny_config.image_net.type = "unet"
    tiny_config.extra_loss.names = ("nonesuch",)
    with pytest.raises(ValueError, match=r"'nonesuch' is not one of \[.*'kernel_centre'"):
        train.build_spec(tiny_config, (16, 16, 1))


def _brighter(images, kernel, key, step):
    """A user's extra loss term: rewards bright draws; its metrics use the key and the step."""
    del kernel
    return -jnp.mean(images), {"step": step.astype(jnp.float32), "u": jax.random.uniform(key)}


def test_a_users_loss_term_plugs_in_by_name_and_is_logged(tiny_config):
    plugins.register_loss_term("test_brighter")(_brighter)
    try:
        cfg = tiny_config
        cfg.num_steps, cfg.log_every = 4, 2
        blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
        plain = jaxdeconv.deblur(blurry, cfg)
        cfg.extra_loss.names, cfg.extra_loss.weights = ("test_brighter",), (0.5,)
        hooked = jaxdeconv.deblur(blurry, cfg)
        assert not np.array_equal(hooked.kernel, plain.kernel)  # the term changed the run
        m = hooked.metrics
        # Logged per step: its value, its own metrics; the loss holds it at its weight beside
        # the paper's terms (data, mu ||k||^2, tv).
        np.testing.assert_array_equal(m["test_brighter/step"], [0, 1, 2, 3])
        assert np.all(m["test_brighter"] < 0) and np.all(m["test_brighter/u"] > 0)
        paper = m["data"] + cfg.mu * m["kernel_norm"] + cfg.tv_weight * m["tv"]
        np.testing.assert_allclose(m["loss"], paper + 0.5 * m["test_brighter"], rtol=1e-5)
        # Weight 0 (or the term not named): bit-identical to a run without the hook.
        cfg.extra_loss.weights = (0.0,)
        off = jaxdeconv.deblur(blurry, cfg)
        for field in ("kernel", "image", "std", "loss_history"):
            np.testing.assert_array_equal(getattr(off, field), getattr(plain, field))
        assert "test_brighter" not in off.metrics
    finally:
        plugins.LOSS_TERMS.pop("test_brighter", None)


def test_the_built_in_table_lists_what_the_built_in_modules_register():
    """``plugins.BUILTIN_MODULES`` names each built-in with the module registering it: a lookup
    imports that module, so the registry imports none of them itself (no import cycle)."""
    import importlib

    tables = {"kernel_net": plugins.KERNEL_NETS, "image_net": plugins.IMAGE_NETS}
    tables["loss_term"] = plugins.LOSS_TERMS
    modules = {m for names in plugins.BUILTIN_MODULES.values() for m in names.values()}
    for module in modules:
        importlib.import_module(module)
    for kind, table in tables.items():
        registered = {
            name
            for name, entry in table.items()
            if getattr(entry, "build", entry).__module__ in modules
        }
        assert registered == set(plugins.BUILTIN_MODULES[kind]), kind
        for name, module in plugins.BUILTIN_MODULES[kind].items():
            assert getattr(table[name], "build", table[name]).__module__ == module


def test_a_users_replacement_registered_before_its_built_in_module_loads_is_kept(monkeypatch):
    """Looking a built-in up imports its module, which registers every generator it defines;
    a name a user registered before that keeps the user's entry."""
    import sys

    import jaxdeconv.core
    from jaxdeconv.core import networks

    loaded = plugins.KERNEL_NETS["unet"]
    mine = plugins.KernelNetPlugin(lambda config, k: None, False)
    monkeypatch.setitem(plugins.KERNEL_NETS, "mlp", mine)
    monkeypatch.delitem(plugins.KERNEL_NETS, "unet")
    monkeypatch.delitem(sys.modules, "jaxdeconv.core.networks")  # as if not loaded yet
    monkeypatch.setattr(jaxdeconv.core, "networks", networks)  # restored after the re-import
    fresh = plugins.kernel_net("unet")  # runs the module again: it registers unet and mlp
    assert fresh.build is not loaded.build
    assert fresh.build.__module__ == "jaxdeconv.core.networks"
    assert plugins.kernel_net("mlp") is mine
