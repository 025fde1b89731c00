"""Compile once: the jitted functions of a run, built once and reused across images and calls.

A ``Runner`` holds the model of a run and its four jitted functions: ``init`` (keys -> state),
``step`` (state donated), ``outputs`` (kernel, network image, mean and std of draws) and
``snapshot`` (the network's image). ``get_runner`` caches runners by (config fingerprint,
estimation shape, batch size, devices), so the second image of a shape, in the same call or a
later one, reuses the executables compiled for the first (no tracing, no compiling).

Batched runners (``batch_size`` set) vmap the per-image functions over a leading image axis and,
over several local devices, wrap the vmapped function in ``jax.shard_map`` on a one-axis mesh
(``'batch'``): every device trains ``batch_size / num_devices`` images with exactly the
single-device program. (Sharding a vmapped batch with ``NamedSharding`` alone fails: vmap folds
the image axis into the convolutions' feature groups, which the partitioner cannot split.)
``batch_size`` must then be a multiple of the device count; ``pad_batch`` helps.

Nothing here touches process-wide settings: the persistent compilation cache is the calling
program's choice (``runtime.enable_compilation_cache``, which the command and launchers call).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdeconv import config as config_lib
from jaxdeconv.core import train

AXIS = "batch"
MAX_CACHED = 16


def fingerprint(config: ml_collections.ConfigDict) -> str:
    """The config's fingerprint (``config.fingerprint``) without the fields that change
    neither the model nor the compiled functions: the seed and the host-side intervals."""
    return config_lib.fingerprint(config, ignore=config_lib.RESULT_NEUTRAL + ("seed",))


def _outputs(model: train.Model, num_samples: int, state, key, noise_std, rate):
    mean, std = train.sample_statistics(model, state, key, num_samples, noise_std, rate)
    big = model.image_net.apply(state.params_x, state.zx, deterministic=True)
    return train.kernel_estimate(model, state), big, mean, std


@dataclasses.dataclass(frozen=True, eq=False)
class Runner:
    """Jitted functions of one (model, batch size, devices).

    Unbatched (``batch_size is None``): ``init(key)``, ``step(state, y [H, W, C], key)``,
    ``outputs(state, key, noise_std, rate)``, ``snapshot(state)``. Batched: the same with a
    leading image axis ``[B]`` on every argument but the two sampling levels.
    """

    model: train.Model
    num_samples: int
    batch_size: int | None
    mesh: Mesh | None
    init: Callable
    step: Callable
    outputs: Callable
    snapshot: Callable

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.devices.size

    def place(self, tree):
        """Puts a batched pytree (leading axis ``[B]``) on the runner's devices, split by image."""
        if self.mesh is None:
            return tree
        sharding = NamedSharding(self.mesh, P(AXIS))
        return jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), tree)

    def compiled_counts(self) -> dict[str, int]:
        """How many executables each function holds (1 after any number of same-shape calls)."""
        return {
            name: getattr(self, name)._cache_size()
            for name in ("init", "step", "outputs", "snapshot")
        }


def local_mesh(num_devices: int | None = None) -> Mesh:
    """A one-axis mesh (``'batch'``) over the first ``num_devices`` local devices (all)."""
    devices = jax.local_devices()
    n = len(devices) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices must be in 1..{len(devices)}, got {num_devices}")
    return Mesh(np.asarray(devices[:n]), (AXIS,))


def _sharded(fn, mesh: Mesh | None, in_specs, out_specs):
    if mesh is None or mesh.devices.size == 1:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def build_runner(
    model: train.Model,
    num_samples: int,
    *,
    batch_size: int | None = None,
    num_devices: int | None = None,
    step_fn: Callable | None = None,
) -> Runner:
    """Jits (without compiling yet) the functions of a run; see ``get_runner`` for caching.

    ``step_fn(model, state, y, key) -> (state, metrics)`` replaces ``train.train_step``.
    """
    init = functools.partial(train.init_state, model)
    step = functools.partial(step_fn or train.train_step, model)
    outputs = functools.partial(_outputs, model, num_samples)
    snapshot = functools.partial(train.image_estimate, model)
    mesh = None
    if batch_size is not None:
        mesh = local_mesh(num_devices)
        n = mesh.devices.size
        if batch_size < 1 or batch_size % n:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of the {n} devices "
                "(pad the batch: runner.pad_batch)"
            )
        b = P(AXIS)
        init = _sharded(jax.vmap(init), mesh, b, b)
        step = _sharded(jax.vmap(step), mesh, (b, b, b), b)
        outputs = _sharded(jax.vmap(outputs, in_axes=(0, 0, None, None)), mesh, (b, b, P(), P()), b)
        snapshot = _sharded(jax.vmap(snapshot), mesh, b, b)
        if n == 1:
            mesh = None
    return Runner(
        model=model,
        num_samples=num_samples,
        batch_size=batch_size,
        mesh=mesh,
        init=jax.jit(init),
        step=jax.jit(step, donate_argnums=0),
        outputs=jax.jit(outputs),
        snapshot=jax.jit(snapshot),
    )


_cache: collections.OrderedDict = collections.OrderedDict()
_lock = threading.Lock()
stats = {"hits": 0, "misses": 0}


def get_runner(
    config: ml_collections.ConfigDict,
    shape: Sequence[int],
    *,
    batch_size: int | None = None,
    num_devices: int | None = None,
    model: train.Model | None = None,
    step_fn: Callable | None = None,
) -> Runner:
    """The cached runner for ``config`` and a blurry image of ``shape [H, W, C]``.

    ``model`` (optional) replaces ``train.build_model(config, shape)``, e.g. with your own
    networks (``model._replace(kernel_net=...)``); such runners are cached by the model object.
    ``step_fn`` (optional) replaces ``train.train_step`` (cached by the function object).
    At most ``MAX_CACHED`` runners are kept (least recently used dropped).
    """
    shape = tuple(int(s) for s in shape)
    if batch_size is not None and num_devices is None:
        num_devices = len(jax.local_devices())
    devices = None if batch_size is None else num_devices
    ident = fingerprint(config) if model is None else model
    key = (ident, step_fn, shape, batch_size, devices, int(config.sample.num_samples))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            stats["hits"] += 1
            return hit
    built = build_runner(
        model if model is not None else train.build_model(config, shape),
        int(config.sample.num_samples),
        batch_size=batch_size,
        num_devices=devices,
        step_fn=step_fn,
    )
    with _lock:
        stats["misses"] += 1
        _cache[key] = built
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
    return built


def clear_cache() -> None:
    """Forgets every cached runner (their executables go with them) and zeroes ``stats``."""
    with _lock:
        _cache.clear()
        stats.update(hits=0, misses=0)


def padded_size(n: int, num_devices: int) -> int:
    """The smallest multiple of ``num_devices`` that is at least ``n``."""
    return -(-n // num_devices) * num_devices


def pad_batch(xs: jax.Array, size: int) -> jax.Array:
    """``[B, ...] -> [size, ...]`` by repeating the last entry (its results are dropped)."""
    b = xs.shape[0]
    if size < b:
        raise ValueError(f"cannot pad a batch of {b} to {size}")
    if size == b:
        return xs
    return jnp.concatenate([xs, jnp.repeat(xs[-1:], size - b, axis=0)])


_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compilations() -> Iterator[list[str]]:
    """Collects the names of the functions XLA compiles inside the block (one entry per
    executable built, persistent-cache hits included; in-memory cache hits are not compiles)."""
    names: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        del duration
        if event == _COMPILE_EVENT:
            names.append(str(kwargs.get("fun_name", "?")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
