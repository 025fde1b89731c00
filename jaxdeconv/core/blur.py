"""The blur operator: correlation of an image by a kernel and its adjoints, in one place.

Convention (used everywhere in jaxdeconv): a blurry image ``y`` of shape ``[H, W, C]`` is made
from a generated image ``x`` of shape ``[H + K - 1, W + K - 1, C]`` by

    y[i, j, c] = sum_{a, b} x[i + a, j + b, c] * k[a, b],

the cross-correlation that ``jax.lax.conv_general_dilated`` computes, with no padding. ``k`` is
``[K, K]``, non-negative and sums to one (a *correlation* kernel: a convolution model would use
``k`` rotated by 180 degrees). Images are float32, channels last.

Every blur of an image by a kernel in the library, and every adjoint, goes through this module:

* The valid correlation :func:`valid_correlate` and its adjoint :func:`valid_correlate_adjoint`
  (the full convolution), each with a direct implementation (``lax`` convolution, fast for
  small kernels) and an FFT one (fast for large kernels) that give the same result; ``'auto'``
  picks between them from the kernel size with a crossover measured by
  ``benchmarks/blur_crossover.py``.
* The same correlation as a linear map of the *kernel* for a fixed image
  (:func:`correlation_by_image`, with ``forward`` and ``adjoint``) and its matrix
  (:func:`patch_matrix`): what a least-squares kernel fit needs.
* The circular correlation on a periodic canvas (:class:`CircularCorrelation`), diagonal in the
  Fourier domain: what the non-blind solvers build their normal equations from (the Fourier
  products ``T x_f`` and ``conj(T) y_f`` and the ``|T|^2`` term).
* A NumPy implementation of the valid correlation and a separable Gaussian smoothing, for
  host-side data generation (:func:`valid_correlate_numpy`, :func:`gaussian_smooth_numpy`).

The circular correlation by ``k [Kh, Kw]`` anchored at tap ``c = (ci, cj)`` on a canvas of
shape ``(H, W)`` is

    (A x)[i, j] = sum_{a, b} k[a, b] x[(i + a - ci) mod H, (j + b - cj) mod W].

``rfft2(A x) = T * rfft2(x)`` with the transfer function ``T`` (:func:`transfer_function`,
``[H, W // 2 + 1]`` in ``rfft2`` layout), the conjugate spectrum of the kernel placed at the
canvas origin and rolled so that tap ``c`` sits on pixel ``(0, 0)`` (correlating with a real
filter conjugates its spectrum); the adjoint ``A^T`` (a circular convolution) has the transfer
function ``conj(T)``. On a canvas at least as large as an image zero-padded by the kernel, it
equals the linear correlation wherever it does not wrap: the FFT implementations of the valid
operators are built on it. Arrays may carry trailing channel axes ``[H, W, C]``: one transfer
function serves every channel. Complex products keep a fixed operand order (XLA's complex
product is not bitwise commutative): ``forward_spectrum`` / ``adjoint_spectrum`` multiply
spectrum times transfer function, the normal-equation products ``forward_in_fourier`` /
``adjoint_in_fourier`` transfer function times spectrum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdeconv.core import fourier

# Smallest kernel size for which 'auto' picks the FFT, per backend. CPU: measured with
# benchmarks/blur_crossover.py (forward + backward through both arguments) on the 2-core CPU,
# where the FFT was faster for every K >= 3 at 32x32, 96x96 and 255x255 outputs (K = 27 at
# 255x255: 1.7 ms vs 91 ms). Other backends: not measured yet; a conservative guess that
# leaves small kernels to the vendor convolution.
FFT_MIN_KERNEL_SIZE = {"cpu": 3}
FFT_MIN_KERNEL_SIZE_DEFAULT = 9

METHODS = ("direct", "fft", "auto")


# ----------------------------------------------------------------------------------------------
# The circular correlation.


def kernel_spectrum(
    kernel: jax.Array, shape: tuple[int, int], center: tuple[int, int] = (0, 0)
) -> jax.Array:
    """``rfft2`` spectrum ``[H, W // 2 + 1]`` of ``kernel [Kh, Kw]`` placed on an ``(H, W)``
    canvas with tap ``center`` on pixel ``(0, 0)``: the transfer function of the circular
    convolution by it, the conjugate of :func:`transfer_function`."""
    kh, kw = kernel.shape
    if kh > shape[0] or kw > shape[1]:
        raise ValueError(f"kernel {kernel.shape} does not fit on a {tuple(shape)} canvas")
    if tuple(center) == (0, 0):
        return jnp.fft.rfft2(kernel, s=shape)  # zero-padded: already in place
    placed = jnp.zeros(shape, kernel.dtype).at[:kh, :kw].set(kernel)
    placed = jnp.roll(placed, (-center[0], -center[1]), axis=(0, 1))
    return jnp.fft.rfft2(placed)


def transfer_function(
    kernel: jax.Array, shape: tuple[int, int], center: tuple[int, int] = (0, 0)
) -> jax.Array:
    """Transfer function ``T [H, W // 2 + 1]`` of the circular correlation by ``kernel
    [Kh, Kw]`` anchored at tap ``center`` on an ``(H, W)`` canvas (see the module docstring)."""
    # Correlation with a real filter is conjugation in the Fourier domain.
    return jnp.conj(kernel_spectrum(kernel, shape, center))


def _broadcast(transfer: jax.Array, spectrum: jax.Array) -> jax.Array:
    """``transfer`` with trailing unit axes for the channels of ``spectrum``."""
    extra = spectrum.ndim - transfer.ndim
    return transfer.reshape(transfer.shape + (1,) * extra) if extra > 0 else transfer


class CircularCorrelation(struct.PyTreeNode):
    """The circular correlation ``A`` of a canvas of ``shape`` by one kernel, held as the
    kernel's spectrum (:func:`kernel_spectrum`) and its conjugate, the transfer function
    ``T``; build it with :func:`circular_correlation`. A pytree (usable under ``jit``)."""

    spectrum: jax.Array  # [H, W // 2 + 1] (or [H, W // 2 + 1, 1]) complex: rfft2 of the kernel
    transfer: jax.Array  # conj(spectrum): rfft2(A x) = transfer * rfft2(x)
    shape: tuple[int, int] = struct.field(pytree_node=False)

    def for_channels(self) -> CircularCorrelation:
        """The same operator with a trailing unit axis on its spectra, so that its Fourier
        terms (:meth:`gram`, the ``*_in_fourier`` products) broadcast against ``[H, W // 2 + 1,
        C]`` spectra."""
        return self.replace(spectrum=self.spectrum[..., None], transfer=self.transfer[..., None])

    def gram(self) -> jax.Array:
        """``|T|^2``: the Fourier multiplier of ``A^T A`` (real, the spectrum's shape)."""
        return jnp.abs(self.transfer) ** 2

    def forward(self, x: jax.Array) -> jax.Array:
        """``A x`` for ``x [h, w, ...]`` (zero-padded to the canvas): ``[H, W, ...]``."""
        return self.forward_spectrum(fourier.rfft2(x, self.shape))

    def adjoint(self, y: jax.Array) -> jax.Array:
        """``A^T y`` for ``y [h, w, ...]`` (zero-padded to the canvas): ``[H, W, ...]``."""
        return self.adjoint_spectrum(fourier.rfft2(y, self.shape))

    def forward_spectrum(self, x_f: jax.Array) -> jax.Array:
        """``A x`` from the spectrum ``x_f = rfft2(x)`` (reuse a spectrum computed once)."""
        return fourier.irfft2(x_f * jnp.conj(_broadcast(self.spectrum, x_f)), self.shape)

    def adjoint_spectrum(self, y_f: jax.Array) -> jax.Array:
        """``A^T y`` from the spectrum ``y_f = rfft2(y)``."""
        return fourier.irfft2(y_f * _broadcast(self.spectrum, y_f), self.shape)

    def forward_in_fourier(self, x_f: jax.Array) -> jax.Array:
        """``rfft2(A x) = T * x_f``: the forward product of the normal equations."""
        return _broadcast(self.transfer, x_f) * x_f

    def adjoint_in_fourier(self, y_f: jax.Array) -> jax.Array:
        """``rfft2(A^T y) = conj(T) * y_f``: the adjoint product of the normal equations."""
        return jnp.conj(_broadcast(self.transfer, y_f)) * y_f


def circular_correlation(
    kernel: jax.Array, shape: tuple[int, int], center: tuple[int, int] = (0, 0)
) -> CircularCorrelation:
    """The circular correlation by ``kernel [Kh, Kw]`` anchored at tap ``center`` on a canvas
    of ``shape`` ``(H, W)``."""
    shape = (int(shape[0]), int(shape[1]))
    spectrum = kernel_spectrum(kernel, shape, center)
    return CircularCorrelation(spectrum, jnp.conj(spectrum), shape)


# ----------------------------------------------------------------------------------------------
# The valid correlation and its adjoint.


def _check(x: jax.Array, kernel: jax.Array) -> None:
    if x.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got shape {x.shape}")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be square [K, K], got shape {kernel.shape}")
    if kernel.shape[0] > min(x.shape[0], x.shape[1]):
        raise ValueError(f"kernel {kernel.shape} is larger than the image {x.shape[:2]}")


def _pick(method: str, kernel_size: int) -> str:
    if method == "auto":
        crossover = FFT_MIN_KERNEL_SIZE.get(jax.default_backend(), FFT_MIN_KERNEL_SIZE_DEFAULT)
        return "fft" if kernel_size >= crossover else "direct"
    if method not in METHODS:
        raise ValueError(f"unknown blur method {method!r}; use 'direct', 'fft' or 'auto'")
    return method


def _conv_valid(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid correlation ``[Hb, Wb, C] x [K, K]`` with ``lax.conv_general_dilated``."""
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


def valid_correlate_direct(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid cross-correlation with ``lax.conv_general_dilated``.

    Args:
      x: image ``[Hb, Wb, C]``.
      kernel: ``[K, K]``.

    Returns:
      ``[Hb - K + 1, Wb - K + 1, C]``.
    """
    _check(x, kernel)
    return _conv_valid(x, kernel)


def valid_correlate_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid cross-correlation computed with real FFTs.

    Correlating with ``k`` equals convolving with ``k`` flipped, the adjoint of the circular
    correlation by the flipped kernel; on a canvas of size ``>= Hb`` it matches the linear one
    on the valid rows ``K-1 .. Hb-1``.

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
    flipped = circular_correlation(kernel[::-1, ::-1].astype(x.dtype), shape)
    full = flipped.adjoint(x)  # the convolution by the flipped kernel
    return full[k - 1 : hb, k - 1 : wb, :].astype(x.dtype)


def valid_correlate(x: jax.Array, kernel: jax.Array, method: str = "auto") -> jax.Array:
    """Valid cross-correlation ``[Hb, Wb, C] x [K, K] -> [Hb-K+1, Wb-K+1, C]``.

    Args:
      x: image ``[Hb, Wb, C]``.
      kernel: ``[K, K]``.
      method: ``'direct'``, ``'fft'`` or ``'auto'`` (FFT from the backend's crossover up).
    """
    method = _pick(method, kernel.shape[0])
    if method == "direct":
        return valid_correlate_direct(x, kernel)
    return valid_correlate_fft(x, kernel)


def valid_correlate_adjoint(y: jax.Array, kernel: jax.Array, method: str = "auto") -> jax.Array:
    """The adjoint of :func:`valid_correlate` in the image: the full convolution
    ``[H, W, C] x [K, K] -> [H+K-1, W+K-1, C]``, ``out[m, n] = sum_{a, b} k[a, b] y[m-a, n-b]``
    (``y`` zero outside its frame).

    Args:
      y: image ``[H, W, C]`` (the shape of a blurry image).
      kernel: ``[K, K]``.
      method: as in :func:`valid_correlate`.
    """
    if y.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got shape {y.shape}")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be square [K, K], got shape {kernel.shape}")
    k = kernel.shape[0]
    hb, wb = y.shape[0] + k - 1, y.shape[1] + k - 1
    if _pick(method, k) == "direct":
        padded = jnp.pad(y, ((k - 1, k - 1), (k - 1, k - 1), (0, 0)))
        return _conv_valid(padded, kernel[::-1, ::-1])
    shape = (fourier.next_smooth_size(hb), fourier.next_smooth_size(wb))
    # On a canvas holding [Hb, Wb] the circular convolution by k does not wrap.
    out = circular_correlation(kernel.astype(y.dtype), shape).adjoint(y)
    return out[:hb, :wb].astype(y.dtype)


class CorrelationByImage(struct.PyTreeNode):
    """The valid correlation of one fixed image ``x [Hb, Wb]`` as a linear map of the kernel,
    ``k [K, K] -> x (*) k [Hb-K+1, Wb-K+1]``, with its adjoint, by FFTs on a canvas that holds
    ``x`` (so nothing wraps into the output). Build it with :func:`correlation_by_image`; the
    image's spectrum is computed once and serves every application."""

    spectrum: jax.Array  # [H, W // 2 + 1] complex: rfft2 of x on the canvas
    shape: tuple[int, int] = struct.field(pytree_node=False)  # the canvas
    out_shape: tuple[int, int] = struct.field(pytree_node=False)  # [Hb - K + 1, Wb - K + 1]
    kernel_size: int = struct.field(pytree_node=False)

    def forward(self, kernel: jax.Array) -> jax.Array:
        """``x (*) k``: ``[K, K] -> [Hb - K + 1, Wb - K + 1]``."""
        by_kernel = circular_correlation(kernel, self.shape)
        return by_kernel.forward_spectrum(self.spectrum)[: self.out_shape[0], : self.out_shape[1]]

    def adjoint(self, residual: jax.Array) -> jax.Array:
        """The adjoint in the kernel, ``out[a, b] = sum_ij x[i + a, j + b] r[i, j]``: ``[Hb - K +
        1, Wb - K + 1] -> [K, K]`` (the correlation of ``x`` by the residual)."""
        k = self.kernel_size
        return circular_correlation(residual, self.shape).forward_spectrum(self.spectrum)[:k, :k]


def correlation_by_image(
    x: jax.Array, kernel_size: int, shape: tuple[int, int] | None = None
) -> CorrelationByImage:
    """:class:`CorrelationByImage` for ``x [Hb, Wb]`` and ``[K, K]`` kernels, on a canvas of
    ``shape`` (default: the smallest fast FFT size holding ``x``)."""
    if x.ndim != 2:
        raise ValueError(f"image must be [Hb, Wb], got shape {x.shape}")
    hb, wb = x.shape
    if shape is None:
        shape = (fourier.next_smooth_size(hb), fourier.next_smooth_size(wb))
    shape = (int(shape[0]), int(shape[1]))
    if shape[0] < hb or shape[1] < wb:
        raise ValueError(f"canvas {shape} does not hold the image {x.shape}")
    k = int(kernel_size)
    if not 1 <= k <= min(hb, wb):
        raise ValueError(f"kernel size {k} does not fit the image {x.shape}")
    return CorrelationByImage(fourier.rfft2(x, shape), shape, (hb - k + 1, wb - k + 1), k)


def patch_matrix(x: jax.Array, kernel_size: int) -> jax.Array:
    """The matrix of :func:`correlation_by_image`: ``[Hb, Wb] -> [(Hb-K+1) * (Wb-K+1), K*K]``
    with entry ``(i * (Wb-K+1) + j, a*K + b) = x[i+a, j+b]``, so that ``patch_matrix(x, K) @
    k.ravel()`` is the valid correlation ``x (*) k`` raveled."""
    k = int(kernel_size)
    p = jax.lax.conv_general_dilated_patches(x[None, None], (k, k), (1, 1), "VALID")
    return p[0].reshape(k * k, -1).T


# ----------------------------------------------------------------------------------------------
# Host-side NumPy implementations, for data generation.


def valid_correlate_numpy(x: np.ndarray, kernel: np.ndarray, method: str = "direct") -> np.ndarray:
    """NumPy valid cross-correlation ``[Hb, Wb] x [K, K] -> [Hb-K+1, Wb-K+1]`` (float64).

    ``'direct'`` sums the ``K^2`` shifted images, each product in the inputs' precision and the
    sum in float64 (the built-in example's blur); ``'fft'`` works in float64 on a fast canvas
    holding ``x`` (large kernels on large images).
    """
    x, kernel = np.asarray(x), np.asarray(kernel)
    if x.ndim != 2 or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"need x [Hb, Wb] and a square kernel, got {x.shape}, {kernel.shape}")
    k = kernel.shape[0]
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    if h < 1 or w < 1:
        raise ValueError(f"kernel {kernel.shape} is larger than the image {x.shape}")
    if method == "direct":
        out = np.zeros((h, w), np.float64)
        for a in range(k):
            for b in range(k):
                out += kernel[a, b] * x[a : a + h, b : b + w]
        return out
    if method == "fft":
        shape = (fourier.next_smooth_size(x.shape[0]), fourier.next_smooth_size(x.shape[1]))
        x_f = np.fft.rfft2(x.astype(np.float64), s=shape)
        k_f = np.fft.rfft2(kernel.astype(np.float64), s=shape)
        # Circular correlation anchored at tap (0, 0); rows and columns < h, w do not wrap.
        return np.fft.irfft2(x_f * np.conj(k_f), s=shape)[:h, :w]
    raise ValueError(f"unknown NumPy blur method {method!r}; use 'direct' or 'fft'")


def gaussian_1d(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of std ``sigma``, ``2 * ceil(3 sigma) + 1`` taps (at least 3)."""
    r = max(1, int(np.ceil(3 * sigma)))
    t = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian_smooth_numpy(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (:func:`gaussian_1d`) of a 2-D array with edge padding, same
    size, float64; ``sigma <= 0`` returns ``img`` unchanged."""
    if sigma <= 0:
        return img
    g = gaussian_1d(sigma)
    r = len(g) // 2
    out = np.pad(img, r, mode="edge")
    out = np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 0, out)
    return np.apply_along_axis(lambda v: np.convolve(v, g, mode="valid"), 1, out)


def correlate1d_numpy(img: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Same-size correlation of ``img`` with the odd-length ``taps`` along ``axis``, the image
    extended by mirroring about its edges (``d c b a | a b c d | d c b a``), float64."""
    img = np.asarray(img, np.float64)
    r = len(taps) // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    ext = np.pad(img, pad, mode="symmetric")
    n = img.shape[axis]
    out = np.zeros_like(img)
    for i, t in enumerate(taps):
        out += t * np.take(ext, np.arange(i, i + n), axis=axis)
    return out


def gaussian_filter_numpy(img: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian smoothing of a 2-D image, same size, mirrored edges, the taps cut at
    ``truncate`` standard deviations (the usual image-processing convention), float64."""
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (t / float(sigma)) ** 2)
    g = g / g.sum()
    return correlate1d_numpy(correlate1d_numpy(img, g, 0), g, 1)


def full_correlate_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross-correlation of ``a`` and ``b`` (2-D) at every shift where they overlap,
    ``[Ha + Hb - 1, Wa + Wb - 1]``, float64: the valid correlation of ``a`` zero-padded by
    ``b``'s size less one on every side."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    (hb, wb) = b.shape
    padded = np.pad(a, ((hb - 1, hb - 1), (wb - 1, wb - 1)))
    h, w = padded.shape[0] - hb + 1, padded.shape[1] - wb + 1
    out = np.zeros((h, w), np.float64)
    for i in range(hb):
        for j in range(wb):
            out += b[i, j] * padded[i : i + h, j : j + w]
    return out
