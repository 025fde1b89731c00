import os

import jax
import pytest

from jaxdeconv import runtime


def test_persistent_cache_on_by_default_with_an_opt_out(monkeypatch, tmp_path):
    old = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setattr(runtime, "_decided", False)
        monkeypatch.setenv(runtime.ENV_SWITCH, "0")
        assert runtime.default_compilation_cache() is None
        assert not jax.config.jax_compilation_cache_dir

        monkeypatch.setattr(runtime, "_decided", False)
        monkeypatch.setenv(runtime.ENV_SWITCH, "1")
        monkeypatch.setenv("JAXDECONV_CACHE_DIR", str(tmp_path))
        assert runtime.default_compilation_cache() == str(tmp_path)
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)

        # A directory the user chose is kept.
        monkeypatch.setattr(runtime, "_decided", False)
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
        assert runtime.default_compilation_cache() == str(tmp_path / "mine")
    finally:
        jax.config.update("jax_compilation_cache_dir", old)


def test_host_cpu_split_one_device_per_core_and_image():
    count = runtime.host_device_count
    assert count(10, cpu_count=2, environ={}) == 2
    assert count(3, cpu_count=16, environ={}) == 3  # never more devices than images
    assert count(1, cpu_count=16, environ={}) == 0  # one image: nothing to split
    assert count(10, cpu_count=1, environ={}) == 0
    assert count(10, cpu_count=2, environ={"JAXDECONV_CPU_DEVICES": "4"}) == 4
    assert count(10, cpu_count=8, environ={"JAXDECONV_CPU_DEVICES": "1"}) == 0  # off
    given = {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    assert count(10, cpu_count=8, environ=given) == 0  # the user's own setting stands
    for bad in ("0", "two"):
        with pytest.raises(ValueError, match="JAXDECONV_CPU_DEVICES"):
            count(10, cpu_count=2, environ={"JAXDECONV_CPU_DEVICES": bad})


def test_host_cpu_split_is_a_no_op_once_jax_has_started(monkeypatch):
    jax.devices()  # the backends have started
    monkeypatch.setenv("XLA_FLAGS", "")
    assert runtime.split_host_cpu(8) == 0 and os.environ["XLA_FLAGS"] == ""
