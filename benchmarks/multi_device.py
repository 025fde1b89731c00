r"""Compile count and images/min of ``deblur_batch`` on 1 and on N local devices.

  python benchmarks/multi_device.py --devices=1,4 --batch=4 --size=32 --steps=20 --config=tiny

On a CPU the N devices are simulated (``--xla_force_host_platform_device_count``, set before
JAX starts): they share the same cores, so this checks correctness and overheads (compiles per
call, padding), not speed-ups; on a GPU host ``--devices`` counts real devices. Each device
count runs the same batch twice: the first call compiles (or loads from the persistent cache,
off here unless ``--persistent_cache``), the second must compile nothing. images/min is
``--batch`` images of ``--steps`` steps over the second call's wall time. ``--config``: a preset
name or a config file, with ``--config.FIELD=VALUE`` overrides (ml_collections config_flags).
"""

import os
import sys
import time

from absl import app, flags, logging

# Imports JAX but starts no backend: XLA_FLAGS set in main still take effect.
from jaxdeconv.app import launch

_DEVICES = flags.DEFINE_list("devices", ["1", "4"], "Device counts to compare.")
_BATCH = flags.DEFINE_integer("batch", 4, "Images per call (padded to a device multiple).")
_SIZE = flags.DEFINE_integer("size", 32, "Side of the square test images.")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps per image.")
_CONFIG = launch.define_config_flag("tiny", "Preset name (tiny, fast, paper) or a config file.")
_KERNEL_SIZE = flags.DEFINE_integer("kernel_size", None, "K (default: the preset's).")
_CACHE = flags.DEFINE_bool("persistent_cache", False, "Use the persistent compilation cache.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    wanted = max(int(d) for d in _DEVICES.value)
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={wanted}"
        ).strip()
    import jax  # after XLA_FLAGS: the simulated CPU devices exist only if set first

    from jaxdeconv.bench import synthetic
    from jaxdeconv.run import api, runner, runtime

    if not _CACHE.value:
        runtime.disable_compilation_cache()
    cfg = _CONFIG.value
    cfg.num_steps = _STEPS.value
    cfg.log_every = _STEPS.value
    if _KERNEL_SIZE.value:
        cfg.kernel_size = _KERNEL_SIZE.value
    k = cfg.kernel_size
    images = [
        synthetic.make_example(_SIZE.value, _SIZE.value, k, seed=s).blurry
        for s in range(_BATCH.value)
    ]
    keys = jax.random.split(jax.random.key(0), _BATCH.value)
    print(
        f"# {time.strftime('%Y-%m-%d')} backend={jax.default_backend()} "
        f"device={jax.devices()[0].device_kind} local_devices={len(jax.local_devices())} "
        f"config={launch.config_name()} size={_SIZE.value} K={k} steps={_STEPS.value} "
        f"batch={_BATCH.value}"
    )
    print(
        "| devices | padded batch | compiles, 1st call | compiles, 2nd call | 1st call s "
        "| 2nd call s | images/min (2nd) |"
    )
    print("|---|---|---|---|---|---|---|")
    reference = None
    for n in map(int, _DEVICES.value):
        if n > len(jax.local_devices()):
            print(f"| {n} | skipped: only {len(jax.local_devices())} local devices |", flush=True)
            continue
        timings, counts = [], []
        for _ in range(2):
            with runner.count_compilations() as compiled:
                t0 = time.perf_counter()
                results = api.deblur_batch(images, cfg, keys=keys, num_devices=n)
                timings.append(time.perf_counter() - t0)
            counts.append(len(compiled))
        kernels = [r.kernel for r in results]
        if reference is None:
            reference = kernels
        diff = max(float(abs(a - b).max()) for a, b in zip(kernels, reference, strict=True))
        rate = 60 * _BATCH.value / timings[1]
        print(
            f"| {n} | {runner.padded_size(_BATCH.value, n)} | {counts[0]} | {counts[1]} "
            f"| {timings[0]:.2f} | {timings[1]:.2f} | {rate:.1f} |"
            f"  <!-- max kernel difference to the first row: {diff:.1e} -->",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=launch.parse_flags))
