r"""New experiments from the public pieces, with no change to the library.

  python experiments/variants_demo.py --config=experiments/configs/tiny.py --config.num_steps=50

1. ``seed_ensemble``: the whole per-image run vmapped over seeds; the spread of the kernels
   says how stable the estimate is.
2. ``mu_sweep``: a train step written here from ``jaxdeconv.mc_loss`` with mu as a traced
   argument, vmapped over several values of mu in one compiled program.
3. ``zx_gradient``: ``jax.grad`` of the Monte-Carlo loss with respect to the fixed input zx
   (which pixels of the input code the image most strongly).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

import jaxdeconv
from jaxdeconv.app import launch
from jaxdeconv.bench import synthetic
from jaxdeconv.classical import metrics
from jaxdeconv.run import runtime


def _define_flags():
    # Defined only when run as a script, so importing the functions (as the tests do) adds
    # no global flags.
    launch.define_config_flag(
        "experiments/configs/tiny.py", "Config: a configs/*.py file or a preset name."
    )
    flags.DEFINE_integer("size", 32, "Side of the synthetic blurry image.")


def seed_ensemble(blurry, config, seeds):
    """Kernels ``[S, K, K]`` of independent runs, one per seed, trained in one vmapped loop."""
    y = jnp.asarray(blurry)
    spec = jaxdeconv.build_spec(config, tuple(y.shape))
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    split = jax.vmap(lambda k: jax.random.split(k))(keys)
    states = jax.jit(jax.vmap(functools.partial(jaxdeconv.init_state, spec)))(split[:, 0])
    step = jax.jit(jax.vmap(functools.partial(jaxdeconv.train_step, spec), (0, None, 0)))
    for _ in range(config.num_steps):
        states, _ = step(states, y, split[:, 1])
    return jax.vmap(functools.partial(jaxdeconv.kernel_estimate, spec))(states)


def mu_sweep(blurry, config, mus, key):
    """Kernels ``[M, K, K]``, one joint-update run per value of mu, vmapped over mu."""
    y = jnp.asarray(blurry)
    spec = jaxdeconv.build_spec(config, tuple(y.shape))
    tx = optax.adam(config.optim.lr_x), optax.adam(config.optim.lr_k)

    def loss(params, state, mu, k):
        return jaxdeconv.mc_loss(
            params[0],
            params[1],
            y,
            state.zx,
            state.zk,
            k,
            image_net=spec.image_net,
            kernel_net=spec.kernel_net,
            num_draws=config.num_draws,
            noise_std=spec.noise(state.step),
            dropout_rate=spec.dropout(state.step),
            mu=mu,
        ).total

    def step(state, mu):
        k = jax.random.fold_in(key, state.step)
        params = (state.params_x, state.params_k)
        g = jax.grad(loss)(params, state, mu, k)
        ux, ox = tx[0].update(g[0], state.opt_x)
        uk, ok = tx[1].update(g[1], state.opt_k)
        return state.replace(
            step=state.step + 1,
            params_x=optax.apply_updates(state.params_x, ux),
            params_k=optax.apply_updates(state.params_k, uk),
            opt_x=ox,
            opt_k=ok,
        )

    init = jaxdeconv.init_state(spec, key)
    state = init.replace(opt_x=tx[0].init(init.params_x), opt_k=tx[1].init(init.params_k))
    mus = jnp.asarray(mus, jnp.float32)
    states = jax.tree_util.tree_map(lambda a: jnp.stack([a] * len(mus)), state)
    vstep = jax.jit(jax.vmap(step))
    for _ in range(config.num_steps):
        states = vstep(states, mus)
    return jax.vmap(functools.partial(jaxdeconv.kernel_estimate, spec))(states)


def zx_gradient(blurry, config, key):
    """``d loss / d zx`` at initialisation: ``[H + K - 1, W + K - 1, Cz]``."""
    y = jnp.asarray(blurry)
    spec = jaxdeconv.build_spec(config, tuple(y.shape))
    state = jaxdeconv.init_state(spec, key)

    def loss(zx):
        return jaxdeconv.mc_loss(
            state.params_x,
            state.params_k,
            y,
            zx,
            state.zk,
            key,
            image_net=spec.image_net,
            kernel_net=spec.kernel_net,
            num_draws=config.num_draws,
            noise_std=spec.noise(0),
            dropout_rate=spec.dropout(0),
            mu=config.mu,
        ).total

    return jax.jit(jax.grad(loss))(state.zx)


def main(argv):
    del argv
    runtime.enable_compilation_cache()
    cfg = flags.FLAGS.config
    size = flags.FLAGS.size
    ex = synthetic.make_example(size, size, cfg.kernel_size, seed=0)
    kernels = np.asarray(seed_ensemble(ex.blurry, cfg, seeds=(0, 1, 2, 3)))
    sims = [metrics.kernel_similarity(k, ex.kernel) for k in kernels]
    print(
        "seed ensemble: similarity to the true kernel per seed",
        np.round(sims, 3),
        "| mean per-entry std across seeds",
        float(kernels.std(axis=0).mean()),
    )
    mus = (0.0, 1e-4, 1e-2, 1.0)
    kernels = np.asarray(mu_sweep(ex.blurry, cfg, mus, jax.random.key(0)))
    for mu, k in zip(mus, kernels, strict=True):
        print(
            f"mu={mu:g}: ||k||^2={float((k**2).sum()):.4f} similarity="
            f"{metrics.kernel_similarity(k, ex.kernel):.3f}"
        )
    g = np.asarray(zx_gradient(ex.blurry, cfg, jax.random.key(0)))
    print("d loss / d zx: shape", g.shape, "mean |grad|", float(np.abs(g).mean()))


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=launch.parse_flags)
