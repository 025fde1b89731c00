r"""Compile time, time per training step, GFLOP per step and GFLOP/s for presets.

  python benchmarks/step_time.py --presets=paper,fast --size=255 --kernel_size=27 --steps=5

GFLOP come from XLA's cost analysis of the compiled step (multiply-add = 2 FLOP).
"""

import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxdeconv import config as config_lib
from jaxdeconv.core import train
from jaxdeconv.run import runtime

_PRESETS = flags.DEFINE_list("presets", ["paper", "fast"], "Presets to time.")
_SIZE = flags.DEFINE_integer("size", 255, "Blurry image side (H = W).")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 27, "Kernel size K.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (after one warm-up step).")
_SCHEME = flags.DEFINE_string("scheme", None, "Override the preset's update scheme.")
_CACHE = flags.DEFINE_bool("cache", False, "Use the persistent compilation cache.")


def time_preset(name: str, size: int, kernel_size: int, steps: int, scheme=None) -> dict:
    cfg = config_lib.PRESETS[name]()
    cfg.kernel_size = kernel_size
    if scheme:
        cfg.scheme = scheme
    y = jnp.asarray(np.random.default_rng(0).uniform(size=(size, size, 1)), jnp.float32)
    spec = train.build_spec(cfg, tuple(y.shape))
    state = jax.jit(lambda k: train.init_state(spec, k))(jax.random.key(0))
    key = jax.random.key(1)
    step = jax.jit(lambda s, y, k: train.train_step(spec, s, y, k), donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, y, key).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    gflop = float(cost.get("flops", float("nan"))) / 1e9
    state, m = compiled(state, y, key)  # warm-up
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, y, key)
    jax.block_until_ready(m)
    per_step = (time.perf_counter() - t0) / steps
    return dict(
        preset=name,
        scheme=cfg.scheme,
        size=size,
        kernel_size=kernel_size,
        compile_s=compile_s,
        step_s=per_step,
        gflop=gflop,
        gflops=gflop / per_step,
        num_steps=cfg.num_steps,
        run_s=compile_s + per_step * cfg.num_steps,
    )


def main(argv):
    del argv
    if _CACHE.value:
        runtime.enable_compilation_cache()
    dev = jax.devices()[0]
    print(
        f"# {time.strftime('%Y-%m-%d')}  backend={jax.default_backend()} device={dev.device_kind}"
        f"  host={platform.machine()} cpus={__import__('os').cpu_count()}"
    )
    print(
        "| preset | scheme | size | K | compile s | s/step | GFLOP/step | GFLOP/s |"
        " steps | est. s/image |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in _PRESETS.value:
        r = time_preset(name, _SIZE.value, _KERNEL_SIZE.value, _STEPS.value, _SCHEME.value)
        print(
            f"| {r['preset']} | {r['scheme']} | {r['size']} | {r['kernel_size']} | "
            f"{r['compile_s']:.1f} | {r['step_s']:.3f} | {r['gflop']:.1f} | "
            f"{r['gflops']:.1f} | {r['num_steps']} | {r['run_s']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
