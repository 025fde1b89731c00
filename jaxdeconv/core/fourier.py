"""Real FFTs over the two image axes, and the fast canvas sizes they run on.

The transforms of jaxdeconv's Fourier-domain maths: :func:`rfft2` / :func:`irfft2` over the
first two axes of ``[H, W]`` or ``[H, W, C]`` arrays (float32 in, complex64 spectra in
``rfft2`` layout ``[H, W // 2 + 1, ...]``), and canvas sides from :func:`next_smooth_size`
(products of 2, 3 and 5) that keep them fast. The operators built on them (the circular and
the valid correlation by a kernel, their adjoints and normal-equation terms) live in one
place, :mod:`jaxdeconv.core.blur`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_SMOOTH_FACTORS = (2, 3, 5)


def next_smooth_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in _SMOOTH_FACTORS:
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def rfft2(x: jax.Array, shape: tuple[int, int] | None = None) -> jax.Array:
    """Spectrum of ``x [h, w, ...]`` over its first two axes, zero-padded to ``shape``."""
    return jnp.fft.rfft2(x, s=shape, axes=(0, 1))


def irfft2(spectrum: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """The real ``[H, W, ...]`` image whose ``rfft2`` spectrum is ``spectrum``."""
    return jnp.fft.irfft2(spectrum, s=shape, axes=(0, 1))
