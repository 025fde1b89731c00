import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv import config as config_lib
from jaxdeconv.bench import synthetic
from jaxdeconv.core import train


def _problem(cfg, size=24, seed=0):
    ex = synthetic.make_example(size, size, cfg.kernel_size, seed=seed)
    return jnp.asarray(ex.blurry)


def _run(cfg, y, key, steps):
    spec = train.build_spec(cfg, tuple(y.shape))
    key_state, key_loop = jax.random.split(key)
    state = train.init_state(spec, key_state)
    step = train.make_train_step(spec)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, y, key_loop)
        losses.append(metrics["loss"])
    return spec, state, np.asarray(jax.device_get(losses))


@pytest.mark.parametrize("scheme", ["alternating", "joint"])
def test_training_reduces_loss(tiny_config, scheme):
    tiny_config.scheme = scheme
    y = _problem(tiny_config)
    _, state, losses = _run(tiny_config, y, jax.random.key(0), 40)
    assert int(state.step) == 40
    assert losses[-5:].mean() < 0.5 * losses[:5].mean()


def test_same_seed_identical_different_key_differs(tiny_config):
    y = _problem(tiny_config)
    _, s1, l1 = _run(tiny_config, y, jax.random.key(3), 5)
    _, s2, l2 = _run(tiny_config, y, jax.random.key(3), 5)
    _, s3, l3 = _run(tiny_config, y, jax.random.key(4), 5)
    np.testing.assert_array_equal(l1, l2)
    for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(s2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(l1, l3)


def test_step_key_depends_on_step_not_host_state(tiny_config):
    """Resuming from a saved state, with a freshly built spec and step (as a new process
    would), reproduces the uninterrupted run; and the draws follow ``state.step``."""
    y = _problem(tiny_config)
    key = jax.random.key(1)

    def fresh_step():
        spec = train.build_spec(tiny_config, tuple(y.shape))
        return spec, jax.jit(lambda s, y, k: train.train_step(spec, s, y, k))

    spec, step = fresh_step()
    state = train.init_state(spec, jax.random.key(0))
    losses = []
    for i in range(6):
        state, m = step(state, y, key)
        losses.append(float(m["loss"]))
        if i == 2:
            saved = jax.device_get(state)
    _, step2 = fresh_step()
    resumed = jax.device_put(saved)
    resumed_losses = []
    for _ in range(3):
        resumed, m = step2(resumed, y, key)
        resumed_losses.append(float(m["loss"]))
    assert resumed_losses == losses[3:]
    for a, b in zip(
        jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(resumed), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # The same weights at another step number draw other noise and dropout: other loss.
    shifted = jax.device_put(saved).replace(step=saved.step + 7)
    _, m_shifted = step2(shifted, y, key)
    assert float(m_shifted["loss"]) != losses[3]


def test_schedules_cross_switch_points_without_recompiling(tiny_config):
    tiny_config.num_steps = 10  # switches at steps 3, 6 and 7
    y = _problem(tiny_config)
    spec = train.build_spec(tiny_config, tuple(y.shape))
    traces = []

    def counted(state, y, key):
        traces.append(1)
        return train.train_step(spec, state, y, key)

    step = jax.jit(counted)
    state = train.init_state(spec, jax.random.key(0))
    rates = []
    for _ in range(10):
        state, metrics = step(state, y, jax.random.key(1))
        rates.append(float(metrics["dropout_rate"]))
    assert len(traces) == 1
    assert rates[2] == pytest.approx(0.3) and rates[3] == pytest.approx(0.001)


def test_vmap_over_images_equals_one_by_one(tiny_config):
    ys = jnp.stack([_problem(tiny_config, seed=s) for s in (0, 1)])
    keys = jax.random.split(jax.random.key(0), 2)
    spec = train.build_spec(tiny_config, tuple(ys.shape[1:]))
    states = jax.vmap(lambda k: train.init_state(spec, k))(keys)
    batched = jax.jit(jax.vmap(lambda s, y, k: train.train_step(spec, s, y, k)))
    single = jax.jit(lambda s, y, k: train.train_step(spec, s, y, k))
    singles = [train.init_state(spec, k) for k in keys]
    for _ in range(3):
        states, mb = batched(states, ys, keys)
        outs = [single(s, y, k) for s, y, k in zip(singles, ys, keys, strict=True)]
        singles = [o[0] for o in outs]
    # vmapped convolutions sum in another order; Adam's normalised steps carry those float32
    # differences (seen up to 3e-4 relative after 3 steps), so compare at 1e-3.
    for i in range(2):
        np.testing.assert_allclose(mb["loss"][i], outs[i][1]["loss"], rtol=1e-3)
        np.testing.assert_allclose(
            train.kernel_estimate(spec, jax.tree_util.tree_map(lambda a, i=i: a[i], states)),
            train.kernel_estimate(spec, singles[i]),
            rtol=1e-3,
            atol=1e-6,
        )


def test_outputs_inference_deterministic_and_kernel_valid(tiny_config):
    y = _problem(tiny_config)
    spec, state, _ = _run(tiny_config, y, jax.random.key(0), 3)
    a = train.image_estimate(spec, state)
    b = train.image_estimate(spec, state)
    np.testing.assert_array_equal(a, b)
    assert a.shape == y.shape
    k = train.kernel_estimate(spec, state)
    assert k.shape == (tiny_config.kernel_size,) * 2
    assert float(k.min()) >= 0 and abs(float(k.sum()) - 1) < 1e-5
    mean, std = train.sample_statistics(spec, state, jax.random.key(2), 4, 0.05, 0.3)
    assert mean.shape == std.shape == y.shape
    assert float(std.mean()) > 0


@pytest.mark.parametrize("bad,match", [(4, "odd"), (0, "odd"), (-3, "odd"), (41, "smaller")])
def test_bad_kernel_sizes_rejected(tiny_config, bad, match):
    tiny_config.kernel_size = bad
    with pytest.raises(ValueError, match=match):
        train.build_spec(tiny_config, (32, 32, 1))


def test_half_step_keys_shared_or_independent():
    key = jax.random.key(5)
    key_k, key_x = train.half_step_keys(key, shared_draw=True)
    assert key_k is key and key_x is key
    key_k, key_x = train.half_step_keys(key, shared_draw=False)
    assert not np.array_equal(jax.random.key_data(key_k), jax.random.key_data(key_x))


@pytest.mark.parametrize("shared", [True, False])
def test_alternating_step_uses_one_draw_for_both_half_steps(tiny_config, shared):
    """Rebuilds one alternating iteration by hand from the loss: with ``shared_draw`` both
    half-steps use the step's key (the same eps_t and M_t), otherwise two split keys."""
    from jaxdeconv.core import loss as loss_lib

    tiny_config.scheme = "alternating"
    tiny_config.shared_draw = shared
    y = _problem(tiny_config)
    spec = train.build_spec(tiny_config, tuple(y.shape))
    state = train.init_state(spec, jax.random.key(0))
    key = jax.random.key(1)
    new_state, metrics = jax.jit(lambda s: train.train_step(spec, s, y, key))(state)

    step_key = jax.random.fold_in(key, state.step)
    split_keys = tuple(jax.random.split(step_key))
    key_k, key_x = (step_key, step_key) if shared else split_keys

    def total(px, pk, k):
        return loss_lib.mc_loss(
            px,
            pk,
            y,
            state.zx,
            state.zk,
            k,
            image_net=spec.image_net,
            kernel_net=spec.kernel_net,
            num_draws=spec.num_draws,
            noise_std=spec.noise(0),
            dropout_rate=spec.dropout(0),
            mu=spec.mu,
            data_term=spec.data_term,
        ).total

    total = jax.jit(total)

    # Kernel half-step: one Adam step on the loss with key_k. (Adam's first step is about
    # lr * sign(g), so rounding-level gradients may differ by up to ~lr; a wrong key moves
    # most entries.)
    @jax.jit  # jitted like the step itself (eager, this test took over a minute)
    def kernel_params(k):
        g_k = jax.grad(total, argnums=1)(state.params_x, state.params_k, k)
        upd_k, _ = spec.tx_k.update(g_k, state.opt_k, state.params_k)
        return jax.tree_util.tree_map(lambda p, u: p + u, state.params_k, upd_k)

    def kernel_step(k):
        return np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(kernel_params(k))])

    got = np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(new_state.params_k)])
    assert np.mean(np.abs(got - kernel_step(key_k)) > 1e-5) < 0.01
    assert np.mean(np.abs(got - kernel_step(split_keys[1])) > 1e-5) > 0.2
    # Image half-step: its reported loss is the loss with key_x against the new kernel.
    # (Comparing its Adam step instead is fragile: biases before instance norm have gradients
    # at rounding level, whose sign Adam's first step amplifies to the full learning rate.)
    loss_x = float(total(state.params_x, new_state.params_k, key_x))
    np.testing.assert_allclose(float(metrics["loss"]), loss_x, rtol=1e-5)
    other = split_keys[1] if shared else step_key
    assert abs(float(total(state.params_x, new_state.params_k, other)) - loss_x) > 1e-6 * loss_x


def test_noise_level_switch_lies_between_levin_and_lai_kernels():
    from jaxdeconv import config as config_lib

    cfg = config_lib.paper()
    levels = {}
    for k in (13, 23, 27, 31, 75):
        cfg.kernel_size = k
        levels[k] = train.initial_noise_std(cfg)
    assert levels[13] == levels[23] == levels[27] == 0.01  # Levin: "small kernel size"
    assert levels[31] == levels[75] == 0.05  # Lai: "large"


def test_kernel_dropout_schedule_and_data_term_are_wired(tiny_config):
    tiny_config.num_steps = 5000
    spec = train.build_spec(tiny_config, (24, 24, 1))
    assert float(spec.kernel_dropout(1499)) == pytest.approx(0.1)
    assert float(spec.kernel_dropout(1500)) == pytest.approx(0.001)
    assert float(spec.dropout(0)) == pytest.approx(0.3)
    tiny_config.data_term = "median"
    with pytest.raises(ValueError, match="data_term"):
        train.build_spec(tiny_config, (24, 24, 1))


def test_ssim_switch_changes_the_loss_at_its_step(tiny_config):
    """``ssim_after``: the step's data term is the squared error before it, 1 - SSIM after."""
    y = _problem(tiny_config)
    plain = train.build_spec(tiny_config, tuple(y.shape))
    switched = plain._replace(ssim_after=2)
    assert train.ssim_weight(plain, jnp.int32(5)) == 0.0
    assert [float(train.ssim_weight(switched, jnp.int32(s))) for s in (0, 1, 2, 3)] == [0, 0, 1, 1]
    state = train.init_state(plain, jax.random.key(0))
    key = jax.random.key(1)
    # Jitted without donation (the same state is reused); eager steps took over a minute.
    step_plain = jax.jit(functools.partial(train.train_step, plain))
    step_switched = jax.jit(functools.partial(train.train_step, switched))
    for s in (0, 1, 2):
        at = state.replace(step=jnp.int32(s))
        a = step_plain(at, y, key)[1]["data"]
        b = step_switched(at, y, key)[1]["data"]
        # Two programs: equal up to float rounding before the switch, another term after it.
        assert bool(np.isclose(float(a), float(b), rtol=1e-5, atol=0)) == (s < 2), (s, a, b)


def test_no_input_noise_at_the_start_means_none_later(tiny_config):
    tiny_config.noise.init = 0.0
    tiny_config.noise.boundaries, tiny_config.noise.levels = (0.7,), (0.001,)
    spec = train.build_spec(tiny_config, (24, 24, 1))
    assert float(spec.noise(0)) == 0.0 and float(spec.noise(tiny_config.num_steps - 1)) == 0.0
    tiny_config.noise.init = 0.05
    spec = train.build_spec(tiny_config, (24, 24, 1))
    assert float(spec.noise(0)) == pytest.approx(0.05)
    assert float(spec.noise(tiny_config.num_steps - 1)) == pytest.approx(0.001)


def test_grad_weight_reaches_the_step_loss(tiny_config):
    """``grad_weight`` from the config reaches the spec and raises the step's data term
    (the residual's differences are added to its squares)."""
    y = _problem(tiny_config)
    plain = train.build_spec(tiny_config, tuple(y.shape))
    assert plain.grad_weight == 0.0
    tiny_config.grad_weight = 0.5
    weighted = train.build_spec(tiny_config, tuple(y.shape))
    assert weighted.grad_weight == 0.5
    key = jax.random.key(1)
    # The weight is a value of the state (train.Hyper): each spec's own state, the same draws.
    state = train.init_state(plain, jax.random.key(0))
    a = jax.jit(functools.partial(train.train_step, plain))(state, y, key)[1]["data"]
    state = train.init_state(weighted, jax.random.key(0))
    assert float(state.hyper.grad_weight) == 0.5
    b = jax.jit(functools.partial(train.train_step, weighted))(state, y, key)[1]["data"]
    assert float(b) > float(a) > 0.0


def test_hold_k_keeps_the_kernel_for_its_share_of_the_steps(tiny_config):
    tiny_config.num_steps = 8
    tiny_config.optim.hold_k = 0.5
    y = _problem(tiny_config)
    spec = train.build_spec(tiny_config, tuple(y.shape))
    state = train.init_state(spec, jax.random.key(0))
    start_k = jax.device_get(state.params_k)
    start_x = jax.device_get(state.params_x)
    step = train.make_train_step(spec)
    kernels = []
    for _ in range(8):
        state, _ = step(state, y, jax.random.key(1))
        kernels.append(jax.device_get(state.params_k))
    same = [
        all(
            np.array_equal(a, b)
            for a, b in zip(
                jax.tree_util.tree_leaves(k), jax.tree_util.tree_leaves(start_k), strict=True
            )
        )
        for k in kernels
    ]
    assert same == [True] * 4 + [False] * 4
    moved_x = jax.tree_util.tree_leaves(jax.device_get(state.params_x))
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(moved_x, jax.tree_util.tree_leaves(start_x), strict=True)
    )


def test_a_spec_that_disagrees_with_the_config_or_itself_is_refused_before_compiling():
    import jaxdeconv

    cfg5, cfg7 = config_lib.tiny(), config_lib.tiny()
    cfg7.kernel_size = 7
    y = np.full((24, 24), 0.5, np.float32)
    spec7 = train.build_spec(cfg7, (24, 24, 1))
    for entry in (jaxdeconv.deblur, jaxdeconv.deblur_image):
        with pytest.raises(ValueError, match="built for 7x7 kernels but config.kernel_size is 5"):
            entry(y, cfg5, spec=spec7)
    if isinstance(getattr(spec7.kernel_net, "kernel_size", None), int):  # tiny: Ren's MLP
        with pytest.raises(ValueError, match="kernel net makes 7x7 kernels but spec.kernel_size"):
            train.check_spec(spec7._replace(kernel_size=5))
    with pytest.raises(ValueError, match=r"zx_shape \(24, 24, 8\) does not fit"):
        train.check_spec(spec7._replace(zx_shape=(24, 24, 8)))
    with pytest.raises(ValueError, match="zk_shape"):
        train.check_spec(spec7._replace(zk_shape=(5, 5, 8)))
    train.check_spec(spec7, cfg7)  # agreeing: no error
