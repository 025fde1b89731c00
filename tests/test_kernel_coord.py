import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv.core import kernel_coord, plugins


@pytest.mark.parametrize("k", [1, 3, 9, 27])
def test_coordinate_kernel_is_a_distribution(k):
    net = kernel_coord.KernelCoord(hidden=16, layers=2)
    z = jnp.zeros((k, k, 1))
    params = net.init(jax.random.key(0), z)
    kernel = np.asarray(jax.jit(net.apply)(params, z))
    assert kernel.shape == (k, k)
    assert (kernel >= 0).all()
    np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-5)


def test_same_weights_give_the_kernel_on_any_grid():
    # Resolution-free: the 5-tap grid's taps are every other tap of the 9-tap grid, so the
    # coarse kernel is the fine one sampled there and renormalised.
    net = kernel_coord.KernelCoord(hidden=16, layers=2)
    params = net.init(jax.random.key(1), jnp.zeros((9, 9, 1)))
    fine = np.asarray(net.apply(params, jnp.zeros((9, 9, 1))))
    coarse = np.asarray(net.apply(params, jnp.zeros((5, 5, 1))))
    sampled = fine[::2, ::2]
    np.testing.assert_allclose(coarse, sampled / sampled.sum(), rtol=1e-4, atol=1e-7)
    assert not np.allclose(coarse, np.full((5, 5), 1 / 25), atol=1e-3)  # not a flat kernel


def test_zk_values_are_not_used_only_its_side():
    net = kernel_coord.KernelCoord(hidden=8, layers=1)
    params = net.init(jax.random.key(2), jnp.zeros((7, 7, 1)))
    a = net.apply(params, jnp.zeros((7, 7, 1)))
    b = net.apply(params, jax.random.uniform(jax.random.key(3), (7, 7, 1)))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dropout_randomises_only_when_asked():
    net = kernel_coord.KernelCoord(hidden=16, layers=2)
    z = jnp.zeros((7, 7, 1))
    params = net.init(jax.random.key(0), z)
    det = net.apply(params, z, 0.0, 0.5, deterministic=True)
    draws = [
        net.apply(params, z, 0.0, 0.5, deterministic=False, rngs={"dropout": jax.random.key(i)})
        for i in range(2)
    ]
    assert not np.allclose(draws[0], draws[1])
    np.testing.assert_array_equal(np.asarray(det), np.asarray(net.apply(params, z)))


def test_registered_as_resolution_free(tiny_config):
    plugin = plugins.kernel_net("coord")
    assert plugin.resolution_free and not plugins.kernel_net("mlp").resolution_free
    module, zk_shape = plugin.build(tiny_config, 5)
    assert isinstance(module, kernel_coord.KernelCoord) and zk_shape == (5, 5, 1)
