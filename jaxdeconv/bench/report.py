"""The benchmark's report: ``results.csv``, the tables of ``summary.md`` (overall, per
category and per bucket) and the montage of estimated against true kernels."""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import time
from collections.abc import Sequence

import jax
import numpy as np
from PIL import Image, ImageDraw

from jaxdeconv.app import image_io
from jaxdeconv.bench.protocol import COLUMNS, PUBLISHED_LUMA, config_hash
from jaxdeconv.classical import metrics, nonblind
from jaxdeconv.classical.diagnose import DELTA_PEAK

# Per-bucket tables of summary.md, by dataset.
BUCKET_FIELDS = {
    "levin": ("category",),
    "lai": ("category", "kernel_name"),
    "synthetic": ("kernel_bucket", "support", "noise", "jpeg", "smooth", "size_bucket"),
}
# The target group on the synthetic suite: kernels up to this size at <= 1% noise.
TARGET_MAX_KERNEL = 35
TARGET_MAX_NOISE = 0.01


def _machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, JAX {jax.__version__} "
        f"backend {jax.default_backend()} ({dev.device_kind})"
    )


def commit_id() -> str:
    """The short commit of this benchmark code (``+uncommitted`` when ``bench/`` has changes)."""
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
        f"- date: {time.strftime('%Y-%m-%d')}, commit: {commit or commit_id()}, "
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
