import json
import os
import subprocess
import sys

import jax
import pytest

from jaxdeconv.run import runtime


def test_default_compilation_cache_for_applications_with_an_opt_out(monkeypatch, tmp_path):
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
    monkeypatch.setenv("JAXDECONV_CPU_DEVICES", "2")
    assert runtime.split_host_cpu(8) == 0 and os.environ["XLA_FLAGS"] == ""


_PROBE = """
import json, os, sys
import jax
import numpy as np
before = (jax.config.jax_compilation_cache_dir, os.environ.get("XLA_FLAGS"))
import jaxdeconv
from jaxdeconv import config
cfg = config.tiny()
cfg.num_steps = 2
jaxdeconv.deblur(np.full((12, 12), 0.5, np.float32), cfg)
after = (jax.config.jax_compilation_cache_dir, os.environ.get("XLA_FLAGS"))
bench = sorted(m for m in sys.modules if m.split(".")[-1] in
               ("datasets", "metrics", "synthetic", "evaluate", "ablation"))
print(json.dumps({"same": before == after, "devices": jax.local_device_count(),
                  "bench": bench}))
"""


def test_the_library_leaves_process_settings_alone():
    # A fresh process: importing and running the library turns on no compilation cache,
    # touches no XLA_FLAGS and imports no benchmark code.
    # XLA_FLAGS set (the tests' quick compiles, inherited from conftest) must come out as it
    # went in.
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    r = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"same": True, "devices": 1, "bench": []}


def test_host_cpu_split_in_a_fresh_process():
    code = (
        "import jax; from jaxdeconv.run import runtime; n = runtime.split_host_cpu(5); "
        "print(n, jax.local_device_count())"
    )
    env = {**os.environ, "JAXDECONV_CPU_DEVICES": "3", "XLA_FLAGS": ""}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "3"]
