"""Circular cross-correlation by real FFTs: the one Fourier operator of jaxdeconv.

Convention (the library's cross-correlation, wrapped around a periodic canvas of shape
``(H, W)``): a kernel ``k [Kh, Kw]`` anchored at tap ``c = (ci, cj)`` maps an image ``x`` to

    (A x)[i, j] = sum_{a, b} k[a, b] x[(i + a - ci) mod H, (j + b - cj) mod W].

``A`` is diagonal in the Fourier domain: ``rfft2(A x) = T * rfft2(x)`` with the transfer
function ``T`` (:func:`transfer_function`, ``[H, W // 2 + 1]`` in ``rfft2`` layout), the
conjugate spectrum of the kernel placed at the canvas origin and rolled so that tap ``c``
sits on pixel ``(0, 0)`` (correlating with a real filter conjugates its spectrum). The adjoint
``A^T`` (a circular convolution) has the transfer function ``conj(T)``.

On a canvas at least as large as an image zero-padded by the kernel, the circular operator
equals the linear one wherever it does not wrap: :func:`jaxdeconv.core.blur.valid_correlate_fft`
is the adjoint of the correlation by the flipped kernel (a convolution by it) cropped to the
valid part; the kernel refit (:mod:`jaxdeconv.classical.refine`) correlates image gradients with
a kernel and with residuals; the non-blind solvers (:mod:`jaxdeconv.classical.nonblind`) solve
linear systems that these transfer functions make diagonal.

Arrays may carry trailing channel axes ``[H, W, C]``: the transforms run over the first two
axes and one transfer function serves every channel. Transforms are ``jnp.fft.rfft2`` /
``irfft2`` on float32 inputs (complex64 spectra); canvas sides from :func:`next_smooth_size`
(products of 2, 3 and 5) keep them fast. The operator multiplies spectrum times transfer
function, in that order: XLA's complex product is not bitwise commutative, and the solvers
that fuse their own products with a transfer function keep their own order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

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
    kernel's spectrum (:func:`kernel_spectrum`; the transfer function is its conjugate); build
    it with :func:`circular_correlation`. A pytree (usable under ``jit``)."""

    spectrum: jax.Array  # [H, W // 2 + 1] complex: rfft2 of the placed kernel
    shape: tuple[int, int] = struct.field(pytree_node=False)

    @property
    def transfer(self) -> jax.Array:
        """The transfer function ``T``: ``rfft2(A x) = T * rfft2(x)``."""
        return jnp.conj(self.spectrum)

    def forward(self, x: jax.Array) -> jax.Array:
        """``A x`` for ``x [h, w, ...]`` (zero-padded to the canvas): ``[H, W, ...]``."""
        return self.forward_spectrum(rfft2(x, self.shape))

    def adjoint(self, y: jax.Array) -> jax.Array:
        """``A^T y`` for ``y [h, w, ...]`` (zero-padded to the canvas): ``[H, W, ...]``."""
        return self.adjoint_spectrum(rfft2(y, self.shape))

    def forward_spectrum(self, x_f: jax.Array) -> jax.Array:
        """``A x`` from the spectrum ``x_f = rfft2(x)`` (reuse a spectrum computed once)."""
        return irfft2(x_f * jnp.conj(_broadcast(self.spectrum, x_f)), self.shape)

    def adjoint_spectrum(self, y_f: jax.Array) -> jax.Array:
        """``A^T y`` from the spectrum ``y_f = rfft2(y)``."""
        return irfft2(y_f * _broadcast(self.spectrum, y_f), self.shape)


def circular_correlation(
    kernel: jax.Array, shape: tuple[int, int], center: tuple[int, int] = (0, 0)
) -> CircularCorrelation:
    """The circular correlation by ``kernel [Kh, Kw]`` anchored at tap ``center`` on a canvas
    of ``shape`` ``(H, W)``."""
    shape = (int(shape[0]), int(shape[1]))
    return CircularCorrelation(kernel_spectrum(kernel, shape, center), shape)
