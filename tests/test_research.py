"""The research API: own networks and steps through the same loop, results that continue,
every metric per step, checks at the boundary."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdeconv
from jaxdeconv.bench import synthetic
from jaxdeconv.core import loss as loss_lib
from jaxdeconv.core import train
from jaxdeconv.run import runner


class SoftmaxKernel(nn.Module):
    """A one-layer kernel net: Dense -> softmax over K*K."""

    kernel_size: int

    @nn.compact
    def __call__(self, z):
        logits = nn.Dense(self.kernel_size**2)(z)
        return jax.nn.softmax(logits).reshape(self.kernel_size, self.kernel_size)


def step_with_prior(model, state, y, key, weight=1e-3):
    """A joint step whose loss adds a smoothness prior on the deterministic image."""

    def loss_fn(px, pk):
        terms = loss_lib.mc_loss(
            px, pk, y, state.zx, state.zk, key,
            image_net=model.image_net, kernel_net=model.kernel_net, num_draws=model.num_draws,
            noise_std=model.noise(state.step), dropout_rate=model.dropout(state.step),
            mu=model.mu,
        )  # fmt: skip
        x = model.image_net.apply(px, state.zx, deterministic=True)
        prior = loss_lib.total_variation(x)
        return terms.total + weight * prior, (terms, prior)

    (total, (terms, prior)), (gx, gk) = jax.value_and_grad(loss_fn, (0, 1), has_aux=True)(
        state.params_x, state.params_k
    )
    ux, opt_x = model.tx_x.update(gx, state.opt_x, state.params_x)
    uk, opt_k = model.tx_k.update(gk, state.opt_k, state.params_k)
    new = state.replace(
        step=state.step + 1,
        params_x=jax.tree_util.tree_map(jnp.add, state.params_x, ux),
        params_k=jax.tree_util.tree_map(jnp.add, state.params_k, uk),
        opt_x=opt_x,
        opt_k=opt_k,
    )
    return new, {"loss": total, "data": terms.data, "prior": prior}


def test_own_kernel_net_and_step_through_the_loop(tiny_config):
    tiny_config.num_steps = 3
    tiny_config.log_every = 2
    blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
    model = train.build_model(tiny_config, blurry.shape)._replace(
        kernel_net=SoftmaxKernel(5), zk_shape=(4,)
    )
    result = jaxdeconv.deblur(blurry, tiny_config, model=model, step=step_with_prior)
    assert result.model is model
    assert set(result.metrics) == {"loss", "data", "prior"}
    for v in result.metrics.values():
        assert v.shape == (3,) and np.all(np.isfinite(v))
    np.testing.assert_array_equal(result.loss_history, result.metrics["loss"])
    assert np.all(result.metrics["loss"] > result.metrics["data"])  # the prior is in the loss
    assert result.kernel.shape == (5, 5) and abs(result.kernel.sum() - 1) < 1e-5
    assert result.state.params_k["params"]["Dense_0"]["kernel"].shape == (4, 25)


def _constant_schedules(cfg, steps):
    cfg.num_steps = steps
    cfg.dropout.boundaries, cfg.dropout.levels = (), ()
    cfg.noise.boundaries, cfg.noise.levels = (), ()
    cfg.optim.decay_boundaries = ()
    return cfg


def test_result_continues_where_it_stopped(tiny_config):
    """3 steps, then one more from the result's host state, model and key == 4 steps."""
    blurry = synthetic.make_example(16, 16, 5, seed=2).blurry
    four = jaxdeconv.deblur(
        blurry, _constant_schedules(tiny_config.copy_and_resolve_references(), 4)
    )
    three = jaxdeconv.deblur(blurry, _constant_schedules(tiny_config, 3))
    assert all(isinstance(a, np.ndarray) for a in jax.tree_util.tree_leaves(three.state))
    # The run's own compiled step (it donates its state argument); any jitted
    # functools.partial(train.train_step, three.model) does the same.
    step = runner.get_runner(tiny_config, blurry.shape).step
    assert runner.get_runner(tiny_config, blurry.shape).model is three.model
    state, metrics = step(three.state, jnp.asarray(blurry), three.key)
    assert int(state.step) == 4
    np.testing.assert_allclose(metrics["loss"], four.loss_history[-1], rtol=1e-5)
    np.testing.assert_allclose(train.kernel_estimate(three.model, state), four.kernel, atol=1e-6)
    # The result's state survived the donating step (it is a host copy).
    assert np.isfinite(np.asarray(jax.tree_util.tree_leaves(three.state)[0])).all()
    assert set(four.metrics) >= {"loss", "data", "kernel_norm", "noise_std", "dropout_rate"}


def test_batch_boundary_checks(tiny_config):
    images = [synthetic.make_example(16, 16, 5, seed=s).blurry for s in (0, 1)]
    with pytest.raises(ValueError, match=r"keys \[B\]"):
        jaxdeconv.deblur_batch(images, tiny_config, keys=jax.random.split(jax.random.key(0), 3))
    with pytest.raises(ValueError, match="jax.random.key"):
        jaxdeconv.deblur_batch(images, tiny_config, keys=np.zeros((2, 3), np.float32))


def test_hypergradient_through_training_matches_finite_differences(tiny_config):
    """d(data loss after a training step)/d(mu), forward mode, float64: finite (it was NaN
    with Adam's eps_root = 0, from sqrt(v) at v = 0) and equal to central differences."""
    cfg = tiny_config
    cfg.num_steps, cfg.kernel_size, cfg.num_draws = 1, 3, 1
    cfg.image_net.channels, cfg.image_net.skip_channels = (4, 8), (2, 2)
    cfg.image_net.input_channels, cfg.kernel_net.input_channels = 2, 4
    cfg.kernel_net.hidden = 16
    with jax.enable_x64(True):
        y = jnp.asarray(synthetic.make_example(8, 8, 3, seed=0).blurry, jnp.float64)
        base = train.build_model(cfg, y.shape)

        def f64(tree):
            return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)

        s0 = train.init_state(base, jax.random.key(0))
        params_x, params_k = f64(s0.params_x), f64(s0.params_k)
        s0 = s0.replace(
            params_x=params_x,
            params_k=params_k,
            opt_x=base.tx_x.init(params_x),
            opt_k=base.tx_k.init(params_k),
            zx=f64(s0.zx),
            zk=f64(s0.zk),
        )

        def data_loss_after_training(mu):
            model = base._replace(mu=mu)
            state, _ = train.train_step(model, s0, y, jax.random.key(1))
            x = model.image_net.apply(state.params_x, state.zx, deterministic=True)
            kernel = train.kernel_estimate(model, state)
            return loss_lib.loss_from_images(x[None], kernel, y, mu=0.0).data

        value_and_tangent = jax.jit(
            lambda mu: jax.jvp(data_loss_after_training, (mu,), (jnp.ones_like(mu),))
        )
        mu, h = 1e-4, 1e-7
        grad = float(value_and_tangent(jnp.float64(mu))[1])
        plus = float(value_and_tangent(jnp.float64(mu + h))[0])
        minus = float(value_and_tangent(jnp.float64(mu - h))[0])
    assert np.isfinite(grad) and grad != 0
    np.testing.assert_allclose(grad, (plus - minus) / (2 * h), rtol=1e-3)
