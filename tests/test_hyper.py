"""Hyper-parameters as traced values (core.train.Hyper, core.optim's injected rate): a vmapped
sweep compiles the step once and matches separate runs, gradients reach them, errors at the
door."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv import config as config_lib
from jaxdeconv.app import example
from jaxdeconv.core import optim, train

LRS = (2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 7e-3, 1e-2)


def _setup(steps=30, **fields):
    c = config_lib.tiny()
    c.num_steps = steps
    for k, v in fields.items():
        c[k] = v
    y = jnp.asarray(example.make(size=16, kernel_size=c.kernel_size).blurry)
    return c, y


def _run_separately(c, y, lr, steps):
    """A run as any user makes it: the spec built from a config with that ``lr_x``."""
    c = c.copy_and_resolve_references()
    c.optim.lr_x = lr
    spec = train.build_spec(c, y.shape)
    state = train.init_state(spec, jax.random.key(0))
    step = train.make_train_step(spec)
    for _ in range(steps):
        state, _ = step(state, y, jax.random.key(1))
    return train.kernel_estimate(spec, state)


def test_vmapped_sweep_compiles_once_and_matches_separate_runs():
    # 10 steps: the vmapped step sums in another order than the single one (grouped
    # convolutions), and Adam's normalised steps amplify those float32 roundings: measured on
    # this image, within 1.2e-7 after 10 steps, up to 1.8e-4 after 30 at lr_x = 1e-2.
    steps = 10
    c, y = _setup(steps)
    spec = train.build_spec(c, y.shape)  # one spec: the rates are values of the state
    base = train.init_state(spec, jax.random.key(0))
    states = jax.vmap(lambda lr: train.with_hyperparameters(base, lr_x=lr))(jnp.asarray(LRS))
    step = jax.jit(jax.vmap(functools.partial(train.train_step, spec), in_axes=(0, None, None)))
    for _ in range(steps):
        states, metrics = step(states, y, jax.random.key(1))
    assert step._cache_size() == 1  # one program for the whole grid
    kernels = jax.vmap(functools.partial(train.kernel_estimate, spec))(states)
    np.testing.assert_allclose(train.hyperparameters(states)["lr_x"], LRS, rtol=1e-7)
    for i, lr in enumerate(LRS):
        np.testing.assert_allclose(kernels[i], _run_separately(c, y, lr, steps), atol=1e-5)
    # the rates changed the runs: the grid's kernels are not all one
    assert float(jnp.max(jnp.abs(kernels[0] - kernels[-1]))) > 1e-3


def test_a_state_rate_is_bit_identical_to_a_config_rate():
    c, y = _setup(5)
    c2 = c.copy_and_resolve_references()
    c2.optim.lr_x, c2.mu = 3e-3, 2e-3
    s1, s2 = train.build_spec(c, y.shape), train.build_spec(c2, y.shape)
    a = train.with_hyperparameters(train.init_state(s1, jax.random.key(0)), lr_x=3e-3, mu=2e-3)
    b = train.init_state(s2, jax.random.key(0))
    for _ in range(5):
        a, _ = train.train_step(s1, a, y, jax.random.key(1))
        b, _ = train.train_step(s2, b, y, jax.random.key(1))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_defaults_come_from_the_config():
    c, y = _setup(10, mu=3e-4)
    c.optim.lr_k = 4e-4
    spec = train.build_spec(c, y.shape)
    h = train.hyperparameters(train.init_state(spec, jax.random.key(0)))
    assert float(h["lr_x"]) == pytest.approx(c.optim.lr_x)
    assert float(h["lr_k"]) == pytest.approx(4e-4)
    assert float(h["mu"]) == pytest.approx(3e-4)
    np.testing.assert_allclose(h["dropout"], spec.dropout.levels)
    np.testing.assert_allclose(h["noise"], spec.noise.levels)


def _final_loss(spec, y, steps, lr, state):
    state = train.with_hyperparameters(state, lr_x=lr)
    state, _ = train.unrolled(spec, state, y, jax.random.key(1), steps)
    _, metrics = train.train_step(spec, state, y, jax.random.key(2))  # the loss at the end
    return metrics["loss"]


def _as_float64(tree):
    def cast(a):
        a = jnp.asarray(a)
        return a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree.map(cast, tree)


def test_gradient_of_an_unrolled_run_matches_a_float64_central_difference():
    steps, lr = 20, 2e-3
    c, y = _setup(steps)
    spec = train.build_spec(c, y.shape)
    with jax.enable_x64(True):  # a context: nothing process-wide changes
        state = _as_float64(train.init_state(spec, jax.random.key(0)))
        y64 = y.astype(jnp.float64)
        f = jax.jit(functools.partial(_final_loss, spec, y64, steps))
        grad = float(jax.grad(f)(jnp.float64(lr), state))
        # The loss is rough on the scale of 1e-5 * lr (float64 rounding in 20 steps of Adam);
        # from 1e-6 * lr down to 1e-10 * lr the central difference is steady and equals the
        # gradient.
        h = 1e-8 * lr
        central = (float(f(jnp.float64(lr + h), state)) - float(f(jnp.float64(lr - h), state))) / (
            2 * h
        )
    assert np.isfinite(grad) and abs(grad) > 0
    assert grad == pytest.approx(central, rel=1e-2)
    # in float32, as runs train, the same gradient is there and finite
    g32 = jax.jit(jax.grad(functools.partial(_final_loss, spec, y, steps)))(
        jnp.float32(lr), train.init_state(spec, jax.random.key(0))
    )
    assert np.isfinite(float(g32))


def test_vmap_over_mu_and_schedule_levels_shares_one_program():
    c, y = _setup(4)
    spec = train.build_spec(c, y.shape)
    base = train.init_state(spec, jax.random.key(0))
    n = len(spec.dropout.levels)

    def make(mu, rate):
        return train.with_hyperparameters(base, mu=mu, dropout=jnp.full((n,), rate))

    states = jax.vmap(make)(jnp.asarray([0.0, 1.0]), jnp.asarray([0.0, 0.5]))
    step = jax.jit(jax.vmap(functools.partial(train.train_step, spec), in_axes=(0, None, None)))
    states, metrics = step(states, y, jax.random.key(1))
    np.testing.assert_allclose(metrics["dropout_rate"], [0.0, 0.5])
    assert float(metrics["loss"][1]) > float(metrics["loss"][0])  # mu = 1 weighs the kernel
    assert step._cache_size() == 1


def test_extra_loss_weights_are_traced():
    # joint: the step's loss is that of one set of parameters, so linear in the weight
    c, y = _setup(2, scheme="joint")
    c.extra_loss.names = ("kernel_centre",)
    c.extra_loss.weights = (1.0,)
    spec = train.build_spec(c, y.shape)
    base = train.init_state(spec, jax.random.key(0))
    losses = []
    for w in (0.0, 1.0, 10.0):
        state = train.with_hyperparameters(base, extra_weights=(w,))
        losses.append(float(train.train_step(spec, state, y, jax.random.key(1))[1]["loss"]))
    assert losses[0] < losses[1] < losses[2] or losses[0] == losses[1] == losses[2] == 0
    assert losses[2] - losses[0] == pytest.approx(10 * (losses[1] - losses[0]), rel=1e-3)


def test_bad_hyperparameters_are_refused():
    c, y = _setup(2)
    spec = train.build_spec(c, y.shape)
    state = train.init_state(spec, jax.random.key(0))
    with pytest.raises(ValueError, match="unknown hyper-parameters.*lr_z"):
        train.with_hyperparameters(state, lr_z=1.0)
    with pytest.raises(ValueError, match="dropout needs shape"):
        train.with_hyperparameters(state, dropout=jnp.zeros(7))
    with pytest.raises(ValueError, match="extra_weights needs one weight per"):
        train.with_hyperparameters(state, extra_weights=(1.0,))
    with pytest.raises(ValueError, match="a learning rate is a scalar"):
        optim.with_learning_rate(state.opt_x, jnp.zeros(2))
