r"""Direct vs FFT blur: forward + backward time per kernel size (sets FFT_MIN_KERNEL_SIZE).

python benchmarks/blur_crossover.py --size=255
"""

import time

import jax
import jax.numpy as jnp
from absl import app, flags

from jaxdeconv.core import blur

_SIZE = flags.DEFINE_integer("size", 255, "Output side (the generated image is size + K - 1).")
_KERNELS = flags.DEFINE_list("kernels", ["3", "5", "7", "9", "13", "19", "27", "51"], "K values.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed repetitions.")


def _time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats


def main(argv):
    del argv
    print(f"# backend={jax.default_backend()} size={_SIZE.value}")
    print("| K | direct ms | fft ms |")
    print("|---|---|---|")
    for k in map(int, _KERNELS.value):
        n = _SIZE.value + k - 1
        x = jax.random.uniform(jax.random.key(0), (n, n, 1))
        kern = jnp.full((k, k), 1.0 / k**2)
        row = []
        for method in ("direct", "fft"):
            f = jax.jit(
                jax.grad(
                    lambda x, kk, m=method: jnp.sum(blur.valid_correlate(x, kk, m) ** 2),
                    argnums=(0, 1),
                )
            )
            row.append(_time(f, x, kern, repeats=_REPEATS.value) * 1e3)
        print(f"| {k} | {row[0]:.2f} | {row[1]:.2f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
