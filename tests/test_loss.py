import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv.core import blur, loss, networks

IMAGE_NET = networks.ImageUNet(out_channels=1, channels=(4, 8), skip_channels=(2, 2))
KERNEL_NET = networks.KernelMLP(kernel_size=5, hidden=16)


def _setup():
    zx = jax.random.uniform(jax.random.key(0), (20, 20, 2), maxval=0.1)
    zk = jax.random.uniform(jax.random.key(1), (8,), maxval=0.1)
    px = IMAGE_NET.init(jax.random.key(2), zx, deterministic=True)
    pk = KERNEL_NET.init(jax.random.key(3), zk)
    y = jax.random.uniform(jax.random.key(4), (16, 16, 1))
    return px, pk, zx, zk, y


def test_vmap_over_draws_equals_python_loop():
    px, pk, zx, zk, y = _setup()
    key = jax.random.key(5)
    n = 4
    kwargs = dict(
        image_net=IMAGE_NET, kernel_net=KERNEL_NET, noise_std=0.05, dropout_rate=0.3, mu=1e-4
    )
    vmapped = loss.mc_loss(px, pk, y, zx, zk, key, num_draws=n, **kwargs)
    kernel = KERNEL_NET.apply(pk, zk)
    per_draw = []
    for k in jax.random.split(key, n):
        k_noise, k_drop = jax.random.split(k)
        x = IMAGE_NET.apply(px, zx, 0.05, 0.3, rngs={"noise": k_noise, "dropout": k_drop})
        per_draw.append(jnp.mean((blur.valid_correlate(x, kernel) - y) ** 2))
    expected = np.mean(per_draw) + 1e-4 * float(jnp.sum(kernel**2))
    np.testing.assert_allclose(float(vmapped.total), expected, rtol=1e-5)
    # And the draws really differ from each other.
    assert np.std(per_draw) > 0


def test_loss_is_zero_mu_term_for_exact_model():
    x = jax.random.uniform(jax.random.key(0), (1, 20, 20, 1))
    kernel = jnp.full((5, 5), 1 / 25)
    y = blur.valid_correlate(x[0], kernel)
    terms = loss.loss_from_images(x, kernel, y, mu=0.5)
    assert float(terms.data) < 1e-12
    np.testing.assert_allclose(float(terms.total), 0.5 * 25 * (1 / 25) ** 2, rtol=1e-6)


def test_total_variation_term():
    flat = jnp.full((1, 8, 8, 1), 0.5)
    step = flat.at[:, :, 4:, :].set(1.0)
    kernel = jnp.zeros((1, 1)).at[0, 0].set(1.0)
    y = flat[0]
    assert float(loss.loss_from_images(flat, kernel, y, mu=0, tv_weight=1.0).tv) == 0.0
    t = loss.loss_from_images(step, kernel, y, mu=0, tv_weight=2.0)
    assert float(t.tv) == pytest.approx(0.5 * 8 / (8 * 7))
    assert float(t.total) == pytest.approx(float(t.data) + 2.0 * float(t.tv))


def test_loss_gradients_are_finite_for_both_networks():
    px, pk, zx, zk, y = _setup()

    def f(px, pk):
        return loss.mc_loss(
            px,
            pk,
            y,
            zx,
            zk,
            jax.random.key(0),
            image_net=IMAGE_NET,
            kernel_net=KERNEL_NET,
            num_draws=2,
            noise_std=0.05,
            dropout_rate=0.3,
            mu=1e-4,
        ).total

    gx, gk = jax.jit(jax.grad(f, argnums=(0, 1)))(px, pk)
    leaves = jax.tree_util.tree_leaves((gx, gk))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree_util.tree_leaves(gk))


def test_data_term_sum_is_mean_times_pixels():
    px, pk, zx, zk, y = _setup()
    kwargs = dict(
        image_net=IMAGE_NET,
        kernel_net=KERNEL_NET,
        num_draws=2,
        noise_std=0.05,
        dropout_rate=0.3,
        mu=1e-4,
    )
    mean = loss.mc_loss(px, pk, y, zx, zk, jax.random.key(0), data_term="mean", **kwargs)
    total = loss.mc_loss(px, pk, y, zx, zk, jax.random.key(0), data_term="sum", **kwargs)
    np.testing.assert_allclose(float(total.data), float(mean.data) * y.size, rtol=1e-5)
    # mu ||k||^2 is the same in both: relative to the data it weighs y.size times less.
    assert float(total.kernel_norm) == float(mean.kernel_norm)
    with pytest.raises(ValueError, match="data_term"):
        kernel = KERNEL_NET.apply(pk, zk)
        loss.loss_from_images(jnp.zeros((1, 20, 20, 1)), kernel, y, mu=0, data_term="l1")


def _as_tuple(key):
    return tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _all_keys(keys):
    """Each draw's key and the noise and dropout keys split from it, as hashable tuples."""
    out = []
    for k in keys:
        out.append(_as_tuple(k))
        out.extend(_as_tuple(sub) for sub in jax.random.split(k))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_draw_keys_of_both_networks_never_coincide(n):
    key = jax.random.key(7)
    keys_x, keys_k = loss.draw_keys(key, n, "both")
    used = _all_keys(keys_x) + _all_keys(keys_k)
    assert len(set(used)) == len(used)
    # The derivation this replaced: kernel draws from fold_in(key, 1) beside image draws from
    # split(key, n). With this JAX, fold_in(key, 1) is split(key, n)[1], so for n >= 2 the
    # kernel draws' keys are image draw 1's noise and dropout keys.
    old = _all_keys(jax.random.split(key, n))
    old += _all_keys(jax.random.split(jax.random.fold_in(key, 1), n))
    if n >= 2 and _as_tuple(jax.random.fold_in(key, 1)) == _as_tuple(jax.random.split(key, n)[1]):
        assert len(set(old)) < len(old)


def test_draw_keys_per_randomize_option():
    key = jax.random.key(0)
    keys_x, keys_k = loss.draw_keys(key, 3, "image")
    assert keys_k is None
    np.testing.assert_array_equal(
        jax.random.key_data(keys_x), jax.random.key_data(jax.random.split(key, 3))
    )
    keys_x, keys_k = loss.draw_keys(key, 3, "kernel")
    assert keys_x is None and keys_k.shape == (3,)
    with pytest.raises(ValueError, match="randomize"):
        loss.draw_keys(key, 3, "neither")


def test_sampled_kernel_net_uses_its_own_dropout_rate():
    px, pk, zx, zk, y = _setup()
    kwargs = dict(
        image_net=IMAGE_NET,
        kernel_net=KERNEL_NET,
        num_draws=2,
        noise_std=0.0,
        dropout_rate=0.3,
        mu=1e-4,
        randomize="kernel",
    )
    key = jax.random.key(3)
    no_drop = loss.mc_loss(px, pk, y, zx, zk, key, kernel_dropout_rate=0.0, **kwargs)
    det = loss.loss_from_images(
        IMAGE_NET.apply(px, zx, deterministic=True)[None], KERNEL_NET.apply(pk, zk), y, mu=1e-4
    )
    np.testing.assert_allclose(float(no_drop.total), float(det.total), rtol=1e-5)
    dropped = loss.mc_loss(px, pk, y, zx, zk, key, kernel_dropout_rate=0.5, **kwargs)
    assert float(dropped.total) != float(no_drop.total)


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    x = jax.random.uniform(jax.random.key(0), (24, 24, 1))
    noise = jax.random.normal(jax.random.key(1), x.shape)
    assert float(loss.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)
    values = [float(loss.ssim(x, x + s * noise)) for s in (0.01, 0.05, 0.2)]
    assert 1.0 > values[0] > values[1] > values[2] > -1.0
    g = jax.grad(lambda a: loss.ssim(a, x + 0.05 * noise))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_ssim_weight_switches_the_data_term():
    """w = 0: squares only (SSIM not computed); w = 1: 1 - SSIM of the re-blurred draws;
    in between a blend (SelfDeblur switches from the first to the second at step 1000)."""
    images = jax.random.uniform(jax.random.key(2), (2, 20, 20, 1))
    kernel = jnp.full((5, 5), 1 / 25)
    y = blur.valid_correlate(images[0], kernel) + 0.02
    kw = dict(mu=0.0, blur_method="direct")
    mse = loss.loss_from_images(images, kernel, y, **kw).data
    dis = 1.0 - np.mean([loss.ssim(blur.valid_correlate(x, kernel, "direct"), y) for x in images])
    one = loss.loss_from_images(images, kernel, y, ssim_weight=jnp.float32(1.0), **kw).data
    half = loss.loss_from_images(images, kernel, y, ssim_weight=0.5, **kw).data
    np.testing.assert_allclose(float(one), dis, rtol=1e-5)
    np.testing.assert_allclose(float(half), 0.5 * float(mse) + 0.5 * dis, rtol=1e-5)
    assert abs(float(one) - float(mse)) > 1e-3  # the two terms differ here


def test_grad_weight_adds_the_residual_differences():
    """The gradient term is the mean square of the residual's vertical and horizontal
    differences (per draw), times grad_weight; a constant offset of the residual costs
    nothing there, and 0 leaves the intensity term alone."""
    images = jax.random.uniform(jax.random.key(3), (2, 20, 20, 1))
    kernel = jnp.full((5, 5), 1 / 25)
    y = blur.valid_correlate(images[0], kernel) + 0.1 * jax.random.normal(
        jax.random.key(4), (16, 16, 1)
    )
    kw = dict(mu=0.0, blur_method="direct")
    mse = float(loss.loss_from_images(images, kernel, y, **kw).data)
    both = float(loss.loss_from_images(images, kernel, y, grad_weight=0.5, **kw).data)
    r = np.stack([np.asarray(blur.valid_correlate(x, kernel, "direct") - y) for x in images])
    grad = np.mean(np.diff(r, axis=1) ** 2) + np.mean(np.diff(r, axis=2) ** 2)
    np.testing.assert_allclose(mse, np.mean(r**2), rtol=1e-5)  # weight 0: squares only
    np.testing.assert_allclose(both, mse + 0.5 * grad, rtol=1e-5)
    exact = blur.valid_correlate(images[0], kernel)
    shifted = float(
        loss.loss_from_images(images[:1], kernel, exact + 0.3, grad_weight=1.0, **kw).data
    )
    np.testing.assert_allclose(shifted, 0.09, rtol=1e-4)  # the offset's square, no gradient
