r"""A hyper-parameter sweep in one compiled program, on the built-in example.

  python experiments/sweep.py --config=tiny --lr_x=1e-3,2e-3,5e-3,1e-2 --num_steps=200

Every combination of the values given (``--lr_x``, ``--lr_k``, ``--mu``; a flag left out keeps
the config's value) trains on the built-in example (its kernel drawn at the config's kernel
size, so the estimate can be scored), all combinations at once: the hyper-parameters are traced
values of the train state (``train.with_hyperparameters``), so one ``jax.vmap`` of the train
step over the grid compiles once. ``--hypergrad_steps=N`` also prints, per combination, the
gradient of the loss after an N-step unrolled run (``train.unrolled``, a ``lax.scan``) with
respect to ``lr_x``: ``jax.grad`` through training, no spec rebuilt. One line per
combination, then, last, ``train-step compilations: N`` (executables of the vmapped step).
"""

import functools
import itertools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxdeconv.app import example, launch
from jaxdeconv.classical import diagnose, metrics
from jaxdeconv.core import train
from jaxdeconv.run import runtime

_CONFIG = launch.define_config_flag("tiny", "A preset name or a configs/*.py file.")
_LR_X = flags.DEFINE_list("lr_x", [], "Image-net learning rates to sweep.")
_LR_K = flags.DEFINE_list("lr_k", [], "Kernel-net learning rates to sweep.")
_MU = flags.DEFINE_list("mu", [], "Kernel-norm weights to sweep.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps (default: the config's).")
_SIZE = flags.DEFINE_integer("size", 64, "Side of the example image in pixels.")
_HYPERGRAD = flags.DEFINE_integer(
    "hypergrad_steps", 0, "Also print d(loss after N unrolled steps)/d(lr_x); 0: no."
)

SWEPT = ("lr_x", "lr_k", "mu")


def grid(values: dict[str, list[float]]) -> list[dict[str, float]]:
    """Every combination of the listed values (names with no values are left out)."""
    names = [n for n in SWEPT if values.get(n)]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(values[n] for n in names))
    ]


def _floats(name: str, items: list[str]) -> list[float]:
    try:
        return [float(v) for v in items]
    except ValueError as e:
        raise ValueError(f"--{name} takes comma-separated numbers, got {','.join(items)!r}") from e


def main(argv):
    del argv
    config = _CONFIG.value  # --config.FIELD=VALUE checked at parse time (launch.parse_flags)
    try:
        values = {
            "lr_x": _floats("lr_x", _LR_X.value),
            "lr_k": _floats("lr_k", _LR_K.value),
            "mu": _floats("mu", _MU.value),
        }
    except ValueError as e:
        print(f"sweep.py: {e}", file=sys.stderr)
        return 2
    runtime.enable_compilation_cache()
    num_steps = int(_NUM_STEPS.value or config.num_steps)
    config.num_steps = num_steps
    points = grid(values) or [{}]
    ex = example.make(size=_SIZE.value, kernel_size=int(config.kernel_size))
    y = jnp.asarray(ex.blurry)
    spec = train.build_spec(config, y.shape)
    base = train.init_state(spec, jax.random.key(config.seed))
    columns = {n: jnp.asarray([p[n] for p in points], jnp.float32) for n in points[0]}
    # jitted: fresh buffers, not views of ``columns`` (the step donates the states it trains)
    make_states = jax.jit(jax.vmap(lambda v: train.with_hyperparameters(base, **v)))
    states = make_states(columns)
    step = jax.jit(
        jax.vmap(functools.partial(train.train_step, spec), in_axes=(0, None, None)),
        donate_argnums=0,
    )
    loop_key = jax.random.key(config.seed + 1)
    for _ in range(num_steps):
        states, step_metrics = step(states, y, loop_key)
    losses = np.asarray(step_metrics["loss"])
    kernels = np.asarray(jax.vmap(functools.partial(train.kernel_estimate, spec))(states))
    images = np.asarray(jax.vmap(functools.partial(train.image_estimate, spec))(states))
    grads = None
    if _HYPERGRAD.value > 0:

        def final_loss(lr, state):
            state = train.with_hyperparameters(state, lr_x=lr)
            state, _ = train.unrolled(spec, state, y, loop_key, _HYPERGRAD.value)
            return train.train_step(spec, state, y, loop_key)[1]["loss"]

        lr0 = base.opt_x.hyperparams["learning_rate"]
        lrs = columns.get("lr_x", jnp.full((len(points),), lr0))
        grads = np.asarray(jax.jit(jax.vmap(jax.grad(final_loss)))(lrs, make_states(columns)))
    for i, p in enumerate(points):
        psnr = metrics.aligned_psnr_ssim(images[i, ..., 0], ex.sharp[..., 0])["psnr"]
        sim = diagnose.kernel_similarity(kernels[i], ex.kernel)
        shown = " ".join(f"{n}={v:g}" for n, v in p.items()) or "config"
        line = f"{shown}: loss {losses[i]:.5f}, network image {psnr:.2f} dB, kernel sim. {sim:.3f}"
        if grads is not None:
            line += f", d(loss after {_HYPERGRAD.value} steps)/d(lr_x) {grads[i]:.4g}"
        print(line)
    print(f"train-step compilations: {step._cache_size()}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
