"""The extended periodic canvas that the non-blind solvers work on, and their Fourier operators.

Conventions (as everywhere in jaxdeconv): images are float32 in [0, 1], ``[H, W]`` or
``[H, W, C]`` (channels deblurred independently with one kernel); the kernel ``k [K, K]`` (K
odd) is a *correlation* kernel for a 'same'-size blurry image:
``y[i, j] = sum_{a, b} k[a, b] x[i + a - K//2, j + b - K//2]``.

The solvers work with FFTs on an extended, periodic canvas. The blurry image is first extended
by at least ``pad`` pixels (default: the kernel size) on every side to a size that is a product
of 2, 3 and 5 (fast FFTs). In the extension, each row (then each column) continues the image by
mirror reflection across both of its ends and cross-fades, with a raised-cosine weight, from the
reflection of the far end to that of the near end, so the periodic canvas has no jump where it
wraps around. The result is cropped back to the original size (:func:`crop_to_frame`). The blur
on the canvas is the circular correlation of :mod:`jaxdeconv.core.blur`
(:class:`~jaxdeconv.core.blur.CircularCorrelation`), anchored at the kernel's centre tap; the
forward differences of the gradient priors are circular correlations too, so the solvers' normal
equations are built from these operators' Fourier products and ``|T|^2`` terms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdeconv import config as config_lib
from jaxdeconv.core import blur, fourier

# XLA's CPU backend splits elementwise work (pow, exp) over its thread pool by load, and a
# value computed in a vectorised chunk can differ in the last bit from the same value in a
# scalar tail: measured, the same deconvolution gave different bits from call to call on a
# busy 2-core machine. Single-threaded Eigen for these host-side solvers makes them
# repeatable (same seed and config, same result), at no measured cost; ignored elsewhere.
DETERMINISTIC = {"xla_cpu_multi_thread_eigen": False}


def _reflect_index(i: jax.Array, n: int) -> jax.Array:
    """Maps any integer index to [0, n) by mirror reflection with the edge repeated."""
    r = jnp.mod(i, 2 * n)
    return jnp.where(r < n, r, 2 * n - 1 - r)


def periodic_extend(y: jax.Array, size: int, axis: int) -> jax.Array:
    """Extends ``y`` along ``axis`` to ``size`` so that the periodic signal is continuous.

    Position ``n + t`` (t = 0 .. g-1, g = size - n) blends the mirror image past the last
    sample (weight 1 - s) with the mirror image before the first sample, which is where position
    ``n + t`` lands after wrapping (weight s); s rises from 0 to 1 as a raised cosine.
    """
    n = y.shape[axis]
    g = size - n
    if g <= 0:
        return y
    t = jnp.arange(g)
    after_end = jnp.take(y, _reflect_index(n + t, n), axis=axis)
    before_start = jnp.take(y, _reflect_index(t - g, n), axis=axis)
    s = 0.5 - 0.5 * jnp.cos(jnp.pi * (t + 1) / (g + 1))
    s = s.reshape([-1 if a == axis else 1 for a in range(y.ndim)])
    fill = (1.0 - s) * after_end + s * before_start
    return jnp.concatenate([y, fill], axis=axis)


def _padded_shape(h: int, w: int, pad: int) -> tuple[int, int]:
    return fourier.next_smooth_size(h + 2 * pad), fourier.next_smooth_size(w + 2 * pad)


def difference_operators(
    shape: tuple[int, int],
) -> tuple[blur.CircularCorrelation, blur.CircularCorrelation]:
    """The circular forward differences along rows and columns on a canvas of ``shape``, as
    operators whose Fourier terms broadcast over channels (``d_h x = x[i, j+1] - x[i, j]``,
    ``d_v x = x[i+1, j] - x[i, j]``: :func:`forward_diffs`)."""
    d = jnp.array([[-1.0, 1.0]], jnp.float32)
    return (
        blur.circular_correlation(d, shape).for_channels(),
        blur.circular_correlation(d.T, shape).for_channels(),
    )


def difference_adjoint_in_fourier(
    diffs: tuple[blur.CircularCorrelation, blur.CircularCorrelation], wh: jax.Array, wv: jax.Array
) -> jax.Array:
    """``rfft2(d_h^T wh + d_v^T wv)`` for ``diffs = (d_h, d_v)`` (:func:`difference_operators`):
    the gradient part of the half-quadratic right-hand side."""
    d_h, d_v = diffs
    return d_h.adjoint_in_fourier(fourier.rfft2(wh)) + d_v.adjoint_in_fourier(fourier.rfft2(wv))


def forward_diffs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Circular forward differences ``x[i, j+1] - x[i, j]`` and ``x[i+1, j] - x[i, j]``."""
    return jnp.roll(x, -1, axis=1) - x, jnp.roll(x, -1, axis=0) - x


def prepare(blurry: ArrayLike, kernel: ArrayLike, pad: int | None):
    """Checks inputs, makes them ``[H, W, C]`` float32 and builds the padded problem:
    ``(canvas [Hp, Wp, C], the blur on the canvas (a circular correlation whose Fourier terms
    broadcast over channels), (H, W), whether the input was ``[H, W]``)``."""
    y = jnp.asarray(blurry, jnp.float32)
    k = jnp.asarray(kernel, jnp.float32)
    if y.ndim not in (2, 3):
        raise ValueError(f"blurry must be [H, W] or [H, W, C], got shape {y.shape}")
    config_lib.check_kernel_shape(k.shape, where="kernel")
    squeeze = y.ndim == 2
    y3 = y[..., None] if squeeze else y
    h, w = y3.shape[:2]
    kk = k.shape[0]
    pad = kk if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    hp, wp = _padded_shape(h, w, pad)
    yp = periodic_extend(periodic_extend(y3, hp, 0), wp, 1)
    op = blur.circular_correlation(k, (hp, wp), (kk // 2, kk // 2)).for_channels()
    return yp, op, (h, w), squeeze


def splitting_operators(op: blur.CircularCorrelation, shape: tuple[int, int], hw: tuple[int, int]):
    """What the half-quadratic solvers share on a padded canvas of ``shape``, for the blur
    ``op`` (from :func:`prepare`): the difference operators ``(d_h, d_v)``
    (:func:`difference_operators`), the normal-equation terms ``|K|^2`` and ``|Dh|^2 +
    |Dv|^2`` (``[Hp, Wp // 2 + 1, 1]``) and the mask of observed pixels (the top-left ``hw``
    block)."""
    d_h, d_v = difference_operators(shape)
    ktk = op.gram()
    dtd = d_h.gram() + d_v.gram()
    observed = jnp.zeros(shape + (1,), bool).at[: hw[0], : hw[1]].set(True)
    return (d_h, d_v), ktk, dtd, observed


def crop_to_frame(x: jax.Array, hw: tuple[int, int], squeeze: bool) -> jax.Array:
    """The canvas ``x`` cut back to the image's ``hw`` frame, clipped to [0, 1] (``[H, W]`` again
    when ``squeeze``)."""
    x = jnp.clip(x[: hw[0], : hw[1]], 0.0, 1.0)
    return x[..., 0] if squeeze else x
