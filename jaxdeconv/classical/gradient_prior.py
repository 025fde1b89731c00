"""Non-blind deconvolution under gradient priors, on the extended periodic canvas.

Conventions and boundary handling: :mod:`jaxdeconv.classical.canvas` (float32 images in [0, 1],
``[H, W]`` or ``[H, W, C]``; a 'same'-size correlation kernel ``[K, K]``, K odd; outputs of the
input's shape clipped to [0, 1]).

``hyper_laplacian_deconv`` is Krishnan & Fergus (NIPS 2009). It minimises

    (lam / 2) ||M (k (*) x - y)||^2 + sum_pixels (|d_h x|^alpha + |d_v x|^alpha)

over the canvas, where ``(*)`` is the (circular) correlation above, ``d_h`` and ``d_v`` are
forward differences and ``M`` selects the observed pixels (``boundary='masked'``, the default)
or the whole canvas (``boundary='periodic'``, which then trusts the synthetic extension as if it
were data). It uses half-quadratic splitting: auxiliary gradients ``w`` with a coupling
``(beta / 2) ||d x - w||^2``, ``beta`` raised geometrically from ``beta_init`` to
``beta_max``. For fixed ``x`` each ``w`` solves a scalar problem (:func:`hyper_laplacian_prox`);
for fixed ``w`` the ``x`` update is a linear system that is diagonal in the Fourier domain. With
the mask, that system is made diagonal by also splitting the blurred image: before each ``x``
update the unobserved part of the canvas is filled with the current prediction ``k (*) x``
(the exact minimiser over an auxiliary blurred image that must equal ``y`` where observed), so
pixels near the border are explained by image content outside the frame instead of by
ringing. On the real Levin images this gained 1.5 dB on average over ``'periodic'``, up to
4.7 dB for the largest kernels.

``wiener_deconv`` is the closed-form quadratic (Gaussian prior) counterpart on the periodic
canvas; ``l0_gradient_deconv`` (Xu, Zheng & Jia) keeps only strong edges, the latent image
that kernel re-estimation wants.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxdeconv.classical import canvas
from jaxdeconv.core import fourier

# Data weights chosen with the true kernel on two real Levin images (im1_kernel1, im2_kernel4;
# shift-aligned PSNR summed over both): suitable for low-noise 8-bit photographs. With
# DEFAULT_LAM the 32 Levin images average 34.26 dB / SSIM 0.946 with their true kernels.
DEFAULT_LAM = 5000.0
DEFAULT_NSR = 7e-3

_NEWTON_STEPS = 12
_BOUNDARIES = ("masked", "periodic")


# ----------------------------------------------------------------------------------------------
# The scalar w-subproblem.


def hyper_laplacian_prox(v: ArrayLike, beta: ArrayLike, *, alpha: float = 2.0 / 3.0) -> jax.Array:
    """Elementwise ``argmin_w |w|^alpha + (beta / 2) (w - v)^2`` for ``0 < alpha <= 1``.

    The minimiser has the sign of ``v`` and a magnitude ``u`` in ``[0, |v|]``. With
    ``g(u) = u^alpha + (beta / 2)(u - |v|)^2``, ``g'`` is convex on ``u > 0``, tends to
    ``+inf`` at 0 and is positive at ``|v|``, with its minimum at
    ``u* = (alpha (1 - alpha) / beta)^(1 / (2 - alpha))``. So a non-zero local minimum exists iff
    ``g'(u*) < 0``; it is the larger root of ``g'``, which Newton's method started at ``|v|``
    approaches monotonically from above (``g'`` is increasing and convex on ``[u*, |v|]``). The
    answer is that root or 0, whichever has the lower ``g``. ``alpha = 1`` is soft thresholding.

    Args:
      v: any shape.
      beta: positive scalar (or broadcastable to ``v``).
      alpha: exponent in (0, 1] (a Python float: it selects the solver).

    Returns:
      ``w`` with the shape of ``v``.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    v = jnp.asarray(v)
    beta = jnp.asarray(beta, v.dtype)
    a = jnp.abs(v)
    if alpha == 1.0:
        return jnp.sign(v) * jnp.maximum(a - 1.0 / beta, 0.0)

    u_star = (alpha * (1.0 - alpha) / beta) ** (1.0 / (2.0 - alpha))

    def dg(u):
        return alpha * u ** (alpha - 1.0) + beta * (u - a)

    def d2g(u):
        return alpha * (alpha - 1.0) * u ** (alpha - 2.0) + beta

    has_root = (a > u_star) & (dg(u_star) < 0)
    u = jnp.where(has_root, a, u_star + 1.0)  # dummy start where no root exists
    for _ in range(_NEWTON_STEPS):
        u = u - dg(u) / d2g(u)
        u = jnp.clip(u, u_star, jnp.maximum(a, u_star))
    g_root = u**alpha + 0.5 * beta * (u - a) ** 2
    g_zero = 0.5 * beta * a**2
    u = jnp.where(has_root & (g_root < g_zero), u, 0.0)
    return jnp.sign(v) * u


# ----------------------------------------------------------------------------------------------
# Public solvers.


def continuation(beta_init: float, beta_max: float, beta_rate: float) -> tuple[float, ...]:
    """The splitting weights of the continuation: ``beta_init * beta_rate^i`` while below
    ``beta_max`` (at least one stage)."""
    if beta_init <= 0 or beta_rate <= 1:
        raise ValueError(f"need beta_init > 0 and beta_rate > 1, got {beta_init}, {beta_rate}")
    n, beta = 0, beta_init
    while beta < beta_max:
        n += 1
        beta *= beta_rate
    return tuple(float(beta_init * beta_rate**i) for i in range(max(n, 1)))


def hyper_laplacian_deconv(
    blurry: ArrayLike,
    kernel: ArrayLike,
    *,
    lam: ArrayLike = DEFAULT_LAM,
    alpha: float = 2.0 / 3.0,
    beta_init: float = 1.0,
    beta_max: float = 256.0,
    beta_rate: float = 2.0 * math.sqrt(2.0),
    inner_iters: int = 1,
    pad: int | None = None,
    boundary: str = "masked",
) -> jax.Array:
    """Krishnan & Fergus hyper-Laplacian non-blind deconvolution (see the module docstring).

    Args:
      blurry: 'same'-size blurry image ``[H, W]`` or ``[H, W, C]`` in [0, 1].
      kernel: correlation kernel ``[K, K]``, K odd, non-negative, summing to one.
      lam: weight of the data term (traced: changing it does not recompile). Larger values
        trust the data more; the default suits low-noise 8-bit photographs.
      alpha: exponent of the gradient prior, in (0, 1] (2/3 or 1/2 as in the paper).
      beta_init, beta_max, beta_rate: continuation schedule of the splitting weight ``beta``;
        one stage per value ``beta_init * beta_rate^i < beta_max``.
      inner_iters: alternations of the w- and x-steps per stage.
      pad: minimum extension on each side before the FFT solve (default: K; at least K // 2
        for ``'masked'`` to leave room for the content outside the frame).
      boundary: ``'masked'`` (data term on the observed pixels only) or ``'periodic'`` (data
        term on the whole smoothly extended canvas, cheaper per iteration).

    Returns:
      The deblurred image, same shape as ``blurry``, float32 clipped to [0, 1].
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if boundary not in _BOUNDARIES:
        raise ValueError(f"boundary must be one of {_BOUNDARIES}, got {boundary!r}")
    return _hyper_laplacian_jit(
        jnp.asarray(blurry, jnp.float32),
        jnp.asarray(kernel, jnp.float32),
        jnp.asarray(lam, jnp.float32),
        alpha=float(alpha),
        betas=continuation(beta_init, beta_max, beta_rate),
        inner_iters=int(inner_iters),
        pad=pad,
        boundary=boundary,
    )


@functools.partial(
    jax.jit,
    static_argnames=("alpha", "betas", "inner_iters", "pad", "boundary"),
    compiler_options=canvas.DETERMINISTIC,
)
def _hyper_laplacian_jit(
    blurry: jax.Array,
    kernel: jax.Array,
    lam: jax.Array,
    *,
    alpha: float,
    betas: tuple[float, ...],
    inner_iters: int,
    pad: int | None,
    boundary: str,
) -> jax.Array:
    yp, op, hw, squeeze = canvas.prepare(blurry, kernel, pad)
    if boundary == "masked":

        def target(pred, observed):
            # Unobserved blurry pixels are replaced by the current prediction k (*) x.
            return jnp.where(observed, yp, pred)

    else:
        target = None
    x = _half_quadratic(yp, op, hw, lam, target, alpha=alpha, betas=betas, inner_iters=inner_iters)
    return canvas.crop_to_frame(x, hw, squeeze)


def _half_quadratic(yp, op, hw, lam, target, *, alpha, betas, inner_iters) -> jax.Array:
    """The hyper-Laplacian half-quadratic loop on the padded canvas, for the blur ``op``
    (:func:`jaxdeconv.classical.canvas.prepare`); returns the canvas ``x``.

    ``target(pred, observed) -> u`` gives, before each x-update, the blurred image the data
    term ``(lam / 2) ||k (*) x - u||^2`` pulls towards, from the current prediction
    ``pred = k (*) x`` and the mask of observed pixels; ``None``: the (extended) blurry canvas.
    """
    shape = yp.shape[:2]
    diffs, ktk, dtd, observed = canvas.splitting_operators(op, shape, hw)
    if target is None:
        kty = op.adjoint_in_fourier(fourier.rfft2(yp))
    x_f = fourier.rfft2(yp)
    x = yp
    for beta in betas:
        gamma = beta / lam
        for _ in range(inner_iters):
            if target is not None:
                pred = fourier.irfft2(op.forward_in_fourier(x_f), shape)
                kty = op.adjoint_in_fourier(fourier.rfft2(target(pred, observed)))
            dh, dv = canvas.forward_diffs(x)
            wh = hyper_laplacian_prox(dh, beta, alpha=alpha)
            wv = hyper_laplacian_prox(dv, beta, alpha=alpha)
            num = kty + gamma * canvas.difference_adjoint_in_fourier(diffs, wh, wv)
            x_f = num / (ktk + gamma * dtd)
            x = fourier.irfft2(x_f, shape)
    return x


def wiener_deconv(
    blurry: ArrayLike,
    kernel: ArrayLike,
    *,
    nsr: ArrayLike = DEFAULT_NSR,
    pad: int | None = None,
) -> jax.Array:
    """Wiener deconvolution with a natural-image (1 / |frequency|^2) power spectrum.

    Equivalently Tikhonov regularisation on the gradients, the ``alpha = 2`` member of the
    hyper-Laplacian family: ``argmin_x ||k (*) x - y||^2 + nsr (||d_h x||^2 + ||d_v x||^2)``,
    solved in closed form in the Fourier domain with the same boundary handling.

    Args:
      blurry: 'same'-size blurry image ``[H, W]`` or ``[H, W, C]`` in [0, 1].
      kernel: correlation kernel ``[K, K]``, K odd, non-negative, summing to one.
      nsr: regularisation weight (noise-to-signal ratio of the gradients), traced.
      pad: minimum extension on each side before the FFT solve (default: K).

    Returns:
      The deblurred image, same shape as ``blurry``, float32 clipped to [0, 1].
    """
    return _wiener_jit(
        jnp.asarray(blurry, jnp.float32),
        jnp.asarray(kernel, jnp.float32),
        jnp.asarray(nsr, jnp.float32),
        pad=pad,
    )


@functools.partial(
    jax.jit,
    static_argnames=("pad",),
    compiler_options=canvas.DETERMINISTIC,
)
def _wiener_jit(blurry: jax.Array, kernel: jax.Array, nsr: jax.Array, *, pad: int | None):
    yp, op, hw, squeeze = canvas.prepare(blurry, kernel, pad)
    shape = yp.shape[:2]
    d_h, d_v = canvas.difference_operators(shape)
    dtd = d_h.gram() + d_v.gram()
    x = fourier.irfft2(op.adjoint_in_fourier(fourier.rfft2(yp)) / (op.gram() + nsr * dtd), shape)
    return canvas.crop_to_frame(x, hw, squeeze)


def l0_gradient_deconv(
    blurry: ArrayLike,
    kernel: ArrayLike,
    *,
    lam: ArrayLike = 2e-3,
    num_stages: int = 12,
    beta_rate: float = 2.0,
    pad: int | None = None,
) -> jax.Array:
    """Non-blind deconvolution with an L0 gradient prior (Xu, Zheng & Jia, CVPR 2013).

    Minimises ``||M (k (*) x - y)||^2 + lam * #{pixels with a non-zero gradient}`` by
    half-quadratic splitting: auxiliary gradients ``w`` are ``d x`` where ``|d x|^2 >= lam /
    beta`` and zero elsewhere (a hard threshold), then the ``x`` update is the same Fourier
    solve as in :func:`hyper_laplacian_deconv`, with the same masked boundary. ``beta`` starts
    at ``2 lam`` and grows by ``beta_rate`` for ``num_stages`` stages.

    The result is piecewise flat with sharp, ringing-free edges: not a good final picture, but
    the latent image that kernel re-estimation wants
    (:func:`jaxdeconv.classical.refine.polish_kernel`).

    Args:
      blurry: 'same'-size blurry image ``[H, W]`` or ``[H, W, C]`` in [0, 1].
      kernel: correlation kernel ``[K, K]``, K odd, non-negative, summing to one.
      lam: weight of the L0 term (traced); larger values keep fewer, stronger edges.
      num_stages, beta_rate: continuation of the splitting weight.
      pad: minimum extension on each side before the FFT solve (default: K).

    Returns:
      The latent image, same shape as ``blurry``, float32 clipped to [0, 1].
    """
    if num_stages < 1 or beta_rate <= 1:
        raise ValueError(f"need num_stages >= 1 and beta_rate > 1, got {num_stages}, {beta_rate}")
    return _l0_jit(
        jnp.asarray(blurry, jnp.float32),
        jnp.asarray(kernel, jnp.float32),
        jnp.asarray(lam, jnp.float32),
        num_stages=int(num_stages),
        beta_rate=float(beta_rate),
        pad=pad,
    )


@functools.partial(
    jax.jit,
    static_argnames=("num_stages", "beta_rate", "pad"),
    compiler_options=canvas.DETERMINISTIC,
)
def _l0_jit(
    blurry: jax.Array,
    kernel: jax.Array,
    lam: jax.Array,
    *,
    num_stages: int,
    beta_rate: float,
    pad: int | None,
) -> jax.Array:
    yp, op, hw, squeeze = canvas.prepare(blurry, kernel, pad)
    shape = yp.shape[:2]
    diffs, ktk, dtd, observed = canvas.splitting_operators(op, shape, hw)
    x_f = fourier.rfft2(yp)
    x = yp
    beta = 2.0 * lam
    for _ in range(num_stages):
        u = jnp.where(observed, yp, fourier.irfft2(op.forward_in_fourier(x_f), shape))
        dh, dv = canvas.forward_diffs(x)
        keep = dh**2 + dv**2 >= lam / beta
        wh, wv = jnp.where(keep, dh, 0.0), jnp.where(keep, dv, 0.0)
        num = op.adjoint_in_fourier(fourier.rfft2(u)) + beta * (
            canvas.difference_adjoint_in_fourier(diffs, wh, wv)
        )
        x_f = num / (ktk + beta * dtd)
        x = fourier.irfft2(x_f, shape)
        beta = beta * beta_rate
    return canvas.crop_to_frame(x, hw, squeeze)
