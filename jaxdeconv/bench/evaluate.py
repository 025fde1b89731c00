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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence

import jax
import ml_collections
import numpy as np
from PIL import Image, ImageDraw

from jaxdeconv import pipeline
from jaxdeconv.app import image_io
from jaxdeconv.bench import datasets, metrics
from jaxdeconv.classical import crops, nonblind

# A kernel whose largest tap exceeds this is counted as collapsed towards the trivial delta.
DELTA_PEAK = 0.5

COLUMNS = (
    "name",
    "category",
    "kernel_name",
    "kernel_size",
    "kernel_size_used",
    "kernel_size_true",
    "nonblind_method",
    "status",
    "seconds",
    "seconds_total",
    "final_loss",
    "psnr_direct",
    "ssim_direct",
    "psnr_two_stage",
    "ssim_two_stage",
    "psnr_true_kernel",
    "ssim_true_kernel",
    "error_ratio",
    "error_ratio_direct",
    "kernel_similarity",
    "kernel_peak",
    "psnr_blurry",
    "ssim_blurry",
    "gain",
    # The scale published tables use (PUBLISHED_LUMA; empty where no published protocol applies).
    "psnr_two_stage_published",
    "ssim_two_stage_published",
    "psnr_true_kernel_published",
    # The synthetic suite's buckets and facts (empty for the other datasets).
    "kernel_bucket",
    "support",
    "blur_size",
    "noise",
    "jpeg",
    "smooth",
    "size_bucket",
    "image_size",
    "source",
    "error",
)

# How published tables score each dataset, when it differs from the protocol above: Lai's
# (SelfDeblur's statistic_lai.m, used by the paper and its peers) compares the luma of MATLAB's
# rgb2ycbcr, studio range, so the same result reads 1.32 dB higher than on full-range luma.
# Levin's published protocol is ours (grey images, no conversion).
PUBLISHED_LUMA = {"lai": metrics.studio_luma, "levin": None}

# Per-bucket tables of summary.md, by dataset.
BUCKET_FIELDS = {
    "levin": ("category",),
    "lai": ("category", "kernel_name"),
    "synthetic": ("kernel_bucket", "support", "noise", "jpeg", "smooth", "size_bucket"),
}
# The target group on the synthetic suite: kernels up to this size at <= 1% noise.
TARGET_MAX_KERNEL = 35
TARGET_MAX_NOISE = 0.01


# Fields added after benchmark results were stored, with the value at which a config computes
# what it did before the field existed: left out of the hash at that value, so that stored
# results stay valid (a resumed benchmark does not redo them).
_NEUTRAL = {
    ("support_margin",): 1.0,
    ("recover", "windows"): (),
    ("grad_weight",): 0.0,
    ("image_net", "type"): "unet",
    ("kernel_net", "coord_hidden"): 64,
    ("kernel_net", "coord_layers"): 3,
    ("kernel_net", "coord_omega"): 30.0,
    ("progressive", "levels"): 0,
    ("progressive", "factor"): 2.0,
    ("progressive", "min_kernel"): 7,
    ("progressive", "step_share"): 0.4,
    ("progressive", "carry_image"): False,
    ("progressive", "hold_kernel"): 0.0,
    ("optim", "hold_k"): 0.0,
    ("extra_loss", "names"): (),
    ("extra_loss", "weights"): (),
}


def config_hash(config: ml_collections.ConfigDict) -> str:
    """Short stable hash of what a config computes (not the per-image kernel size, unless it is
    ``'auto'``, nor the checkpoint interval, nor a later field at its neutral value)."""
    d = config.to_dict()
    if not isinstance(d.get("kernel_size"), str):
        d.pop("kernel_size", None)
    d.pop("checkpoint_every", None)
    for path, neutral in _NEUTRAL.items():
        *parents, leaf = path
        node = d
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and leaf in node:
            value = node[leaf]
            if (tuple(value) if isinstance(value, list | tuple) else value) == neutral:
                del node[leaf]
    for group in ("progressive", "extra_loss"):
        if d.get(group) == {}:  # a group added later, every field neutral
            del d[group]
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def nonblind_method(category: str) -> str:
    """The non-blind step of the two-stage protocol (METHOD.md) for an image of ``category``:
    ``'outlier_robust'`` for Lai's 'saturated' images when ``nonblind`` provides it, else
    ``'hyper_laplacian'``."""
    if category == "saturated" and hasattr(nonblind, "outlier_robust_deconv"):
        return "outlier_robust"
    return "hyper_laplacian"


def nonblind_deconv(method: str, blurry: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Runs the named non-blind method with its default parameters and the data weight
    adapted to the image's noise (``nonblind.adapted_lam``; the default 5000 on Levin and Lai,
    whose noise is below its threshold)."""
    lam = nonblind.adapted_lam(blurry)
    if method == "outlier_robust":
        return np.asarray(nonblind.outlier_robust_deconv(blurry, kernel, lam=lam))
    if method == "hyper_laplacian":
        return np.asarray(nonblind.hyper_laplacian_deconv(blurry, kernel, lam=lam))
    raise ValueError(f"unknown non-blind method {method!r}")


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
    config: ml_collections.ConfigDict, item: datasets.BenchmarkImage
) -> ml_collections.ConfigDict:
    """``config`` with the image's true kernel size, unless the config asks for ``'auto'``."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    if not isinstance(config.kernel_size, str):
        cfg.kernel_size = int(item.kernel_size)
    return cfg


def _aligned_or_nan(estimate: np.ndarray, sharp: np.ndarray) -> dict:
    """Aligned scores, or NaNs when the two cannot be compared (another shape, e.g. a network
    image at a coarser scale, or too small for the protocol's 15 px crop)."""
    if estimate.shape[:2] != sharp.shape[:2] or min(sharp.shape[:2]) < 2 * 15 + 11:
        return {"psnr": float("nan"), "ssim": float("nan"), "ssd": float("nan")}
    return metrics.aligned_psnr_ssim(estimate, sharp)


def published_scores(dataset: str, two_stage, true_kernel, sharp, staged: dict, reference: dict):
    """The ``*_published`` columns: two-stage PSNR/SSIM and true-kernel PSNR on the scale the
    published tables of ``dataset`` use (:data:`PUBLISHED_LUMA`): re-scored after the map
    where there is one, the protocol's own scores where it is the published one (Levin), none
    where nothing is published (the synthetic suite: the columns stay empty)."""
    if dataset not in PUBLISHED_LUMA:
        return {}
    luma = PUBLISHED_LUMA[dataset]
    if luma is not None:
        ref = luma(sharp)
        staged = metrics.aligned_psnr_ssim(luma(two_stage), ref)
        reference = metrics.aligned_psnr_ssim(luma(true_kernel), ref)
    return {
        "psnr_two_stage_published": staged["psnr"],
        "ssim_two_stage_published": staged["ssim"],
        "psnr_true_kernel_published": reference["psnr"],
    }


def evaluate_image(
    item: datasets.BenchmarkImage,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array | None = None,
    checkpoint_dir: str | None = None,
    dataset: str = "",
) -> tuple[dict, dict]:
    """Deblurs one benchmark image and scores it. Returns ``(row, arrays)``. With
    ``config.checkpoint_every > 0`` the network run keeps a checkpoint in ``checkpoint_dir``
    and resumes from it (a long run stopped half-way). ``dataset`` names the published
    protocol of the ``*_published`` columns (:func:`published_scores`)."""
    cfg = _image_config(config, item)
    method = nonblind_method(item.category)
    start = time.perf_counter()
    result, box, kernel = blind_estimate(item.blurry, cfg, key, checkpoint_dir)
    kernel = np.asarray(kernel)
    two_stage = nonblind_deconv(method, item.blurry, kernel)
    # What a user waits for: training, kernel refit/polish and the final deconvolution.
    seconds_total = time.perf_counter() - start
    true_kernel = nonblind_deconv(method, item.blurry, item.kernel)
    # The network's own image covers the estimation crop (the whole image without one).
    whole = tuple(box[2:]) == tuple(item.blurry.shape[:2])
    direct = _aligned_or_nan(np.asarray(result.image), crops.crop(item.sharp, box))
    staged = metrics.aligned_psnr_ssim(two_stage, item.sharp)
    reference = metrics.aligned_psnr_ssim(true_kernel, item.sharp)
    blurry = metrics.aligned_psnr_ssim(item.blurry, item.sharp)
    row = {
        "name": item.name,
        "category": item.category,
        "kernel_name": item.kernel_name,
        "kernel_size": cfg.kernel_size,
        "kernel_size_used": int(kernel.shape[0]),
        "kernel_size_true": int(item.kernel.shape[0]),
        "nonblind_method": method,
        "status": "ok",
        "seconds": round(result.seconds, 2),
        "seconds_total": round(seconds_total, 2),
        "final_loss": float(result.loss_history[-1]),
        "psnr_direct": direct["psnr"],
        "ssim_direct": direct["ssim"],
        "psnr_two_stage": staged["psnr"],
        "ssim_two_stage": staged["ssim"],
        "psnr_true_kernel": reference["psnr"],
        "ssim_true_kernel": reference["ssim"],
        "error_ratio": float(staged["ssd"] / reference["ssd"]),
        "error_ratio_direct": (float(direct["ssd"] / reference["ssd"]) if whole else float("nan")),
        "kernel_similarity": metrics.kernel_similarity(kernel, item.kernel),
        "kernel_peak": float(np.max(kernel)),
        "psnr_blurry": blurry["psnr"],
        "ssim_blurry": blurry["ssim"],
        "gain": staged["psnr"] - blurry["psnr"],
        **published_scores(dataset, two_stage, true_kernel, item.sharp, staged, reference),
        **item.tags,
        "error": "",
    }
    if result.snapshots:
        sharp = crops.crop(item.sharp, box)
        row["psnr_curve"] = [
            [int(step), _aligned_or_nan(np.asarray(img), sharp)["psnr"]]
            for step, img in sorted(result.snapshots.items())
        ]
    arrays = {
        "kernel": kernel,
        "network_kernel": np.asarray(result.kernel),
        "two_stage": two_stage,
        "direct": np.asarray(result.image),
    }
    return row, arrays


def _machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} "
        f"backend {jax.default_backend()} ({dev.device_kind})"
    )


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
      log: progress lines.

    Returns:
      One row (dict of :data:`COLUMNS`) per image.
    """
    items = datasets.lazy_dataset(dataset, root, names, subset=subset, suite=suite, seed=suite_seed)
    image_dir = os.path.join(workdir, "images")
    os.makedirs(image_dir, exist_ok=True)
    chash = config_hash(config)
    commit = _commit()
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
                ckpt = os.path.join(workdir, "checkpoints", f"{lazy.name}-{chash}")
            row, arrays = evaluate_image(
                item,
                config,
                key=jax.random.key(config.seed),
                checkpoint_dir=ckpt,
                dataset=dataset,
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
    summary = summary_markdown(
        rows, dataset=dataset, title=title, config=config, preset=preset, commit=commit
    )
    image_io.write_text(os.path.join(workdir, "summary.md"), summary)
    if kernels:
        write_kernel_montage(os.path.join(workdir, "kernels.png"), kernels)
    return rows


def write_csv(path: str, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    image_io.write_text(path, buf.getvalue())


def _values(rows: list[dict], key: str) -> np.ndarray:
    out = []
    for r in rows:
        v = r.get(key, "")
        if isinstance(v, bool) or v in ("", None):
            continue
        out.append(float(v))
    out = np.asarray(out, np.float64)
    return out[np.isfinite(out)]


def _mean(rows: list[dict], key: str) -> float:
    """Mean of the finite values of ``key`` (NaN when there are none)."""
    v = _values(rows, key)
    return float(v.mean()) if v.size else float("nan")


def _collapsed(rows: list[dict]) -> int:
    return sum(float(r.get("kernel_peak") or 0.0) > DELTA_PEAK for r in rows)


def _bucket_line(label: str, group: list[dict]) -> str:
    ratios = _values(group, "error_ratio")
    success = f"{np.mean(ratios < 2):.0%}" if ratios.size else "-"
    return (
        f"| {label} | {len(group)} | {success} | {_mean(group, 'gain'):+.2f} | "
        f"{_mean(group, 'psnr_blurry'):.2f} | {_mean(group, 'psnr_two_stage'):.2f} | "
        f"{_mean(group, 'psnr_true_kernel'):.2f} | {_mean(group, 'kernel_similarity'):.3f} | "
        f"{_collapsed(group)} | {_mean(group, 'kernel_size_used'):.1f} | "
        f"{_mean(group, 'kernel_size_true'):.1f} | {_mean(group, 'seconds_total'):.0f} |"
    )


def _in_target(row: dict) -> bool:
    """The issue's target group: true kernel up to TARGET_MAX_KERNEL px, noise <= 1%."""
    try:
        return (
            int(row["kernel_size_true"]) <= TARGET_MAX_KERNEL
            and float(row["noise"]) <= TARGET_MAX_NOISE
        )
    except (KeyError, TypeError, ValueError):
        return False


def bucket_table(rows: list[dict], fields: Sequence[str]) -> list[str]:
    """Markdown lines: success rate (error ratio < 2), mean gain of the two-stage result over
    the blurry input, PSNRs, kernel similarity, collapsed kernels, kernel sizes and seconds per
    image, for all images and for each value of each of ``fields``."""
    ok = [r for r in rows if r["status"] == "ok"]
    lines = [
        "| bucket | n | ratio < 2 | gain dB | PSNR blurry | PSNR two-stage | PSNR true kernel "
        "| kernel sim. | collapsed | K used | K true | s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if not ok:
        return lines
    lines.append(_bucket_line("**all**", ok))
    if "noise" in fields:
        target = [r for r in ok if _in_target(r)]
        if target:
            lines.append(
                _bucket_line(
                    f"target: K <= {TARGET_MAX_KERNEL}, noise <= {TARGET_MAX_NOISE:.0%}", target
                )
            )
    for field in fields:
        values = sorted({str(r.get(field, "")) for r in ok})
        for value in values:
            group = [r for r in ok if str(r.get(field, "")) == value]
            lines.append(_bucket_line(f"{field} = {value}", group))
    return lines


def summary_markdown(
    rows: list[dict],
    *,
    dataset: str,
    config,
    preset: str = "",
    commit: str = "",
    title: str = "",
) -> str:
    """The results tables: the field's table (overall, per category and, for Lai, per kernel)
    and the per-bucket table (:func:`bucket_table` over ``BUCKET_FIELDS[dataset]``)."""
    ok = [r for r in rows if r["status"] == "ok"]
    methods = sorted({r.get("nonblind_method", "") for r in ok} - {""})
    counts = ", ".join(f"{m} {sum(r.get('nonblind_method') == m for r in ok)}" for m in methods)
    size_note = (
        "chosen automatically ('auto'; see K used)"
        if isinstance(config.kernel_size, str)
        else "the ground-truth kernel's size per image"
    )
    lines = [
        f"## {title or dataset} — preset `{preset or 'custom'}`",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}, commit: {commit or _commit()}, "
        f"config hash {config_hash(config)}",
        f"- machine: {_machine()}",
        f"- steps: {config.num_steps}, scheme: {config.scheme}, draws: {config.num_draws}, "
        f"seed: {config.seed}, kernel size: {size_note}",
        "- direct = the image network's own output, scored on the estimation crop when "
        f"crop_size is set (crop_size: {config.crop_size or 'whole image'})",
        "- protocol: shift-aligned PSNR/SSIM (15 px crop, ±10 px search in 0.25 px steps, "
        "bilinear, peak 255; SSIM Gaussian 11/1.5 with automatic down-sampling); two-stage = "
        f"non-blind deconvolution with the estimated kernel (hyper-Laplacian, alpha 2/3, lambda "
        f"{nonblind.DEFAULT_LAM:g}, lowered to 20/sigma on images with noise std sigma > 0.004; "
        "outlier-robust for Lai's 'saturated' when available); "
        "error ratio = SSD(two-stage) / SSD(true kernel, same non-blind); gain = PSNR "
        "two-stage - PSNR of the blurry input (same protocol)",
        f"- non-blind method per image: {counts or 'none'}",
        "- s training: the networks' training, compilation included; s/image: image in, "
        "deblurred image out (training, kernel refit/polish, final deconvolution), wall clock",
        f"- images: {len(ok)} evaluated, {len(rows) - len(ok)} failed; "
        f"{_collapsed(ok)} kernels collapsed towards a delta (largest tap > {DELTA_PEAK})",
    ]
    published = [r for r in ok if _values([r], "psnr_two_stage_published").size]
    if PUBLISHED_LUMA.get(dataset) is not None and published:
        lines.append(
            f"- on the published tables' scale ({len(published)} images; studio-range luma "
            "as SelfDeblur's statistic_lai.m computes it, 1.32 dB above full range in PSNR): "
            f"two-stage {_mean(published, 'psnr_two_stage_published'):.2f} dB / SSIM "
            f"{_mean(published, 'ssim_two_stage_published'):.3f}, true kernel "
            f"{_mean(published, 'psnr_true_kernel_published'):.2f} dB"
        )
    lines += [
        "",
        "| | PSNR direct | SSIM direct | PSNR two-stage | SSIM two-stage | PSNR true kernel "
        "| SSIM true kernel | error ratio | ratio < 2 | ratio < 3 | kernel sim. | s training "
        "| s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def line(label, group):
        rs = metrics.success_rates([r["error_ratio"] for r in group], (2, 3))
        return (
            f"| {label} | {_mean(group, 'psnr_direct'):.2f} | {_mean(group, 'ssim_direct'):.3f}"
            f" | {_mean(group, 'psnr_two_stage'):.2f} | {_mean(group, 'ssim_two_stage'):.3f}"
            f" | {_mean(group, 'psnr_true_kernel'):.2f} | "
            f"{_mean(group, 'ssim_true_kernel'):.3f} | {_mean(group, 'error_ratio'):.2f} | "
            f"{rs[2]:.0%} | {rs[3]:.0%} | {_mean(group, 'kernel_similarity'):.3f} | "
            f"{_mean(group, 'seconds'):.0f} | {_mean(group, 'seconds_total'):.0f} |"
        )

    if ok:
        lines.append(line("**all**", ok))
        for cat in sorted({r["category"] for r in ok}):
            lines.append(line(cat, [r for r in ok if r["category"] == cat]))
        if dataset == "lai":
            for kname in sorted({r.get("kernel_name", "") for r in ok}):
                lines.append(line(kname, [r for r in ok if r.get("kernel_name", "") == kname]))
    fields = BUCKET_FIELDS.get(dataset, ("category",))
    lines += ["", f"Per bucket ({', '.join(fields)}):", ""] + bucket_table(rows, fields)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed:"] + [f"- {r['name']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def write_kernel_montage(path: str, kernels: dict, zoom: int = 4) -> None:
    """A grid of (estimated | true) kernel pairs, each scaled so its maximum is white."""
    size = max(max(e.shape[0], t.shape[0]) for e, t in kernels.values()) * zoom
    cols = 4
    cell_w, cell_h = 2 * size + 12, size + 16
    rows = (len(kernels) + cols - 1) // cols
    canvas = Image.new("L", (cols * cell_w, rows * cell_h), 40)
    draw = ImageDraw.Draw(canvas)
    for i, (name, (est, true)) in enumerate(sorted(kernels.items())):
        x0, y0 = (i % cols) * cell_w, (i // cols) * cell_h
        for j, k in enumerate((est, true)):
            k = np.asarray(k, np.float64)
            tile = image_io.to_uint8(np.kron(k / max(k.max(), 1e-12), np.ones((zoom, zoom))))
            off = (size - tile.shape[0]) // 2
            canvas.paste(Image.fromarray(tile), (x0 + 4 + j * (size + 4) + off, y0 + 14 + off))
        draw.text((x0 + 4, y0 + 2), f"{name} (est | true)", fill=255)
    image_io.atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
