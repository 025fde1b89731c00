"""Tests for jaxdeconv.app.example: the built-in example, made below the benchmark layer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import signal

from jaxdeconv.app import example
from jaxdeconv.classical import shake


def test_the_example_does_not_import_the_benchmark_layer():
    code = (
        "import sys; import jaxdeconv.app.example as e; e.make(24, 5);"
        "bench = [m for m in sys.modules if m.startswith('jaxdeconv.bench')];"
        "assert not bench, bench"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_make_follows_the_forward_model():
    ex = example.make(40, 7, noise=0.0, seed=5)
    assert isinstance(ex, example.Example)
    assert ex.blurry.shape == ex.sharp.shape == (40, 40, 1)
    assert ex.sharp_big.shape == (46, 46, 1) and ex.blurry.dtype == np.float32
    np.testing.assert_array_equal(ex.kernel, shake.shake_kernel(7, seed=6))
    want = signal.correlate2d(ex.sharp_big[..., 0].astype(np.float64), ex.kernel, mode="valid")
    np.testing.assert_allclose(ex.blurry[..., 0], np.clip(want, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(ex.sharp, ex.sharp_big[3:43, 3:43])


def test_make_is_seeded_and_noisy():
    a, b = example.make(32, 5, noise=0.01, seed=1), example.make(32, 5, noise=0.01, seed=1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    clean = example.make(32, 5, noise=0.0, seed=1)
    residual = (a.blurry - clean.blurry)[..., 0]
    assert 0.006 < float(np.std(residual)) < 0.014
    assert not np.array_equal(example.make(32, 5, seed=2).sharp, a.sharp)
