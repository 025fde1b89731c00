"""The blur operator: 'valid' cross-correlation of a large image with a kernel.

Convention (used everywhere in jaxdeconv): a blurry image ``y`` of shape ``[H, W, C]`` is made
from a generated image ``x`` of shape ``[H + K - 1, W + K - 1, C]`` by

    y[i, j, c] = sum_{a, b} x[i + a, j + b, c] * k[a, b],

the cross-correlation that ``jax.lax.conv_general_dilated`` computes, with no padding. ``k`` is
``[K, K]``, non-negative and sums to one (a *correlation* kernel: a convolution model would use
``k`` rotated by 180 degrees). Images are float32, channels last.

Two implementations give the same result: a direct one (``lax`` convolution, fast for small
kernels) and an FFT one (``rfft2``, fast for large kernels). ``valid_correlate`` picks between
them from the kernel size with a crossover measured by ``benchmarks/blur_crossover.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdeconv.core import fourier

# Smallest kernel size for which 'auto' picks the FFT, per backend. CPU: measured with
# benchmarks/blur_crossover.py (forward + backward through both arguments) on the 2-core CPU,
# where the FFT was faster for every K >= 3 at 32x32, 96x96 and 255x255 outputs (K = 27 at
# 255x255: 1.7 ms vs 91 ms). Other backends: not measured yet; a conservative guess that
# leaves small kernels to the vendor convolution.
FFT_MIN_KERNEL_SIZE = {"cpu": 3}
FFT_MIN_KERNEL_SIZE_DEFAULT = 9


def _check(x: jax.Array, kernel: jax.Array) -> None:
    if x.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got shape {x.shape}")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be square [K, K], got shape {kernel.shape}")
    if kernel.shape[0] > min(x.shape[0], x.shape[1]):
        raise ValueError(f"kernel {kernel.shape} is larger than the image {x.shape[:2]}")


def valid_correlate_direct(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid cross-correlation with ``lax.conv_general_dilated``.

    Args:
      x: image ``[Hb, Wb, C]``.
      kernel: ``[K, K]``.

    Returns:
      ``[Hb - K + 1, Wb - K + 1, C]``.
    """
    _check(x, kernel)
    # Channels become the batch so one single-channel filter serves all of them.
    lhs = jnp.moveaxis(x, -1, 0)[..., None]  # [C, Hb, Wb, 1]
    rhs = kernel.astype(x.dtype)[:, :, None, None]  # [K, K, 1, 1]
    out = jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return jnp.moveaxis(out[..., 0], 0, -1)


def valid_correlate_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid cross-correlation computed with real FFTs.

    Correlating with ``k`` equals convolving with ``k`` flipped, the adjoint of the circular
    correlation by the flipped kernel (``jaxdeconv.core.fourier``); on a canvas of size
    ``>= Hb`` it matches the linear one on the valid rows ``K-1 .. Hb-1``.

    Args:
      x: image ``[Hb, Wb, C]``.
      kernel: ``[K, K]``.

    Returns:
      ``[Hb - K + 1, Wb - K + 1, C]``.
    """
    _check(x, kernel)
    hb, wb, _ = x.shape
    k = kernel.shape[0]
    shape = (fourier.next_smooth_size(hb), fourier.next_smooth_size(wb))
    flipped = fourier.circular_correlation(kernel[::-1, ::-1].astype(x.dtype), shape)
    full = flipped.adjoint(x)  # the convolution by the flipped kernel
    return full[k - 1 : hb, k - 1 : wb, :].astype(x.dtype)


def valid_correlate(x: jax.Array, kernel: jax.Array, method: str = "auto") -> jax.Array:
    """Valid cross-correlation ``[Hb, Wb, C] x [K, K] -> [Hb-K+1, Wb-K+1, C]``.

    Args:
      x: image ``[Hb, Wb, C]``.
      kernel: ``[K, K]``.
      method: ``'direct'``, ``'fft'`` or ``'auto'`` (FFT from the backend's crossover up).
    """
    if method == "auto":
        crossover = FFT_MIN_KERNEL_SIZE.get(jax.default_backend(), FFT_MIN_KERNEL_SIZE_DEFAULT)
        method = "fft" if kernel.shape[0] >= crossover else "direct"
    if method == "direct":
        return valid_correlate_direct(x, kernel)
    if method == "fft":
        return valid_correlate_fft(x, kernel)
    raise ValueError(f"unknown blur method {method!r}; use 'direct', 'fft' or 'auto'")
