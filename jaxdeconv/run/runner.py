"""Compile once: the jitted functions of a run, built once and reused across images and calls.

A ``Runner`` holds the run spec of a run and its four jitted functions: ``init`` (keys ->
state), ``step`` (state donated), ``outputs`` (kernel, network image, mean and std of draws)
and ``snapshot`` (the network's image). ``get_runner`` caches runners by value: (the run spec,
the step function, estimation shape, batch size, devices, number of samples), so the second
image of a shape, in the same call or a later one, and an equal spec built again reuse the
executables compiled for the first (no tracing, no compiling).

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


def _outputs(spec: train.RunSpec, num_samples: int, state, key, noise_std, rate):
    mean, std = train.sample_statistics(spec, state, key, num_samples, noise_std, rate)
    big = spec.image_net.apply(state.params_x, state.zx, deterministic=True)
    return train.kernel_estimate(spec, state), big, mean, std


@dataclasses.dataclass(frozen=True, eq=False)
class Runner:
    """Jitted functions of one (run spec, batch size, devices).

    Unbatched (``batch_size is None``): ``init(key[, zx, zk])``, ``step(state, y [H, W, C],
    key)``, ``outputs(state, key, noise_std, rate)``, ``snapshot(state)``. Batched: the same
    with a leading image axis ``[B]`` on every argument but the two sampling levels.
    """

    spec: train.RunSpec
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
    spec: train.RunSpec,
    num_samples: int,
    *,
    batch_size: int | None = None,
    num_devices: int | None = None,
    step_fn: Callable | None = None,
) -> Runner:
    """Jits (without compiling yet) the functions of a run; see ``get_runner`` for caching.

    ``step_fn(spec, state, y, key) -> (state, metrics)`` replaces ``train.train_step``.
    """
    init = functools.partial(train.init_state, spec)
    step = functools.partial(step_fn or train.train_step, spec)
    outputs = functools.partial(_outputs, spec, num_samples)
    snapshot = functools.partial(train.image_estimate, spec)
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
        spec=spec,
        num_samples=num_samples,
        batch_size=batch_size,
        mesh=mesh,
        init=jax.jit(init),
        step=jax.jit(step, donate_argnums=0),
        outputs=jax.jit(outputs),
        snapshot=jax.jit(snapshot),
    )


class _Same:
    """The cache key of an object that does not hash by value: that very object (kept alive
    by the key while its runner is cached, so its id is never reused meanwhile)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def value_key(obj):
    """A cache key for ``obj`` that compares by value where it can: ``obj`` itself when it
    hashes (a ``RunSpec`` of value fields, a function), a ``functools.partial`` by its function
    and arguments (so a step re-created with the same arguments is the same key), else the
    object's identity."""
    if isinstance(obj, functools.partial):
        parts = ("partial", value_key(obj.func), obj.args, tuple(sorted(obj.keywords.items())))
        try:
            hash(parts)
        except TypeError:
            return _Same(obj)
        return parts
    try:
        hash(obj)
    except TypeError:
        return _Same(obj)
    return obj


_cache: collections.OrderedDict = collections.OrderedDict()
_lock = threading.Lock()
stats = {"hits": 0, "misses": 0}


def get_runner(
    config: ml_collections.ConfigDict,
    shape: Sequence[int],
    *,
    batch_size: int | None = None,
    num_devices: int | None = None,
    spec: train.SpecArgument = None,
    step_fn: Callable | None = None,
) -> Runner:
    """The cached runner for ``config`` and a blurry image of ``shape [H, W, C]``.

    ``spec`` (optional) replaces ``train.build_spec(config, shape)``: a ``RunSpec`` (e.g. with
    your own networks, ``spec._replace(kernel_net=...)``) or a builder ``spec(config, shape)``
    (``train.resolve_spec``). ``step_fn`` (optional)
    replaces ``train.train_step``. Runners are cached by value (:func:`value_key`): two equal
    specs, or a config and the spec built from it, share one runner; so do two equal
    ``functools.partial`` steps. At most ``MAX_CACHED`` runners are kept (least recently used
    dropped).
    """
    shape = tuple(int(s) for s in shape)
    given = spec
    spec = train.resolve_spec(given, config, shape)
    if batch_size is not None and num_devices is None:
        num_devices = len(jax.local_devices())
    devices = None if batch_size is None else num_devices
    ident = value_key(spec)
    if given is None and isinstance(ident, _Same):
        # A spec built from the config that does not hash (a plug-in network with a list
        # field, say): the config's fingerprint identifies it.
        ident = ("config", fingerprint(config))
    key = (ident, value_key(step_fn), shape, batch_size, devices, int(config.sample.num_samples))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            stats["hits"] += 1
            return hit
    built = build_runner(
        spec,
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
