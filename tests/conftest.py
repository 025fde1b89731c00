"""Shared test setup: the persistent compilation cache and small helpers."""

import os

import pytest

from jaxdeconv import config as config_lib
from jaxdeconv import runtime

runtime.enable_compilation_cache(
    os.environ.get("JAXDECONV_CACHE_DIR")
    or os.path.join(os.path.dirname(__file__), "..", ".jax_cache")
)


@pytest.fixture
def tiny_config():
    return config_lib.tiny()
