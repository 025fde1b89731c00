r"""First-call compile time of the whole two-stage path, per preset, on this machine.

  python benchmarks/compile_time.py --presets=tiny,fast,paper --out=docs/compile_time.json

Each preset runs in a fresh Python process (nothing compiled in memory) without the persistent
compilation cache (``--cache_dir`` gives one: run twice to see a warm cache), on the built-in
example (``--size`` px, ``--kernel_size`` px blur), with ``--steps`` training steps so that the
time is compilation, not training. JAX's own monitoring events give the seconds spent tracing,
lowering and compiling, summed per jitted function; the second identical call in the same
process (everything compiled) is the reference that the first call's extra time is measured
against.
"""

import collections
import json
import os
import platform
import subprocess
import sys
import time

from absl import app, flags

_PRESETS = flags.DEFINE_list("presets", ["tiny", "fast", "paper"], "Presets to measure.")
_SIZE = flags.DEFINE_integer("size", 128, "Side of the example image.")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", 15, "Blur size of the example.")
_STEPS = flags.DEFINE_integer("steps", 2, "Training steps per call.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Persistent compilation cache (default: none).")
_OUT = flags.DEFINE_string("out", None, "Write the rows as JSON here.")
_ONE = flags.DEFINE_string("one", None, "(internal) measure this preset in this process.")

_PHASES = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "compile_s",
}


def measure(preset: str, size: int, kernel_size: int, steps: int, cache_dir) -> dict:
    """One preset in this process: wall seconds of the first and second call, compile phases."""
    import jax

    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    per_fun: dict = collections.defaultdict(float)
    totals: dict = collections.defaultdict(float)
    counting = {"on": True}

    def listen(event, duration, **kw):
        phase = _PHASES.get(event)
        if phase and counting["on"]:
            totals[phase] += duration
            if phase == "compile_s":
                totals["compilations"] += 1
            per_fun[kw.get("fun_name", "?")] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    from jaxdeconv import config as config_lib
    from jaxdeconv import pipeline
    from jaxdeconv.app import example

    ex = example.make(size, kernel_size, noise=0.01, seed=0)
    cfg = pipeline.with_kernel_size(config_lib.PRESETS[preset](), kernel_size)
    cfg.num_steps = steps
    cfg.log_every = 1
    t0 = time.perf_counter()
    pipeline.deblur_image(ex.blurry, cfg, key=jax.random.key(0))
    first = time.perf_counter() - t0
    counting["on"] = False
    t0 = time.perf_counter()
    pipeline.deblur_image(ex.blurry, cfg, key=jax.random.key(0))
    second = time.perf_counter() - t0
    top = sorted(per_fun.items(), key=lambda kv: -kv[1])[:8]
    return dict(
        preset=preset,
        size=size,
        kernel_size=kernel_size,
        steps=steps,
        first_call_s=round(first, 2),
        second_call_s=round(second, 2),
        first_call_extra_s=round(first - second, 2),
        **{k: round(v, 2) for k, v in totals.items()},
        slowest=[(name, round(s, 2)) for name, s in top],
        persistent_cache=bool(cache_dir),
        machine=f"{platform.machine()} {os.cpu_count()} cpus, {platform.processor()}",
        jax=jax.__version__,
    )


def main(argv):
    del argv
    if _ONE.value:
        row = measure(_ONE.value, _SIZE.value, _KERNEL_SIZE.value, _STEPS.value, _CACHE_DIR.value)
        print("ROW " + json.dumps(row), flush=True)
        return 0
    rows = []
    for preset in _PRESETS.value:
        cmd = [sys.executable, __file__, f"--one={preset}", f"--size={_SIZE.value}"]
        cmd += [f"--kernel_size={_KERNEL_SIZE.value}", f"--steps={_STEPS.value}"]
        if _CACHE_DIR.value:
            cmd.append(f"--cache_dir={_CACHE_DIR.value}")
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(next(ln for ln in out.splitlines() if ln.startswith("ROW "))[4:])
        row["process_s"] = round(time.perf_counter() - t0, 2)  # with Python and JAX start-up
        rows.append(row)
        print(json.dumps(row), flush=True)
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
