"""Process-wide JAX settings, for applications to opt into (the library never calls these).

The library leaves ``jax.config``, ``XLA_FLAGS`` and caches to the program that uses it. The
``jaxdeconv`` command, the launchers in ``experiments/`` and the tests opt in:

* ``enable_compilation_cache()`` turns on JAX's persistent compilation cache (compiled
  executables kept on disk across processes; a step compiles in 6-8 s otherwise).
  ``default_compilation_cache()`` does the same unless the user chose otherwise
  (``JAXDECONV_COMPILATION_CACHE=0``, ``disable_compilation_cache()``, or a cache directory of
  their own). A library user who wants the cache calls one of them.
* ``split_host_cpu(n)``: on a CPU, one image's small convolutions leave cores idle; the command
  therefore splits the host into several JAX CPU devices (``jax_num_cpu_devices``) when it has
  several images, and trains one image per device (``api.deblur_batch`` shards a batch over
  local devices). Measured on the 2-core CPU, ``fast`` preset at 128x128: 25.2 images/min on
  one device, 34.5 on two (``benchmarks/multi_device.py``). ``JAXDECONV_CPU_DEVICES=N`` sets
  the count (1: off); an ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` or a
  ``jax_num_cpu_devices`` set by the user is left alone.
"""

from __future__ import annotations

import os

import jax

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "jaxdeconv", "xla")
ENV_SWITCH = "JAXDECONV_COMPILATION_CACHE"
_decided = False


def enable_compilation_cache(path: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache (a step compiles in 6-8 s otherwise).

    The directory is ``path``, else ``$JAXDECONV_CACHE_DIR``, else ``~/.cache/jaxdeconv/xla``.
    Returns the directory used.
    """
    global _decided
    path = path or os.environ.get("JAXDECONV_CACHE_DIR") or DEFAULT_CACHE_DIR
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _decided = True
    return path


def disable_compilation_cache() -> None:
    """Keeps ``default_compilation_cache`` from turning the persistent cache on (call first)."""
    global _decided
    _decided = True


def default_compilation_cache() -> str | None:
    """Turns the persistent cache on once per process unless the user chose otherwise.

    Returns the directory in use, or None when the cache is off. Does nothing after
    ``enable_compilation_cache``/``disable_compilation_cache``, when a cache directory is
    already configured, or when ``$JAXDECONV_COMPILATION_CACHE`` is ``0``/``false``/``off``.
    """
    global _decided
    current = jax.config.jax_compilation_cache_dir
    if _decided or current:
        _decided = True
        return current or None
    _decided = True
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "off", "no"):
        return None
    try:
        return enable_compilation_cache()
    except OSError:  # an unwritable home: run without the cache
        return None


CPU_DEVICES_ENV = "JAXDECONV_CPU_DEVICES"
_HOST_COUNT_FLAG = "--xla_force_host_platform_device_count"


def host_device_count(
    num_images: int, *, cpu_count: int | None = None, environ: dict | None = None
) -> int:
    """How many CPU devices a run of ``num_images`` should split the host into: one per core,
    at most one per image; ``$JAXDECONV_CPU_DEVICES`` overrides; 0 (leave it) when that is 1
    or less, or when ``XLA_FLAGS`` already sets the count."""
    env = os.environ if environ is None else environ
    if _HOST_COUNT_FLAG in env.get("XLA_FLAGS", ""):
        return 0
    wanted = env.get(CPU_DEVICES_ENV, "auto").strip().lower()
    if wanted == "auto":
        n = min(cpu_count or os.cpu_count() or 1, num_images)
    else:
        try:
            n = int(wanted)
        except ValueError:
            raise ValueError(
                f"${CPU_DEVICES_ENV} must be a positive integer or 'auto', got {wanted!r}"
            ) from None
        if n < 1:
            raise ValueError(f"${CPU_DEVICES_ENV} must be a positive integer, got {n}")
    return n if n > 1 else 0


def split_host_cpu(num_images: int) -> int:
    """Gives the CPU backend ``host_device_count(num_images)`` devices through JAX's
    ``jax_num_cpu_devices`` option, which only takes effect before JAX's backends start: a
    no-op (returns 0) once they have, or when the user set the option. Returns the count set,
    or 0. On a GPU host only the (unused) CPU backend changes."""
    if int(jax.config.jax_num_cpu_devices) > 0:  # the user's own setting stands
        return 0
    n = host_device_count(num_images)
    if not n:
        return 0
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backends have started: too late for this process
        return 0
    return n
