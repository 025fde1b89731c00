"""Process-level JAX settings shared by launchers, library users and tests.

The persistent compilation cache (compiled executables kept on disk across processes) is on
by default for library users too: the first ``jaxdeconv`` run that compiles calls
``default_compilation_cache()``. Turn it off with the environment variable
``JAXDECONV_COMPILATION_CACHE=0`` or by calling ``disable_compilation_cache()`` before the first
run; a cache directory you set yourself (``jax.config.update('jax_compilation_cache_dir', ...)``
or ``JAX_COMPILATION_CACHE_DIR``) is left alone.
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
