"""Process-level JAX settings shared by launchers and tests."""

from __future__ import annotations

import os

import jax

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "jaxdeconv", "xla")


def enable_compilation_cache(path: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache (a step compiles in 6-8 s otherwise).

    The directory is ``path``, else ``$JAXDECONV_CACHE_DIR``, else ``~/.cache/jaxdeconv/xla``.
    Returns the directory used.
    """
    path = path or os.environ.get("JAXDECONV_CACHE_DIR") or DEFAULT_CACHE_DIR
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
