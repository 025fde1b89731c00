import functools

import jax
import numpy as np

import jaxdeconv
from jaxdeconv.bench import synthetic
from jaxdeconv.core import train
from jaxdeconv.run import runner


def test_second_call_of_a_shape_compiles_nothing(tiny_config):
    tiny_config.num_steps = 3
    a_img = synthetic.make_example(24, 24, 5, seed=0).blurry
    b_img = synthetic.make_example(24, 24, 5, seed=1).blurry
    runner.clear_cache()
    with runner.count_compilations() as first:
        a = jaxdeconv.deblur(a_img, tiny_config, key=jax.random.key(0))
    assert any("train_step" in n for n in first)  # the listener does see compiles
    tiny_config.seed = 7  # loop-only fields do not change the runner
    tiny_config.log_every = 2
    with runner.count_compilations() as second:
        a2 = jaxdeconv.deblur(a_img, tiny_config, key=jax.random.key(0))
        jaxdeconv.deblur(b_img, tiny_config, key=jax.random.key(1))
    assert second == []
    assert runner.stats == {"hits": 2, "misses": 1}
    fns = runner.get_runner(tiny_config, (24, 24, 1))
    assert fns.compiled_counts() == {"init": 1, "step": 1, "outputs": 1, "snapshot": 0}
    np.testing.assert_array_equal(a.kernel, a2.kernel)
    np.testing.assert_array_equal(a.image, a2.image)
    np.testing.assert_array_equal(a.std, a2.std)
    np.testing.assert_array_equal(a.loss_history, a2.loss_history)
    tiny_config.num_draws = 2  # a field of the model: a new runner
    assert runner.get_runner(tiny_config, (24, 24, 1)) is not fns
    assert runner.get_runner(tiny_config, (24, 32, 1)) is not fns


def test_pad_batch_and_sizes():
    xs = np.arange(6, dtype=np.float32).reshape(3, 2)
    padded = np.asarray(runner.pad_batch(xs, 4))
    np.testing.assert_array_equal(padded, [[0, 1], [2, 3], [4, 5], [4, 5]])
    assert [runner.padded_size(n, 4) for n in (1, 4, 5)] == [4, 4, 8]


def _step_with_weight(spec, state, y, key, weight=1.0):
    """A user's step: the library's, its loss reported times ``weight``."""
    state, metrics = train.train_step(spec, state, y, key)
    return state, {**metrics, "loss": weight * metrics["loss"]}


def test_equal_specs_and_recreated_steps_compile_once(tiny_config):
    """The cache is keyed by value: a spec built again (equal, not the same object) and a step
    re-created as an equal functools.partial reuse the first run's executables."""
    tiny_config.num_steps = 2
    img = synthetic.make_example(16, 16, 5, seed=0).blurry

    def fresh():
        spec = train.build_spec(tiny_config, img.shape)._replace(mu=2e-4)
        return spec, functools.partial(_step_with_weight, weight=2.0)

    runner.clear_cache()
    with runner.count_compilations() as first:
        spec, step = fresh()
        a = jaxdeconv.deblur(img, tiny_config, spec=spec, step=step)
    assert first  # the listener does see compiles
    with runner.count_compilations() as second:
        spec, step = fresh()
        b = jaxdeconv.deblur(img, tiny_config, spec=spec, step=step)
    assert second == []
    assert runner.stats == {"hits": 1, "misses": 1}
    np.testing.assert_array_equal(a.kernel, b.kernel)
    # A config and the spec built from it are one runner too; another value is another one.
    spec = train.build_spec(tiny_config, img.shape)
    assert runner.get_runner(tiny_config, img.shape) is runner.get_runner(
        tiny_config, img.shape, spec=spec
    )
    assert runner.get_runner(tiny_config, img.shape, spec=spec._replace(mu=3e-4)) is not (
        runner.get_runner(tiny_config, img.shape, spec=spec)
    )
