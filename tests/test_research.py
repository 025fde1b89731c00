"""The research API: own networks, steps and loss terms through the same loop, the spec as the
one source of truth, fixed inputs, the documented keys, results that continue, every metric
per step, checks at the boundary."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdeconv
from jaxdeconv import pipeline
from jaxdeconv.bench import synthetic
from jaxdeconv.core import loss as loss_lib
from jaxdeconv.core import plugins, schedules, train
from jaxdeconv.run import runner


class SoftmaxKernel(nn.Module):
    """A one-layer kernel net: Dense -> softmax over K*K."""

    kernel_size: int

    @nn.compact
    def __call__(self, z):
        logits = nn.Dense(self.kernel_size**2)(z)
        return jax.nn.softmax(logits).reshape(self.kernel_size, self.kernel_size)


def step_with_prior(spec, state, y, key, weight=1e-3):
    """A joint step whose loss adds a smoothness prior on the deterministic image."""

    def loss_fn(px, pk):
        terms = loss_lib.mc_loss(
            px, pk, y, state.zx, state.zk, key,
            image_net=spec.image_net, kernel_net=spec.kernel_net, num_draws=spec.num_draws,
            noise_std=spec.noise(state.step), dropout_rate=spec.dropout(state.step),
            mu=spec.mu,
        )  # fmt: skip
        x = spec.image_net.apply(px, state.zx, deterministic=True)
        prior = loss_lib.total_variation(x)
        return terms.total + weight * prior, (terms, prior)

    (total, (terms, prior)), (gx, gk) = jax.value_and_grad(loss_fn, (0, 1), has_aux=True)(
        state.params_x, state.params_k
    )
    ux, opt_x = spec.tx_x.update(gx, state.opt_x, state.params_x)
    uk, opt_k = spec.tx_k.update(gk, state.opt_k, state.params_k)
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
    spec = train.build_spec(tiny_config, blurry.shape)._replace(
        kernel_net=SoftmaxKernel(5), zk_shape=(4,)
    )
    result = jaxdeconv.deblur(blurry, tiny_config, spec=spec, step=step_with_prior)
    assert result.spec == spec
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
    """3 steps, then one more from the result's host state, spec and key == 4 steps."""
    blurry = synthetic.make_example(16, 16, 5, seed=2).blurry
    four = jaxdeconv.deblur(
        blurry, _constant_schedules(tiny_config.copy_and_resolve_references(), 4)
    )
    three = jaxdeconv.deblur(blurry, _constant_schedules(tiny_config, 3))
    assert all(isinstance(a, np.ndarray) for a in jax.tree_util.tree_leaves(three.state))
    # The run's own compiled step (it donates its state argument); any jitted
    # functools.partial(train.train_step, three.spec) does the same.
    step = runner.get_runner(tiny_config, blurry.shape).step
    assert runner.get_runner(tiny_config, blurry.shape).spec is three.spec
    state, metrics = step(three.state, jnp.asarray(blurry), three.key)
    assert int(state.step) == 4
    np.testing.assert_allclose(metrics["loss"], four.loss_history[-1], rtol=1e-5)
    np.testing.assert_allclose(train.kernel_estimate(three.spec, state), four.kernel, atol=1e-6)
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
        base = train.build_spec(cfg, y.shape)

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
            spec = base  # mu is a value of the state (train.Hyper), not of the spec
            state = train.with_hyperparameters(s0, mu=mu)
            state, _ = train.train_step(spec, state, y, jax.random.key(1))
            x = spec.image_net.apply(state.params_x, state.zx, deterministic=True)
            kernel = train.kernel_estimate(spec, state)
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


def _brightness(images, kernel, key, step):
    """An extra loss term of the user's: rewards bright draws."""
    return -jnp.mean(images), {}


def test_extra_loss_given_to_the_spec_builder_equals_the_registered_one(tiny_config):
    cfg = tiny_config
    cfg.num_steps = 3
    blurry = synthetic.make_example(16, 16, 5, seed=1).blurry
    spec = train.build_spec(cfg, blurry.shape, extra_losses=[("bright", 0.3, _brightness)])
    assert spec.extra_losses == (train.ExtraLoss("bright", 0.3, _brightness),)
    by_spec = jaxdeconv.deblur(blurry, cfg, spec=spec)
    plugins.register_loss_term("bright")(_brightness)
    try:
        named = cfg.copy_and_resolve_references()
        named.extra_loss.names, named.extra_loss.weights = ("bright",), (0.3,)
        by_name = jaxdeconv.deblur(blurry, named)
    finally:
        plugins.LOSS_TERMS.pop("bright", None)
    np.testing.assert_array_equal(by_spec.kernel, by_name.kernel)
    np.testing.assert_array_equal(by_spec.metrics["bright"], by_name.metrics["bright"])
    # A term of weight 0 is left out: the spec is the plain one.
    assert train.build_spec(cfg, blurry.shape, extra_losses=[("b", 0.0, _brightness)]) == (
        train.build_spec(cfg, blurry.shape)
    )
    with pytest.raises(ValueError, match="'loss' is taken"):
        train.build_spec(cfg, blurry.shape, extra_losses=[("loss", 1.0, _brightness)])


@pytest.mark.parametrize("scheme,randomize", [("alternating", "image"), ("joint", "both")])
def test_extra_loss_sees_the_draws_beside_the_papers_terms(tiny_config, scheme, randomize):
    """The term gets the N Monte-Carlo draws (uncropped) and the kernel (one per draw when the
    kernel net is sampled) of the configured scheme, and its key is none of the draws'."""
    cfg = tiny_config
    cfg.num_steps, cfg.num_draws, cfg.scheme, cfg.randomize = 2, 2, scheme, randomize
    cfg.tv_weight = 0.1
    seen = []

    def term(images, kernel, key, step):
        seen.append((images.shape, kernel.shape))
        return jnp.zeros(()), {}

    y = synthetic.make_example(16, 16, 5, seed=0).blurry
    spec = train.build_spec(cfg, y.shape, extra_losses=[term])
    result = jaxdeconv.deblur(y, cfg, spec=spec)
    kernel_shape = (2, 5, 5) if randomize == "both" else (5, 5)
    assert seen and set(seen) == {((2, 20, 20, 1), kernel_shape)}
    m = result.metrics
    assert np.all(m["tv"] > 0)  # the TV term is logged
    np.testing.assert_allclose(m["loss"], m["data"] + cfg.mu * m["kernel_norm"] + 0.1 * m["tv"])


def test_the_spec_is_the_one_source_of_kernel_size_and_schedules(tiny_config):
    """With spec=, the spec's kernel size and schedules are used everywhere (a K=5 spec with
    config.kernel_size=7 once gave a 30x30 image from a 32x32 input, later a 5x5 kernel without
    a word: now refused, naming both sizes); a spec built for another shape is refused; a
    builder builds each run's own."""
    cfg = tiny_config
    cfg.num_steps = 2
    blurry = synthetic.make_example(32, 32, 5, seed=0).blurry
    spec = train.build_spec(cfg, blurry.shape)._replace(
        dropout=schedules.piecewise_constant(0.125, (), ())
    )
    seven = cfg.copy_and_resolve_references()
    seven.kernel_size = 7
    with pytest.raises(ValueError, match="built for 5x5 kernels but config.kernel_size is 7"):
        jaxdeconv.deblur(blurry, seven, spec=spec)
    result = jaxdeconv.deblur(blurry, cfg, spec=spec)
    assert result.image.shape == (32, 32, 1) and result.kernel.shape == (5, 5)
    assert result.image_big.shape == (36, 36, 1)
    np.testing.assert_array_equal(result.metrics["dropout_rate"], [0.125, 0.125])
    with pytest.raises(ValueError, match=r"built for a blurry image of shape \(32, 32, 1\)"):
        jaxdeconv.deblur(blurry[:24, :24], cfg, spec=spec)
    calls = []

    def builder(config, shape):
        calls.append((config.kernel_size, shape))
        return train.build_spec(config, shape)

    built = jaxdeconv.deblur(blurry, seven, spec=builder)
    assert calls == [(7, (32, 32, 1))] and built.kernel.shape == (7, 7)
    assert built.image.shape == (32, 32, 1)


def test_fixed_inputs_can_be_set_at_init(tiny_config):
    tiny_config.num_steps = 2
    blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
    spec = train.build_spec(tiny_config, blurry.shape)
    key = jax.random.key(3)
    zx = jnp.full(spec.zx_shape, 0.05)
    zk = jnp.linspace(0.0, 0.1, int(np.prod(spec.zk_shape))).reshape(spec.zk_shape)
    drawn = train.init_state(spec, key)
    given = train.init_state(spec, key, zx=zx, zk=zk)
    np.testing.assert_array_equal(given.zx, zx)
    np.testing.assert_array_equal(given.zk, zk)
    # The other draws do not move: the same initial parameters.
    for a, b in zip(
        jax.tree_util.tree_leaves((drawn.params_x, drawn.params_k)),
        jax.tree_util.tree_leaves((given.params_x, given.params_k)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # fmt: skip
    result = jaxdeconv.deblur(blurry, tiny_config, key=key, zx=zx, zk=zk)
    np.testing.assert_array_equal(result.state.zx, zx)
    np.testing.assert_array_equal(result.state.zk, zk)
    assert not np.array_equal(result.kernel, jaxdeconv.deblur(blurry, tiny_config, key=key).kernel)
    with pytest.raises(ValueError, match="zx must have the spec's shape"):
        jaxdeconv.deblur(blurry, tiny_config, zx=jnp.zeros((3, 3, 8)))


def test_the_documented_keys_reproduce_deblur(tiny_config):
    """``deblur``'s docstring: key_state, key_loop, key_sample = split(key, 3); init_state
    from key_state (zx from its first quarter), every step with key_loop, the mean and the
    uncertainty from key_sample. Your own loop with those keys is the same run."""
    cfg = tiny_config
    cfg.num_steps = 3
    blurry = synthetic.make_example(16, 16, 5, seed=4).blurry
    key = jax.random.key(7)
    result = jaxdeconv.deblur(blurry, cfg, key=key)

    key_state, key_loop, key_sample = jax.random.split(key, 3)
    spec = train.build_spec(cfg, blurry.shape)
    state = jax.jit(lambda k: train.init_state(spec, k))(key_state)
    key_zx = jax.random.split(key_state, 4)[0]
    np.testing.assert_array_equal(
        state.zx, jax.random.uniform(key_zx, spec.zx_shape, maxval=spec.input_scale_x)
    )
    step = train.make_train_step(spec)
    y = jnp.asarray(blurry)
    for _ in range(cfg.num_steps):
        state, _ = step(state, y, key_loop)
    for a, b in zip(
        jax.tree_util.tree_leaves(jax.device_get(state)),
        jax.tree_util.tree_leaves(result.state),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # fmt: skip
    np.testing.assert_array_equal(jax.random.key_data(result.key), jax.random.key_data(key_loop))
    last = cfg.num_steps - 1
    mean, std = train.sample_statistics(
        spec, state, key_sample, cfg.sample.num_samples, spec.noise(last), spec.dropout(last)
    )
    np.testing.assert_allclose(std, result.std, atol=1e-6)
    np.testing.assert_allclose(mean, result.mean, atol=1e-6)
    np.testing.assert_allclose(train.kernel_estimate(spec, state), result.kernel, atol=1e-7)


def test_former_names_are_gone(tiny_config):
    """0.2 removed the deprecated aliases (CHANGELOG.md): each fails at once, naming itself."""
    gone = (
        (train, "Model"),
        (train, "build_model"),
        (jaxdeconv, "build_model"),
        (pipeline, "finish"),
    )
    for module, name in gone:
        with pytest.raises(AttributeError, match=name):
            getattr(module, name)
    assert not hasattr(runner.Runner, "model")
    assert "model" not in jaxdeconv.DeblurResult._fields
    blurry = synthetic.make_example(16, 16, 5, seed=0).blurry
    with pytest.raises(TypeError, match="model"):
        jaxdeconv.deblur(blurry, tiny_config, model=None)
