"""Kernel refinement: a non-negative least-squares refit of the kernel in the gradient domain.

Given a latent-image estimate ``x_big [H + K - 1, W + K - 1]`` (the image network's output)
and the blurry ``y [H, W]``, solve

    min_k  1/2 ||grad(x_big) * k - grad(y)||^2 + reg/2 ||k||^2   s.t.  k >= 0

(``*`` the library's valid cross-correlation, on horizontal and vertical differences), then
zero entries below ``threshold`` times the maximum and renormalise to sum one. Gradients keep
flat regions from dominating the fit. The K^2 x K^2 normal equations are small (K = 27: 729
unknowns), so projected accelerated gradient (FISTA) on them converges in well under a second.
The blur as a map of the kernel, its adjoint and its matrix all come from
:mod:`jaxdeconv.core.blur` (:func:`~jaxdeconv.core.blur.correlation_by_image`,
:func:`~jaxdeconv.core.blur.patch_matrix`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdeconv.classical import gradient_prior, multiscale
from jaxdeconv.classical.canvas import DETERMINISTIC
from jaxdeconv.core import blur, fourier

# From this kernel side up, the refit applies the blur and its adjoint with FFTs instead of
# forming the K^2 x K^2 normal matrix (K = 75: 5625^2 entries, and a patch matrix of gigabytes
# on a 300 px window).
MATRIX_FREE_MIN_SIZE = 33


def refine_kernel(
    x_big: jax.Array,
    y: jax.Array,
    kernel_size: int,
    *,
    reg: float = 1e-3,
    threshold: float = 0.05,
    iters: int = 500,
) -> jax.Array:
    """Refits a ``[K, K]`` kernel to ``y [H, W(, 1)]`` from ``x_big [H+K-1, W+K-1(, 1)]``.

    Args:
      reg: ridge weight relative to the mean diagonal of the normal matrix.
      threshold: entries below ``threshold * max`` are set to zero before renormalising.
      iters: FISTA iterations.
    """
    fn = _refine_fft if kernel_size >= MATRIX_FREE_MIN_SIZE else _refine_gram
    return fn(x_big, y, kernel_size, reg=reg, threshold=threshold, iters=iters)


def _fista(apply_normal, rhs, step, n, iters):
    def body(_, carry):
        kv, z, t = carry
        k_new = jnp.maximum(z - step * (apply_normal(z) - rhs), 0.0)
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        z_new = k_new + ((t - 1) / t_new) * (k_new - kv)
        return k_new, z_new, t_new

    k0 = jnp.full(rhs.shape, 1.0 / n)
    kv, _, _ = jax.lax.fori_loop(0, iters, body, (k0, k0, jnp.ones(())))
    return kv


def _threshold_normalise(kv: jax.Array, k: int, threshold: float) -> jax.Array:
    kv = kv.reshape(-1)
    kv = jnp.where(kv >= threshold * jnp.max(kv), kv, 0.0)
    total = jnp.sum(kv)
    # A degenerate fit (all zero) falls back to a centred delta rather than dividing by zero.
    delta = jnp.zeros(k * k).at[(k * k) // 2].set(1.0)
    return jnp.where(total > 0, kv / jnp.maximum(total, 1e-12), delta).reshape(k, k)


@functools.partial(
    jax.jit, static_argnames=("kernel_size", "iters"), compiler_options=DETERMINISTIC
)
def _refine_fft(x_big, y, kernel_size, *, reg, threshold, iters):
    """:func:`refine_kernel` without the normal matrix: FFT blur and adjoint per iteration."""
    k = kernel_size
    x = x_big.reshape(x_big.shape[:2]) if x_big.ndim == 3 else x_big
    yy = y.reshape(y.shape[:2]) if y.ndim == 3 else y
    h, w = yy.shape
    shape = (fourier.next_smooth_size(x.shape[0]), fourier.next_smooth_size(x.shape[1]))
    # Horizontal and vertical differences, both cut to [H + K - 2, W + K - 2] so one shape
    # serves both; the matching blurry differences are [H - 1, W - 1].
    grads = [jnp.diff(x, axis=1)[:-1], jnp.diff(x, axis=0)[:, :-1]]
    targets = [jnp.diff(yy, axis=1)[:-1], jnp.diff(yy, axis=0)[:, :-1]]
    # The blur of each gradient image by the kernel, as a map of the kernel, and its adjoint
    # (the correlation of the gradients by the residuals); the canvas holds x_big, so nothing
    # wraps.
    ops = [blur.correlation_by_image(g, k, shape) for g in grads]
    oh, ow = h - 1, w - 1

    def adjoint(rs):
        acc = 0.0
        for op, r in zip(ops, rs, strict=True):
            acc = acc + op.adjoint(r)
        return acc.reshape(-1)

    def forward(kv):
        return [op.forward(kv.reshape(k, k)) for op in ops]

    rhs = adjoint(targets)
    # The normal matrix's diagonal entry for tap (a, b) is the gradient energy of the window
    # shifted by (a, b); the middle tap's stands for their mean.
    c = k // 2
    ridge = reg * sum(jnp.sum(g[c : c + oh, c : c + ow] ** 2) for g in grads)

    def normal(kv):
        return adjoint(forward(kv)) + ridge * kv

    # Largest eigenvalue of the normal operator by power iteration (with a safety margin).
    def power(_, v):
        u = normal(v)
        return u / jnp.linalg.norm(u)

    v = jax.lax.fori_loop(0, 30, power, jnp.ones(k * k) / k)
    lip = 1.2 * jnp.vdot(v, normal(v))
    kv = _fista(normal, rhs, 1.0 / lip, k * k, iters)
    return _threshold_normalise(kv, k, threshold)


@functools.partial(
    jax.jit, static_argnames=("kernel_size", "iters"), compiler_options=DETERMINISTIC
)
def _refine_gram(x_big, y, kernel_size, *, reg, threshold, iters):
    k = kernel_size
    x = x_big.reshape(x_big.shape[:2]) if x_big.ndim == 3 else x_big
    yy = y.reshape(y.shape[:2]) if y.ndim == 3 else y
    p = jnp.concatenate(
        [blur.patch_matrix(jnp.diff(x, axis=1), k), blur.patch_matrix(jnp.diff(x, axis=0), k)]
    )
    g = jnp.concatenate([jnp.diff(yy, axis=1).reshape(-1), jnp.diff(yy, axis=0).reshape(-1)])
    gram = p.T @ p
    rhs = p.T @ g
    gram = gram + reg * jnp.mean(jnp.diag(gram)) * jnp.eye(k * k)
    step = 1.0 / jnp.linalg.eigvalsh(gram)[-1]
    kv = _fista(lambda z: gram @ z, rhs, step, k * k, iters)
    return _threshold_normalise(kv, k, threshold)


def polish_kernel(
    blurry: jax.Array,
    kernel: jax.Array,
    *,
    iters: int = 10,
    lam: float = 2e-3,
    reg: float = 1e-3,
    threshold: float = 0.05,
) -> jax.Array:
    """Classical alternating refinement of a kernel estimate on a 'same'-size blurry image.

    Each round deconvolves ``blurry [H, W(, 1)]`` with the current kernel under an L0 gradient
    prior (:func:`jaxdeconv.classical.gradient_prior.l0_gradient_deconv`: sharp, ringing-free
    edges), then refits the kernel to the blurry image's interior from that latent image
    (:func:`refine_kernel`). Started from the network's kernel, which has the right shape but
    is too spread after a short run, the rounds tighten it.

    Args:
      iters: rounds of latent estimate + refit.
      lam: weight of the L0 prior in the latent estimate.
      reg, threshold: as in :func:`refine_kernel`.
    """
    y = jnp.asarray(blurry, jnp.float32)
    y = y.reshape(y.shape[:2])
    k = jnp.asarray(kernel, jnp.float32)
    size = k.shape[0]
    r = size // 2
    if min(y.shape) <= 2 * size:
        raise ValueError(f"image {y.shape} too small to polish a {size}x{size} kernel")
    interior = y[r : y.shape[0] - r, r : y.shape[1] - r]
    for _ in range(iters):
        latent = gradient_prior.l0_gradient_deconv(y, k, lam=lam)
        k = refine_kernel(latent, interior, size, reg=reg, threshold=threshold)
    return k


def deconv_residual(blurry: jax.Array, kernel: jax.Array) -> jax.Array:
    """How well ``kernel`` explains ``blurry [H, W(, 1)]``: the mean squared difference between
    the blurry image's interior and the re-blurred hyper-Laplacian deconvolution (the final
    non-blind step, default weight) with that kernel."""
    y = jnp.asarray(blurry, jnp.float32)
    y = y.reshape(y.shape[:2] + (1,))
    k = jnp.asarray(kernel, jnp.float32)
    r = k.shape[0] // 2
    x = gradient_prior.hyper_laplacian_deconv(y, k)
    pred = blur.valid_correlate(x, k)
    return jnp.mean((pred - y[r : y.shape[0] - r, r : y.shape[1] - r]) ** 2)


def polish_or_keep(blurry: jax.Array, kernel: jax.Array, **polish_args) -> tuple[jax.Array, bool]:
    """:func:`polish_kernel`, kept only when it lowers :func:`deconv_residual`.

    The polish tightens kernels that the network left too spread, but it can also pull a good
    kernel towards the L0 latent's own bias; the final step's data fit decides between the two.
    On the 32 Levin images (fast preset, dropout only, 1000 steps) this choice gave 30.95 dB
    two-stage against 30.27 without the polish and 30.16 always polishing.
    Returns the chosen kernel and whether it is the polished one.
    """
    polished = polish_kernel(blurry, kernel, **polish_args)
    better = bool(deconv_residual(blurry, polished) < deconv_residual(blurry, kernel))
    return (polished if better else jnp.asarray(kernel, jnp.float32)), better


def size_scaled_lam(lam: float, kernel_size: int, ref_size: int) -> float:
    """The L0 weight for a ``kernel_size`` kernel: ``lam`` up to ``ref_size`` taps, then
    falling as ``(ref_size / kernel_size)^2`` (``ref_size`` 0: ``lam`` always).

    The polish's weight was tuned on Levin (K <= 27); on Lai's 51-75 px blurs the L0 latent
    with that weight loses so much texture that ten rounds from the TRUE kernel end at a
    similarity of 0.5 (manmade_01_kernel_04); a weight 8x lower keeps 0.93
    (docs/performance.md)."""
    if ref_size <= 0 or kernel_size <= ref_size:
        return float(lam)
    return float(lam) * (ref_size / kernel_size) ** 2


def polish_coarse_to_fine(
    blurry: np.ndarray,
    kernel: np.ndarray,
    kernel_size: int,
    scale: float,
    *,
    factor: float = 2.0,
    iters: int = 10,
    lam: float = 2e-3,
    lam_ref_size: int = 0,
    reg: float = 1e-3,
    threshold: float = 0.05,
) -> jax.Array:
    """:func:`polish_kernel` through a pyramid, from a coarse kernel to a full-size one.

    ``kernel`` was estimated on ``blurry [H, W(, 1)]`` down-sampled by ``scale`` (< 1). At
    each level (``scale * factor^i``, then 1) the kernel is re-sampled to that level's grid
    (:func:`jaxdeconv.classical.multiscale.resize_kernel`) and polished on the image
    down-sampled to it;
    levels whose image is under twice the kernel's side are skipped; the L0 weight follows
    each level's kernel side (:func:`size_scaled_lam`). Returns ``[K, K]``.
    """
    y = np.asarray(blurry, np.float32)
    y = y.reshape(y.shape[:2] + (1,))
    scales = []
    s = scale * factor
    while s < 1.0:
        scales.append(s)
        s *= factor
    scales.append(1.0)
    k = np.asarray(kernel, np.float32)
    previous = scale
    for s in scales:
        size = kernel_size if s >= 1.0 else multiscale.scaled_kernel_size(kernel_size, s)
        k = multiscale.resize_kernel(k, size, scale=s / previous)
        previous = s
        level = multiscale.downscale(y, s)
        if min(level.shape[:2]) > 2 * size:
            level_lam = size_scaled_lam(lam, size, lam_ref_size)
            k = np.asarray(
                polish_kernel(level, k, iters=iters, lam=level_lam, reg=reg, threshold=threshold)
            )
    return jnp.asarray(k)
