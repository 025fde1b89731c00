import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv.core import networks

IMAGE_NET = networks.ImageUNet(out_channels=1, channels=(4, 8), skip_channels=(2, 2))


def _init_image_net(shape=(23, 29, 3), net=IMAGE_NET):
    z = jax.random.uniform(jax.random.key(0), shape, maxval=0.1)
    return z, net.init(jax.random.key(1), z, deterministic=True)


def _draw(params, z, key, noise=0.05, rate=0.3, net=IMAGE_NET):
    k1, k2 = jax.random.split(key)
    return net.apply(params, z, noise, rate, rngs={"noise": k1, "dropout": k2})


@pytest.mark.parametrize("out_channels", [1, 3])
@pytest.mark.parametrize("shape", [(23, 29, 3), (16, 16, 2), (9, 31, 1)])
def test_image_net_shapes_and_range(out_channels, shape):
    net = networks.ImageUNet(out_channels=out_channels, channels=(4, 8, 8), skip_channels=(2, 0, 2))
    z, params = _init_image_net(shape, net)
    out = net.apply(params, z, deterministic=True)
    assert out.shape == shape[:2] + (out_channels,)
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0


def test_deterministic_mode_is_deterministic_and_noise_free():
    z, params = _init_image_net()
    a = IMAGE_NET.apply(params, z, 0.5, 0.5, deterministic=True)
    b = IMAGE_NET.apply(params, z, deterministic=True)
    np.testing.assert_array_equal(a, b)
    # Zero noise and zero dropout give the deterministic output too.
    c = _draw(params, z, jax.random.key(3), noise=0.0, rate=0.0)
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_same_key_same_draw_different_keys_differ():
    z, params = _init_image_net()
    a = _draw(params, z, jax.random.key(7))
    b = _draw(params, z, jax.random.key(7))
    c = _draw(params, z, jax.random.key(8))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3


def test_noise_and_dropout_each_randomise():
    z, params = _init_image_net()
    k1, k2 = jax.random.key(1), jax.random.key(2)
    only_noise = [_draw(params, z, k, noise=0.05, rate=0.0) for k in (k1, k2)]
    only_drop = [_draw(params, z, k, noise=0.0, rate=0.3) for k in (k1, k2)]
    assert float(jnp.max(jnp.abs(only_noise[0] - only_noise[1]))) > 1e-4
    assert float(jnp.max(jnp.abs(only_drop[0] - only_drop[1]))) > 1e-4


def test_rates_are_traced_no_recompile():
    z, params = _init_image_net()
    traces = []

    @jax.jit
    def f(noise, rate, key):
        traces.append(1)
        return _draw(params, z, key, noise, rate)

    for noise, rate in [(0.05, 0.3), (0.001, 0.001), (0.01, 0.5)]:
        f(noise, rate, jax.random.key(0))
    assert len(traces) == 1


@pytest.mark.parametrize("k", [3, 5, 7, 27])
def test_kernel_unet_is_a_distribution(k):
    net = networks.KernelUNet(channels=(8,) * 4, skip_channels=(4,) * 4)
    z = jax.random.uniform(jax.random.key(0), (k, k, 8), maxval=0.1)
    params = net.init(jax.random.key(1), z)
    kernel = net.apply(params, z)
    assert kernel.shape == (k, k)
    assert float(kernel.min()) >= 0.0
    np.testing.assert_allclose(float(kernel.sum()), 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [1, 5, 19])
def test_kernel_mlp_is_a_distribution(k):
    net = networks.KernelMLP(kernel_size=k, hidden=32)
    z = jax.random.uniform(jax.random.key(0), (200,), maxval=0.1)
    kernel = net.apply(net.init(jax.random.key(1), z), z)
    assert kernel.shape == (k, k)
    assert float(kernel.min()) >= 0.0
    np.testing.assert_allclose(float(kernel.sum()), 1.0, atol=1e-5)


def test_mismatched_levels_rejected():
    net = networks.ImageUNet(channels=(4, 8), skip_channels=(2,))
    with pytest.raises(ValueError, match="one skip width per level"):
        net.init(jax.random.key(0), jnp.zeros((8, 8, 2)), deterministic=True)


def _perturbed_output(net, params, z, name):
    """The output after adding 0.5 to every conv weight of the sub-module ``name``."""

    def bump(path, leaf):
        keys = [getattr(p, "key", None) for p in path]
        return leaf + 0.5 if name in keys and keys[-1] == "kernel" else leaf

    return net.apply(jax.tree_util.tree_map_with_path(bump, params), z)


@pytest.mark.parametrize("k", [13, 7])
def test_kernel_unet_every_level_carries_information(k):
    """At K = 13 the 4-level kernel net's deepest level used to be 1x1, where instance norm
    erased its input: its conv weights did not change the kernel. Now every level's do."""
    net = networks.KernelUNet(channels=(8,) * 4, skip_channels=(4,) * 4)
    z = jax.random.uniform(jax.random.key(0), (k, k, 8), maxval=0.1)
    params = net.init(jax.random.key(1), z)
    base = net.apply(params, z)
    for level in range(4):
        for part in ("a", "b"):
            out = _perturbed_output(net, params, z, f"down{level}{part}")
            assert float(jnp.abs(out - base).max()) > 1e-6, (k, level, part)
    # And the deepest level's features depend on the input.
    z2 = jax.random.uniform(jax.random.key(2), (k, k, 8), maxval=0.1)
    assert float(jnp.abs(net.apply(params, z2) - base).max()) > 1e-6


def test_decoder_1x1_is_optional_and_counted():
    z = jnp.zeros((16, 16, 2))

    def count(decoder_1x1):
        net = networks.ImageUNet(channels=(8, 8), skip_channels=(2, 2), decoder_1x1=decoder_1x1)
        params = net.init(jax.random.key(0), z, deterministic=True)
        return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))

    # Each level's 1x1 conv: 8 * 8 weights + 8 biases, and its norm's scale and bias.
    assert count(True) - count(False) == 2 * (8 * 8 + 8 + 2 * 8)


def test_a_new_non_local_block_is_the_identity_and_reaches_every_position():
    x = jax.random.normal(jax.random.key(0), (1, 9, 11, 6))
    block = networks.NonLocal()
    params = block.init(jax.random.key(1), x)
    np.testing.assert_array_equal(block.apply(params, x), x)  # the output norm's scale is 0
    # opened (scale 1), a change at one corner moves the opposite corner: a global reach
    opened = jax.tree_util.tree_map(lambda a: a, params)
    opened["params"]["out_norm"]["scale"] = jnp.ones_like(params["params"]["out_norm"]["scale"])
    moved = x.at[0, 0, 0].add(1.0)
    far = block.apply(opened, moved)[0, -1, -1] - block.apply(opened, x)[0, -1, -1]
    assert float(jnp.max(jnp.abs(far))) > 1e-4
    # training can open it: the loss has a gradient in the closing scale
    grad = jax.grad(lambda p: jnp.sum(block.apply(p, x) * x[..., ::-1]))(params)
    assert float(jnp.max(jnp.abs(grad["params"]["out_norm"]["scale"]))) > 0


def test_non_local_levels_start_as_the_plain_net_and_count_their_parameters():
    z = jax.random.uniform(jax.random.key(0), (20, 20, 2), maxval=0.1)
    plain = networks.ImageUNet(channels=(8, 8, 8), skip_channels=(2, 2, 2))
    with_blocks = networks.ImageUNet(channels=(8, 8, 8), skip_channels=(2, 2, 2), non_local_from=1)
    p0 = plain.init(jax.random.key(1), z, deterministic=True)
    p1 = with_blocks.init(jax.random.key(1), z, deterministic=True)
    flat = {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p1)[0]}
    assert any("nonlocal1" in k for k in flat) and any("nonlocal2" in k for k in flat)
    assert not any("nonlocal0" in k for k in flat)

    def count(p):
        return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(p))

    # per block: three 1x1 embeddings 8 -> 4 (weights and biases), the 1x1 back 4 -> 8, its norm
    assert count(p1) - count(p0) == 2 * (3 * (8 * 4 + 4) + (4 * 8 + 8) + 2 * 8)
    np.testing.assert_allclose(
        with_blocks.apply(p1, z, deterministic=True),
        plain.apply(p0, z, deterministic=True),
        atol=1e-6,
    )
