r"""The profile phase of benchmarks/gpu_report.py (issue 29): where a `paper` step spends its time.

For one image (``shape`` [H, W, 1], kernel size K; 255x255 and K = 27 on the device), each part
of a training step is jitted on its own and timed: lowering + compilation (``compile_s``), one
warm-up call (excluded), then ``timed`` calls ended by ``jax.block_until_ready`` (``ms``: the
mean). The parts, cheapest to compile first, so that a short budget still measures most:

* ``blur`` / ``blur_grad_k`` / ``blur_grad_xk`` for ``direct`` and ``fft``
  (``jaxdeconv.core.blur``): the valid correlation of an [H+K-1, W+K-1, 1] image with a [K, K]
  kernel, and the gradient of a squared residual through it with respect to the kernel (the
  kernel half-step) and to both (the image half-step also needs the image's). ``auto`` picks
  ``fft`` from ``blur.FFT_MIN_KERNEL_SIZE`` (9 on a GPU, not measured before).
* ``noise_and_masks`` for each PRNG implementation (``threefry``: JAX's default; ``rbg``,
  ``unsafe_rbg``): the input noise (a normal draw of zx's shape) and every dropout mask of one
  image-net draw, at the shapes the traced image net asks for (read from its jaxpr). Keys are
  made with ``jax.random.key(seed, impl=...)``: typed keys carry their implementation through
  ``split``/``fold_in``, so no global setting (``jax_default_prng_impl``) and no library change
  is needed to train with another one (gpu_report's ``--prng_impl``).
* ``kernel_net`` forward + backward; ``optimizer_x`` / ``optimizer_k``: Adam's update and
  ``apply_updates`` on a gradient the shape of each net's parameters.
* ``image_net_forward`` (one stochastic draw, threefry; ``deterministic``: without noise and
  dropout), ``image_net_forward_backward`` (the parameter gradient of one draw: the bulk of a
  step; the `paper` step's alternating scheme runs it twice), and the same for each other PRNG
  implementation (the difference is what the random draws cost inside the network).
* ``image_net_forward_backward_vmap`` at ``batch`` images (per-image parameters, as
  ``deblur_batch`` trains): ``ms`` per batch and per image.
* ``train_step`` (the whole step: threefry, the config's blur method), then, time allowing,
  ``train_step`` with the other blur method and with each other PRNG implementation. Each costs
  a full compile (about 50 s on an H100), so in the default one-minute budget they mostly
  show up as skipped.

A part that the time left cannot cover (its compile estimated from those measured before) is
recorded as skipped; an error is recorded and the next part runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

PRNG_IMPLS = ("threefry2x32", "rbg", "unsafe_rbg")  # the first is JAX's default
BLUR_METHODS = ("direct", "fft")


def _block(x):
    import jax

    return jax.block_until_ready(x)


def time_jitted(fn: Callable, args: tuple, timed: int) -> dict:
    """Lowers and compiles ``jax.jit(fn)`` for ``args``, runs it once (warm-up, excluded), then
    ``timed`` times. Returns ``compile_s``, ``first_call_s`` and ``ms`` (mean per call)."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _block(compiled(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = None
    for _ in range(timed):
        out = compiled(*args)
    _block(out)
    ms = 1e3 * (time.perf_counter() - t0) / max(timed, 1)
    return dict(compile_s=round(compile_s, 3), first_call_s=round(first, 4), ms=ms)


def _random_shapes(fn: Callable, *args) -> list[tuple]:
    """Shapes of the ``random_bits`` draws in the jaxpr of ``fn(*args)`` (nested ones too)."""
    import jax

    shapes: list[tuple] = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "random_bits":
                shapes.append(tuple(eqn.params.get("shape", eqn.outvars[0].aval.shape)))
            for v in eqn.params.values():
                for sub in v if isinstance(v, list | tuple) else (v,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return shapes


def parts(cfg, shape: tuple, batch: int, seed: int = 0, steps: int = 4) -> list[tuple]:
    """``(part, variant, fn, args, kind)`` for every part, in the order they are timed; ``kind``
    ('small', 'net', 'step') groups parts of a similar compile time for the time estimates.
    ``steps``: how many whole-step variants (4: all; fewer: the first ones)."""
    import jax
    import jax.numpy as jnp
    import ml_collections
    import optax

    from jaxdeconv.core import blur, train

    spec = train.build_spec(cfg, shape)
    k = spec.kernel_size
    state = jax.jit(functools.partial(train.init_state, spec))(jax.random.key(seed))
    rng = np.random.default_rng(seed)
    hb, wb = spec.zx_shape[:2]
    x = jnp.asarray(rng.uniform(size=(hb, wb, shape[2])), jnp.float32)
    y = jnp.asarray(rng.uniform(size=shape), jnp.float32)
    kern = jnp.full((k, k), 1.0 / k**2, jnp.float32)
    noise_std, rate = jnp.float32(0.01), jnp.float32(0.3)
    net, net_k = spec.image_net, spec.kernel_net
    out: list[tuple] = []

    for m in BLUR_METHODS:

        def sq(xx, kk, m=m):
            return jnp.sum(jnp.square(blur.valid_correlate(xx, kk, m) - y))

        out.append(
            ("blur", m, functools.partial(blur.valid_correlate, method=m), (x, kern), "small")
        )
        out.append(("blur_grad_k", m, jax.grad(sq, argnums=1), (x, kern), "small"))
        out.append(("blur_grad_xk", m, jax.grad(sq, argnums=(0, 1)), (x, kern), "small"))

    def draw(params, key):
        k_noise, k_drop = jax.random.split(key)
        return net.apply(
            params, state.zx, noise_std, rate, rngs={"noise": k_noise, "dropout": k_drop}
        )

    keys = {impl: jax.random.key(seed, impl=impl) for impl in PRNG_IMPLS}
    try:
        mask_shapes = _random_shapes(draw, state.params_x, keys[PRNG_IMPLS[0]])
    except Exception:  # noqa: BLE001 - the jaxpr's layout is JAX's business: fall back to zx
        mask_shapes = [tuple(spec.zx_shape)]
    for impl in PRNG_IMPLS:

        def masks(key, shapes=tuple(mask_shapes)):
            ks = jax.random.split(key, len(shapes) + 1)
            noise = jax.random.normal(ks[0], spec.zx_shape)
            drawn = [jax.random.bernoulli(kk, 0.7, s) for kk, s in zip(ks[1:], shapes, strict=True)]
            return noise, drawn

        out.append(("noise_and_masks", impl, masks, (keys[impl],), "small"))

    def kernel_fb(params):
        return jax.grad(lambda p: jnp.sum(jnp.square(net_k.apply(p, state.zk))))(params)

    out.append(("kernel_net_forward_backward", "", kernel_fb, (state.params_k,), "small"))
    for name, tx, params, opt in (
        ("optimizer_x", spec.tx_x, state.params_x, state.opt_x),
        ("optimizer_k", spec.tx_k, state.params_k, state.opt_k),
    ):

        def update(g, o, p, tx=tx):
            upd, o = tx.update(g, o, p)
            return optax.apply_updates(p, upd), o

        out.append((name, "adam", update, (params, opt, params), "small"))

    def deterministic(params):
        return net.apply(params, state.zx, deterministic=True)

    def forward_backward(params, key):
        return jax.value_and_grad(lambda p: jnp.sum(jnp.square(draw(p, key) - 0.5)))(params)

    out.append(("image_net_forward", "deterministic", deterministic, (state.params_x,), "net"))
    out.append(
        ("image_net_forward", "threefry2x32", draw, (state.params_x, keys[PRNG_IMPLS[0]]), "net")
    )
    out.append(
        (
            "image_net_forward_backward",
            "threefry2x32",
            forward_backward,
            (state.params_x, keys[PRNG_IMPLS[0]]),
            "net",
        )
    )
    bparams = jax.tree_util.tree_map(lambda a: jnp.stack([a] * batch), state.params_x)
    bkeys = jax.random.split(keys[PRNG_IMPLS[0]], batch)
    out.append(
        (
            "image_net_forward_backward_vmap",
            f"B={batch}",
            jax.vmap(forward_backward),
            (bparams, bkeys),
            "net",
        )
    )
    for impl in PRNG_IMPLS[1:]:
        out.append(
            (
                "image_net_forward_backward",
                impl,
                forward_backward,
                (state.params_x, keys[impl]),
                "net",
            )
        )

    def step_for(method: str | None):
        c = ml_collections.ConfigDict(cfg.to_dict())
        if method:
            c.blur_method = method
        return functools.partial(train.train_step, train.build_spec(c, shape))

    resolved = cfg.blur_method
    if resolved == "auto":
        crossover = blur.FFT_MIN_KERNEL_SIZE.get(
            jax.default_backend(), blur.FFT_MIN_KERNEL_SIZE_DEFAULT
        )
        resolved = "fft" if k >= crossover else "direct"
    other = "direct" if resolved == "fft" else "fft"
    base = f"{resolved}, threefry2x32"
    out.append(("train_step", base, step_for(None), (state, y, keys[PRNG_IMPLS[0]]), "step"))
    out.append(
        (
            "train_step",
            f"{other}, threefry2x32",
            step_for(other),
            (state, y, keys[PRNG_IMPLS[0]]),
            "step",
        )
    )
    for impl in PRNG_IMPLS[1:]:
        out.append(
            ("train_step", f"{resolved}, {impl}", step_for(None), (state, y, keys[impl]), "step")
        )
    n_steps = sum(1 for p in out if p[4] == "step")
    return out[: len(out) - n_steps + min(steps, n_steps)]


def run_profile(
    cfg,
    shape: tuple,
    batch: int,
    timed: int,
    time_left: Callable[[], float],
    log: Callable[[str], None] = print,
    on_row: Callable[[dict], None] | None = None,
    compile_guess_s: float = 60.0,
    steps: int = 4,
    rows: list | None = None,
    only: tuple = (),
) -> list[dict]:
    """Times every part of :func:`parts` that the time left allows; appends a row per part to
    ``rows`` (a new list by default) as it goes; ``only``: these parts alone (all by default).
    Returns the rows."""
    rows = [] if rows is None else rows
    seen: dict[str, float] = {}  # kind -> the largest compile + call time measured so far
    guess = {"small": 5.0, "net": compile_guess_s / 3, "step": compile_guess_s}
    for part, variant, fn, args, kind in parts(cfg, shape, batch, steps=steps):
        if only and part not in only:
            continue
        row = dict(part=part, variant=variant)
        rows.append(row)
        try:
            if kind == "step" and "net" in seen:  # a step holds about two forward + backward
                needed = max(seen.get("step", 0.0), 2.5 * seen["net"])
            else:
                needed = seen.get(kind, guess[kind])
            if needed > time_left():
                row["status"] = f"skipped: about {needed:.0f} s needed, {time_left():.0f} s left"
                continue
            t0 = time.perf_counter()
            row.update(time_jitted(fn, args, timed))
            seen[kind] = max(seen.get(kind, 0.0), time.perf_counter() - t0)
            row["status"] = "ok"
            if part == "image_net_forward_backward_vmap":
                row["ms_per_image"] = row["ms"] / batch
            log(
                f"profile {part} [{variant}]: {row['ms']:.3f} ms (compile {row['compile_s']:.1f} s)"
            )
        except Exception as e:  # noqa: BLE001 - one part failing must not stop the others
            row.update(status="error", error=f"{type(e).__name__}: {e}"[:1000])
            log(f"profile {part} [{variant}]: {row['error']}")
        finally:
            if on_row is not None:
                on_row(row)
    return rows


def markdown(entry: dict) -> list[str]:
    """The profile's table for report.md."""
    rows = entry.get("rows", [])
    if not rows:
        return []
    lines = [
        f"## Profile: preset `{entry.get('preset')}`, {entry.get('shape')}, K = "
        f"{entry.get('kernel_size')}, {entry.get('timed')} timed calls each",
        "",
        "| part | variant | compile s | ms | status |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ms = r.get("ms")
        ms_text = f"{ms:.3f}" if isinstance(ms, float) else "-"
        if "ms_per_image" in r:
            ms_text += f" ({r['ms_per_image']:.3f} per image)"
        comp = r.get("compile_s")
        lines.append(
            f"| {r['part']} | {r['variant']} | {comp if comp is not None else '-'} | {ms_text} | "
            f"{r.get('status')} {r.get('error', '')} |"
        )
    return lines + [""]
