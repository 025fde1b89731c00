"""Launcher bodies: what ``experiments/*.py`` call after parsing flags."""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxdeconv import image_io, pipeline, runtime, synthetic

EXAMPLE_SIZE = 128
EXAMPLE_KERNEL_SIZE = 15


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def deblur_one(
    config: ml_collections.ConfigDict,
    input_path: str | None,
    kernel_size: int | None,
    workdir: str,
) -> dict:
    """Deblurs ``input_path`` (or the built-in example) and writes outputs into ``workdir``."""
    runtime.enable_compilation_cache()
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy
    logging.info("JAX backend: %s, devices: %s", jax.default_backend(), jax.devices())
    example = None
    if input_path is None:
        k = kernel_size or EXAMPLE_KERNEL_SIZE
        example = synthetic.make_example(EXAMPLE_SIZE, EXAMPLE_SIZE, k, seed=config.seed)
        blurry, name = example.blurry, "example"
        kernel_size = k
    else:
        blurry = image_io.read_image(input_path)
        name = os.path.splitext(os.path.basename(input_path))[0]
    if kernel_size is not None:
        config.kernel_size = kernel_size
    outputs = pipeline.deblur_image(blurry, config, key=jax.random.key(config.seed))
    paths = pipeline.save_outputs(workdir, name, outputs)
    extra = {"input": input_path or "built-in synthetic example", "files": paths}
    if example is not None:
        image_io.write_image(os.path.join(workdir, f"{name}_blurry.png"), example.blurry)
        image_io.write_image(os.path.join(workdir, f"{name}_sharp.png"), example.sharp)
        extra["psnr_vs_sharp"] = {
            "blurry": _psnr(example.blurry, example.sharp),
            "network": _psnr(outputs.network, example.sharp),
            "deblurred": _psnr(outputs.deblurred, example.sharp),
        }
    facts = pipeline.run_facts(config, outputs, **extra)
    image_io.write_json(os.path.join(workdir, f"{name}_run.json"), facts)
    print(
        f"Deblurred {extra['input']} in {facts['seconds']:.1f} s "
        f"({config.num_steps} steps, K={config.kernel_size}, backend {facts['jax_backend']})."
    )
    if example is not None:
        p = extra["psnr_vs_sharp"]
        print(
            f"PSNR vs the sharp scene: blurry {p['blurry']:.2f} dB, network "
            f"{p['network']:.2f} dB, two-stage {p['deblurred']:.2f} dB"
        )
    print(f"Outputs in {os.path.abspath(workdir)}:")
    for path in paths.values():
        print(f"  {path}")
    return facts
