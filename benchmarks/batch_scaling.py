r"""Images per minute when training B images together with vmap, against one after another.

  python benchmarks/batch_scaling.py --config=fast --size=128 --kernel_size=27 --batches=1,2,4,8

Times --steps training steps after compilation and extrapolates to the config's step count
(the per-image extras, non-blind step and output writing, are not included). --config is a
preset name or a config file, with --config.FIELD=VALUE overrides (ml_collections
config_flags, as for experiments/benchmark.py).
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxdeconv.app import launch
from jaxdeconv.core import train

_CONFIG = launch.define_config_flag(
    "fast", "Preset name (fast, quality, paper, tiny) or a config file."
)
_SIZE = flags.DEFINE_integer("size", 128, "Side of the estimation image (fast: its crop).")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 27, "K.")
_BATCHES = flags.DEFINE_list("batches", ["1", "2", "4", "8"], "Batch sizes.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per measurement.")


def _time(step, state, y, key, steps):
    state, m = step(state, y, key)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, y, key)
    jax.block_until_ready(m)
    return (time.perf_counter() - t0) / steps


def main(argv):
    del argv
    cfg = _CONFIG.value
    cfg.kernel_size = _KERNEL_SIZE.value
    shape = (_SIZE.value, _SIZE.value, 1)
    spec = train.build_spec(cfg, shape)
    rng = np.random.default_rng(0)
    single = jax.jit(functools.partial(train.train_step, spec), donate_argnums=0)
    state = train.init_state(spec, jax.random.key(0))
    y = jnp.asarray(rng.uniform(size=shape), jnp.float32)
    t1 = _time(single, state, y, jax.random.key(1), _STEPS.value)
    print(
        f"# {time.strftime('%Y-%m-%d')} backend={jax.default_backend()} "
        f"device={jax.devices()[0].device_kind} config={launch.config_name()} "
        f"size={_SIZE.value} K={_KERNEL_SIZE.value} steps/image={cfg.num_steps}"
    )
    print("| B | strategy | s/step | images/min |")
    print("|---|---|---|---|")
    print(f"| 1 | one image at a time | {t1:.3f} | {60 / (t1 * cfg.num_steps):.2f} |", flush=True)
    batched = jax.jit(jax.vmap(functools.partial(train.train_step, spec)), donate_argnums=0)
    for b in map(int, _BATCHES.value):
        keys = jax.random.split(jax.random.key(0), b)
        states = jax.vmap(functools.partial(train.init_state, spec))(keys)
        ys = jnp.asarray(rng.uniform(size=(b, *shape)), jnp.float32)
        tb = _time(batched, states, ys, keys, _STEPS.value)
        print(f"| {b} | vmap | {tb:.3f} | {60 * b / (tb * cfg.num_steps):.2f} |", flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
