"""From a blurry image (array or file) to files on disk: the path the launchers share.

``deblur_image`` runs the blind estimate on the luminance and, for the final picture, a
non-blind hyper-Laplacian deconvolution with the estimated kernel on every channel (the
paper's two-stage protocol, which beats the network's direct output on real photos). The
network's own image and the uncertainty map (per-pixel standard deviation of stochastic draws
of Gx) are returned too. ``save_outputs`` writes them atomically under one name prefix.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdeconv import api, crops, image_io, nonblind, refine


@dataclasses.dataclass
class Outputs:
    deblurred: np.ndarray  # [H, W, C]: two-stage result, every input channel
    network: np.ndarray  # [h, w, 1]: Gx's deterministic output (luminance; the crop if any)
    kernel: np.ndarray  # [K, K]
    uncertainty: np.ndarray  # [H, W, 1]
    result: api.DeblurResult


def estimation_region(
    luminance: np.ndarray, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of ``[H, W, 1]`` the kernel is estimated on and its box ``(top, left, h, w)``:
    the most textured ``crop_size`` window when ``config.crop_size`` is set, else everything."""
    return crops.textured_window(luminance, config.crop_size)


def final_kernel(
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
    luminance: np.ndarray | None = None,
) -> np.ndarray:
    """The network's kernel, refit by ``jaxdeconv.refine`` when ``config.refine.enabled``,
    then polished (``refine.polish_kernel``) on the most textured ``config.polish.crop_size``
    window of ``luminance [H, W, 1]`` (the estimation region when not given) when
    ``config.polish.enabled`` (kept only where it fits the data better, if
    ``config.polish.select``; skipped on images less than twice the kernel's side)."""
    kernel = result.kernel
    if config.refine.enabled:
        kernel = refine.refine_kernel(
            result.image_big,
            region,
            config.kernel_size,
            reg=config.refine.reg,
            threshold=config.refine.threshold,
        )
    if not config.polish.enabled:
        return np.asarray(kernel)
    image, _ = crops.textured_window(
        region if luminance is None else luminance, config.polish.crop_size
    )
    # The polish refits on the image's interior, which needs more than twice the kernel's
    # side; on smaller images the (refit) network kernel is kept.
    if min(image.shape[:2]) > 2 * config.kernel_size:
        args = dict(
            iters=config.polish.iters,
            lam=config.polish.lam,
            reg=config.polish.reg,
            threshold=config.polish.threshold,
        )
        if config.polish.select:
            kernel, _ = refine.polish_or_keep(image, kernel, **args)
        else:
            kernel = refine.polish_kernel(image, kernel, **args)
    return np.asarray(kernel)


def estimate(
    luminance: np.ndarray, config: ml_collections.ConfigDict, *, key: jax.Array | None = None
) -> tuple[api.DeblurResult, tuple[int, int, int, int], np.ndarray]:
    """Blind estimate on ``[H, W, 1]``: the result (its images cover the estimation region),
    the region's box and the final kernel."""
    region, box = estimation_region(luminance, config)
    result = api.deblur(region, config, key=key)
    return result, box, final_kernel(result, region, config, luminance)


def finish(
    blurry: np.ndarray,
    result: api.DeblurResult,
    region: np.ndarray,
    config: ml_collections.ConfigDict,
) -> Outputs:
    """Final kernel, then non-blind deconvolution of every channel of ``blurry [H, W, C]``."""
    kernel = final_kernel(result, region, config, image_io.luminance(blurry))
    deblurred = np.asarray(nonblind.hyper_laplacian_deconv(blurry, kernel))
    return Outputs(
        deblurred=deblurred.reshape(blurry.shape),
        network=result.image,
        kernel=kernel,
        uncertainty=result.std,
        result=result,
    )


def deblur_image(
    blurry: np.ndarray, config: ml_collections.ConfigDict, *, key: jax.Array | None = None
) -> Outputs:
    """Blind deblurring of ``[H, W, C]`` in [0, 1]: kernel on luminance, then every channel."""
    blurry = np.asarray(blurry, np.float32)
    if blurry.ndim == 2:
        blurry = blurry[..., None]
    region, _ = estimation_region(image_io.luminance(blurry), config)
    return finish(blurry, api.deblur(region, config, key=key), region, config)


def save_outputs(outdir: str, name: str, outputs: Outputs) -> dict[str, str]:
    """Writes ``NAME_deblurred.png``, ``NAME_network.png``, ``NAME_kernel.png``/``.npy`` and
    ``NAME_uncertainty.png`` (scaled so the largest deviation is white) plus ``.npy``."""
    paths = {
        "deblurred": os.path.join(outdir, f"{name}_deblurred.png"),
        "network": os.path.join(outdir, f"{name}_network.png"),
        "kernel_png": os.path.join(outdir, f"{name}_kernel.png"),
        "kernel_npy": os.path.join(outdir, f"{name}_kernel.npy"),
        "uncertainty_png": os.path.join(outdir, f"{name}_uncertainty.png"),
        "uncertainty_npy": os.path.join(outdir, f"{name}_uncertainty.npy"),
    }
    image_io.write_image(paths["deblurred"], outputs.deblurred)
    image_io.write_image(paths["network"], outputs.network)
    image_io.write_kernel_png(paths["kernel_png"], outputs.kernel)
    image_io.write_npy(paths["kernel_npy"], outputs.kernel)
    std = outputs.uncertainty
    image_io.write_image(paths["uncertainty_png"], std / max(float(std.max()), 1e-12))
    image_io.write_npy(paths["uncertainty_npy"], std)
    return paths


def run_facts(config: ml_collections.ConfigDict, outputs: Outputs, **extra: Any) -> dict:
    """What a run was: config, seed, time, final loss, machine."""
    return {
        "config": config.to_dict(),
        "seed": config.seed,
        "kernel_size": config.kernel_size,
        "num_steps": config.num_steps,
        "seconds": round(outputs.result.seconds, 3),
        "final_loss": float(outputs.result.loss_history[-1]),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
