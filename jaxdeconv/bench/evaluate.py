"""Benchmark evaluation: blind deblurring of a dataset, scored the way the field scores it.

Datasets: Levin, Lai (all 100 or the fixed 20-image subset ``datasets.lai_subset('lai20')``)
and the synthetic development suite (``synthetic.suite``: 'dev' or 'quick').

For every image: the blind estimate (kernel and the image network's direct output, through
:func:`blind_estimate`, the one call into ``jaxdeconv.pipeline``), the two-stage result (a
non-blind deconvolution with the estimated kernel: hyper-Laplacian, or for Lai's 'saturated'
category the outlier-robust method, column ``nonblind_method``), and the true-kernel reference
(the same non-blind method with the ground-truth kernel). Each is scored with shift-aligned
PSNR/SSIM (``metrics.aligned_psnr_ssim``), and so is the blurry input itself (the gain is
two-stage minus blurry). The error ratio compares the two-stage result with the true-kernel
reference; the kernel similarity is the peak normalised cross-correlation with the true kernel
(zero-padded, so an estimate of another size compares too).

``run_benchmark`` writes one JSON per image as it goes (so a re-run skips finished images with
the same config, the same case and the same non-blind method), then ``results.csv``,
``summary.md`` (overall, per category and per bucket tables) and ``kernels.png`` (estimated vs
true kernels). A failing image is recorded as failed and the others go on.

The protocol (columns, scores, non-blind step, result identity) is ``jaxdeconv.bench.protocol``,
the tables and pictures ``jaxdeconv.bench.report``; both are re-exported here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np

from jaxdeconv import pipeline
from jaxdeconv.app import image_io
from jaxdeconv.bench import datasets
from jaxdeconv.bench.protocol import (  # noqa: F401 - re-exported
    BENCHMARK_IGNORE,
    COLUMNS,
    KERNEL_SIZE_CONVENTIONS,
    PUBLISHED_LUMA,
    aligned_or_nan,
    benchmark_kernel_size,
    config_hash,
    nonblind_deconv,
    nonblind_method,
    published_scores,
)
from jaxdeconv.bench.report import (  # noqa: F401 - re-exported
    BUCKET_FIELDS,
    bucket_table,
    commit_id,
    summary_markdown,
    write_csv,
    write_kernel_montage,
)
from jaxdeconv.classical import crops, metrics
from jaxdeconv.classical.diagnose import DELTA_PEAK  # noqa: F401 - re-exported


def blind_estimate(
    blurry: np.ndarray,
    config: ml_collections.ConfigDict,
    key: jax.Array | None,
    checkpoint_dir: str | None = None,
) -> tuple:
    """The benchmark's one call into the pipeline: ``(result, box, kernel)`` as returned by
    ``pipeline.estimate`` (the network's result on the estimation window, the window's box
    ``(top, left, h, w)`` and the final kernel, whatever size the pipeline chose)."""
    return pipeline.estimate(blurry, config, key=key, checkpoint_dir=checkpoint_dir)


def _image_config(
    config: ml_collections.ConfigDict,
    item: datasets.BenchmarkImage,
    dataset: str = "",
    convention: str = "full",
) -> ml_collections.ConfigDict:
    """``config`` with the image's kernel size under ``convention`` (the true grid for
    ``'full'``, :data:`protocol.PUBLISHED_KERNEL_SIZES` for ``'published'``), unless the config
    asks for ``'auto'``."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    if not isinstance(config.kernel_size, str):
        cfg.kernel_size = benchmark_kernel_size(
            dataset, item.kernel_name, int(item.kernel_size), convention
        )
    return cfg


def _kernel_scores(
    item: datasets.BenchmarkImage,
    kernel: np.ndarray,
    two_stage: np.ndarray,
    method: str,
    dataset: str,
) -> tuple[dict, dict]:
    """The columns of a result row that depend on the kernel (its two-stage image
    ``two_stage``, made with the non-blind ``method``), and the true kernel's scores."""
    true_kernel = nonblind_deconv(method, item.blurry, item.kernel)
    staged = metrics.aligned_psnr_ssim(two_stage, item.sharp)
    reference = metrics.aligned_psnr_ssim(true_kernel, item.sharp)
    blurry = metrics.aligned_psnr_ssim(item.blurry, item.sharp)
    scores = {
        "kernel_size_used": int(kernel.shape[0]),
        "psnr_two_stage": staged["psnr"],
        "ssim_two_stage": staged["ssim"],
        "psnr_true_kernel": reference["psnr"],
        "ssim_true_kernel": reference["ssim"],
        "error_ratio": float(staged["ssd"] / reference["ssd"]),
        "kernel_similarity": metrics.kernel_similarity(kernel, item.kernel),
        "kernel_peak": float(np.max(kernel)),
        "psnr_blurry": blurry["psnr"],
        "ssim_blurry": blurry["ssim"],
        "gain": staged["psnr"] - blurry["psnr"],
        **published_scores(dataset, two_stage, true_kernel, item.sharp, staged, reference),
    }
    return scores, reference


def score_kernel(item: datasets.BenchmarkImage, kernel: np.ndarray, dataset: str = "") -> dict:
    """The kernel-dependent columns of :func:`evaluate_image`'s row for ``kernel`` on ``item``
    (the same non-blind step and scores): for kernels found otherwise than by a run, such as
    a run's network kernel before refit and polish."""
    kernel = np.asarray(kernel, np.float64)
    kernel = kernel / kernel.sum()
    method = nonblind_method(item.category)
    two_stage = nonblind_deconv(method, item.blurry, kernel)
    return {
        "nonblind_method": method,
        **_kernel_scores(item, kernel, two_stage, method, dataset)[0],
    }


def evaluate_image(
    item: datasets.BenchmarkImage,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    checkpoint_dir: str | None = None,
    dataset: str = "",
    kernel_size_convention: str = "full",
) -> tuple[dict, dict]:
    """Deblurs one benchmark image and scores it. Returns ``(row, arrays)``. With
    ``config.checkpoint_every > 0`` the network run keeps a checkpoint in ``checkpoint_dir``
    and resumes from it (a long run stopped half-way). ``dataset`` names the published
    protocol of the ``*_published`` columns (:func:`published_scores`) and, with
    ``kernel_size_convention``, the kernel size estimated (:func:`benchmark_kernel_size`)."""
    cfg = _image_config(config, item, dataset, kernel_size_convention)
    method = nonblind_method(item.category)
    start = time.perf_counter()
    result, box, kernel = blind_estimate(item.blurry, cfg, key, checkpoint_dir)
    kernel = np.asarray(kernel)
    two_stage = nonblind_deconv(method, item.blurry, kernel)
    # What a user waits for: training, kernel refit/polish and the final deconvolution.
    seconds_total = time.perf_counter() - start
    # The network's own image covers the estimation crop (the whole image without one).
    whole = tuple(box[2:]) == tuple(item.blurry.shape[:2])
    scores, reference = _kernel_scores(item, kernel, two_stage, method, dataset)
    direct = aligned_or_nan(np.asarray(result.image), crops.crop(item.sharp, box))
    row = {
        "name": item.name,
        "category": item.category,
        "kernel_name": item.kernel_name,
        "kernel_size": cfg.kernel_size,
        "kernel_size_true": int(item.kernel.shape[0]),
        "kernel_size_convention": kernel_size_convention,
        "nonblind_method": method,
        "status": "ok",
        "seconds": round(result.seconds, 2),
        "seconds_total": round(seconds_total, 2),
        "final_loss": float(result.loss_history[-1]),
        "psnr_direct": direct["psnr"],
        "ssim_direct": direct["ssim"],
        "error_ratio_direct": (float(direct["ssd"] / reference["ssd"]) if whole else float("nan")),
        **scores,
        **item.tags,
        "error": "",
    }
    if result.snapshots:
        sharp = crops.crop(item.sharp, box)
        row["psnr_curve"] = [
            [int(step), aligned_or_nan(np.asarray(img), sharp)["psnr"]]
            for step, img in sorted(result.snapshots.items())
        ]
    arrays = {
        "kernel": kernel,
        "network_kernel": np.asarray(result.kernel),
        "two_stage": two_stage,
        "direct": np.asarray(result.image),
    }
    return row, arrays


def run_benchmark(
    dataset: str,
    root: str,
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    names: Sequence[str] | None = None,
    subset: str = "all",
    suite: str | Sequence = "dev",
    suite_seed: int = 0,
    preset: str = "",
    kernel_size_convention: str = "full",
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Evaluates ``config`` on ``dataset`` (``'levin'``, ``'lai'`` or ``'synthetic'``); resumes
    from ``workdir``.

    Args:
      dataset, root, names, subset, suite: which images (``datasets.lazy_dataset``); ``subset``
        is Lai's (``'all'`` or ``'lai20'``), ``suite`` the synthetic one (``'dev'``,
        ``'quick'`` or a list of ``synthetic.CaseSpec``) with seed ``suite_seed``.
      config: the run's config; ``kernel_size`` is set to each image's true size unless it is
        ``'auto'``.
      workdir: output folder (per-image files under ``images/``).
      preset: the preset's name, for the summary.
      kernel_size_convention: ``'full'`` (the true kernel grid) or ``'published'`` (the sizes
        the published runs estimated, :data:`protocol.PUBLISHED_KERNEL_SIZES`); recorded in
        every row and part of a stored result's identity.
      log: progress lines.

    Returns:
      One row (dict of :data:`COLUMNS`) per image.
    """
    if kernel_size_convention not in KERNEL_SIZE_CONVENTIONS:
        raise ValueError(
            f"unknown kernel size convention {kernel_size_convention!r}; choose one of "
            f"{', '.join(KERNEL_SIZE_CONVENTIONS)}"
        )
    items = datasets.lazy_dataset(dataset, root, names, subset=subset, suite=suite, seed=suite_seed)
    image_dir = os.path.join(workdir, "images")
    os.makedirs(image_dir, exist_ok=True)
    chash = config_hash(config)
    commit = commit_id()
    rows, kernels = [], {}
    for i, lazy in enumerate(items):
        path = os.path.join(image_dir, f"{lazy.name}.json")
        method = nonblind_method(lazy.category)
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            row = saved["row"]
            if (
                saved.get("config_hash") == chash
                and saved.get("item_key", "") == lazy.key
                and row["status"] == "ok"
                and row.get("nonblind_method", "hyper_laplacian") == method
                # rows written before the convention existed estimated on the full grid
                and row.get("kernel_size_convention", "full") == kernel_size_convention
            ):
                rows.append(row)
                true_path = os.path.join(image_dir, f"{lazy.name}_true_kernel.npy")
                if os.path.exists(true_path):
                    true_kernel = np.load(true_path)
                else:  # written by an older version of the benchmark
                    true_kernel = lazy.load().kernel
                kernels[lazy.name] = (
                    np.load(os.path.join(image_dir, f"{lazy.name}_kernel.npy")),
                    true_kernel,
                )
                log(f"[{i + 1}/{len(items)}] {lazy.name}: done before, skipped")
                continue
        try:
            item = lazy.load()
            ckpt = None
            if int(config.checkpoint_every) > 0:  # long runs resume mid-image
                ckpt = os.path.join(
                    workdir, "checkpoints", f"{lazy.name}-{chash}-{kernel_size_convention}"
                )
            row, arrays = evaluate_image(
                item,
                config,
                key=None,  # jax.random.key(config.seed); recover.seeds: seed + i
                checkpoint_dir=ckpt,
                dataset=dataset,
                kernel_size_convention=kernel_size_convention,
            )
            if ckpt is not None:
                shutil.rmtree(ckpt, ignore_errors=True)
            arrays["true_kernel"] = item.kernel
            # network_kernel (before refit and polish) is kept for offline studies of the
            # post-processing.
            for name in ("kernel", "network_kernel", "true_kernel"):
                image_io.write_npy(os.path.join(image_dir, f"{lazy.name}_{name}.npy"), arrays[name])
            for name in ("two_stage", "direct"):
                png = os.path.join(image_dir, f"{lazy.name}_{name}.png")
                image_io.write_image(png, arrays[name])
            kernels[lazy.name] = (arrays["kernel"], item.kernel)
        except Exception as e:  # noqa: BLE001 - one bad image must not stop the benchmark
            row = {c: "" for c in COLUMNS}
            row.update(
                name=lazy.name,
                category=lazy.category,
                nonblind_method=method,
                kernel_size_convention=kernel_size_convention,
                status="failed",
                error=f"{type(e).__name__}: {e}",
            )
            log(traceback.format_exc())
        image_io.write_json(path, {"config_hash": chash, "item_key": lazy.key, "row": row})
        rows.append(row)
        if row["status"] == "ok":
            log(
                f"[{i + 1}/{len(items)}] {lazy.name}: two-stage {row['psnr_two_stage']:.2f} dB "
                f"(blurry {row['psnr_blurry']:.2f}), direct {row['psnr_direct']:.2f} dB, true "
                f"kernel {row['psnr_true_kernel']:.2f} dB, ratio {row['error_ratio']:.2f}, "
                f"K {row['kernel_size_used']}/{row['kernel_size_true']}, "
                f"{row['seconds_total']:.0f} s"
            )
        else:
            log(f"[{i + 1}/{len(items)}] {lazy.name}: FAILED {row['error']}")
    write_csv(os.path.join(workdir, "results.csv"), rows)
    title = dataset
    if dataset == "lai":
        title = f"lai, subset {subset}"
    elif dataset == "synthetic":
        title = f"synthetic, suite {suite if isinstance(suite, str) else 'custom'}"
    if names is not None:
        title += f", {len(items)} selected images"
    title += f", kernel sizes: {kernel_size_convention}"
    summary = summary_markdown(
        rows, dataset=dataset, title=title, config=config, preset=preset, commit=commit
    )
    image_io.write_text(os.path.join(workdir, "summary.md"), summary)
    if kernels:
        write_kernel_montage(os.path.join(workdir, "kernels.png"), kernels)
    return rows
