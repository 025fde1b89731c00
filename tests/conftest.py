"""Shared test setup: fast XLA compiles, the persistent compilation cache and small helpers."""

import os
import subprocess
import sys

# The tests' nets are tiny, so compiling dominates their time. Without LLVM optimisation in
# XLA's CPU backend, pytest on a clean clone (cold compile cache) of the 2-core machine took
# 7.2 min against 11.8; without the CPU fusion emitters the tiny train step compiles in 4.6-5.7 s
# against 12.5 (2026-12-02). Set before JAX starts its backend; a user's own setting of either
# flag wins. The second flag is newer than some jaxlib versions the project allows, and XLA
# stops a process on an unknown flag, so it is tried once in a child process first (pytest's
# workers inherit the result through the environment). Tests that start a process pass this
# XLA_FLAGS on.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    _wanted = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()
    _probe = subprocess.run(
        [sys.executable, "-c", "import jax; jax.devices()"],
        env={**os.environ, "XLA_FLAGS": _wanted, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        timeout=300,
    )
    if _probe.returncode == 0:
        os.environ["XLA_FLAGS"] = _wanted

import numpy as np
import pytest
from absl import flags
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import cli, launch
from jaxdeconv.bench import synthetic
from jaxdeconv.run import runtime

runtime.enable_compilation_cache(
    os.environ.get("JAXDECONV_CACHE_DIR")
    or os.path.join(os.path.dirname(__file__), "..", ".jax_cache")
)


@pytest.fixture
def tiny_config():
    return config_lib.tiny()


@pytest.fixture
def small_levin(tmp_path):
    """A two-image Levin-shaped folder: 48x48 scenes blurred by 5x5 motion kernels."""
    root = tmp_path / "data" / "levin"
    for sub in ("blurry", "sharp", "kernels"):
        (root / sub).mkdir(parents=True)
    for j in (1, 2):
        np.save(
            root / "kernels" / f"kernel{j}.npy",
            synthetic.motion_kernel(5, seed=j).astype(np.float64),
        )
    sharp = synthetic.scene(52, 52, seed=0)
    Image.fromarray(np.round(sharp[2:-2, 2:-2] * 255).astype(np.uint8)).save(
        root / "sharp" / "im1.png"
    )
    for j in (1, 2):
        k = np.load(root / "kernels" / f"kernel{j}.npy")
        blurry = synthetic.correlate_valid(sharp, k)
        Image.fromarray(np.round(np.clip(blurry, 0, 1) * 255).astype(np.uint8)).save(
            root / "blurry" / f"im1_kernel{j}.png"
        )
    return str(tmp_path / "data")


@pytest.fixture
def jaxdeconv_main(monkeypatch, capsys):
    """Runs ``jaxdeconv ARGS`` in this process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli.runtime, "enable_compilation_cache", lambda *a: None)

    def run(*args):
        flags.FLAGS.unparse_flags()
        try:
            code = cli.main(launch.parse_flags(["jaxdeconv", *args]))
        finally:
            flags.FLAGS.unparse_flags()
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def lock_holder():
    """``start(out, name='summary', run_id='')``: a child process that takes the output
    folder's lock (``folder_lock.acquire``) and holds it until the test ends (or until
    ``holder.communicate('')``), exiting without releasing it; returns the ``Popen``."""
    holders = []

    def start(out, name="summary", run_id=""):
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from jaxdeconv.app import folder_lock; "
                f"folder_lock.acquire({str(out)!r}, {name!r}, run_id={run_id!r}, "
                "log=lambda s: None); print('held', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout.readline().strip() == "held"
        return holder

    yield start
    for holder in holders:
        if holder.returncode is None:
            holder.communicate("")
