"""Running several variants on the same images and seeds, and comparing them.

Each variant is a full benchmark run (``evaluate.run_benchmark``) in its own sub-folder, so it
resumes the same way; the comparison is ``ablation.md`` (one row per variant) and
``psnr_vs_step.png`` (mean PSNR of the network's own image against the training step, from
``config.snapshot_every`` snapshots).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import ml_collections
import numpy as np
from PIL import Image, ImageDraw

from jaxdeconv import variants
from jaxdeconv.app import image_io
from jaxdeconv.bench import evaluate
from jaxdeconv.classical import metrics

_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def run_ablation(
    names: Sequence[str],
    base: ml_collections.ConfigDict,
    dataset: str,
    root: str,
    workdir: str,
    *,
    images: Sequence[str] | None = None,
    base_name: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, list[dict]]:
    """Runs every variant in ``names`` on ``images``; writes the comparison into ``workdir``."""
    results = {}
    for name in names:
        cfg = variants.apply(name, base)
        log(f"== variant {name}")
        results[name] = evaluate.run_benchmark(
            dataset,
            root,
            cfg,
            os.path.join(workdir, name),
            names=images,
            preset=f"{base_name}+{name}",
            log=log,
        )
    image_io.write_text(
        os.path.join(workdir, "ablation.md"),
        comparison_markdown(results, dataset=dataset, base=base, base_name=base_name),
    )
    plot_curves(os.path.join(workdir, "psnr_vs_step.png"), results)
    return results


def _mean(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return float(np.mean(vals)) if vals else float("nan")


def comparison_markdown(results: dict[str, list[dict]], *, dataset, base, base_name="") -> str:
    first = next(iter(results.values()), [])
    lines = [
        f"## Ablation on {dataset} — base preset `{base_name or 'custom'}`",
        "",
        f"- images ({len(first)}): {', '.join(r['name'] for r in first)}",
        f"- steps: {base.num_steps}, seed: {base.seed}; protocol as in docs/results.md",
        "",
        "| variant | PSNR direct | SSIM direct | PSNR two-stage | SSIM two-stage | error ratio |"
        " ratio < 3 | s/image | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        ok = [r for r in rows if r["status"] == "ok"]
        rate = metrics.success_rates([r["error_ratio"] for r in ok], (3,))[3] if ok else np.nan
        lines.append(
            f"| {name} | {_mean(ok, 'psnr_direct'):.2f} | {_mean(ok, 'ssim_direct'):.3f} | "
            f"{_mean(ok, 'psnr_two_stage'):.2f} | {_mean(ok, 'ssim_two_stage'):.3f} | "
            f"{_mean(ok, 'error_ratio'):.2f} | {rate:.0%} | {_mean(ok, 'seconds'):.0f} | "
            f"{len(rows) - len(ok)} |"
        )
    return "\n".join(lines) + "\n"


def mean_curve(rows: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    curves = [np.asarray(r["psnr_curve"]) for r in rows if r.get("psnr_curve")]
    if not curves or len({c.shape for c in curves}) != 1:
        return None
    stacked = np.stack(curves)
    return stacked[0, :, 0], stacked[:, :, 1].mean(axis=0)


def plot_curves(path: str, results: dict[str, list[dict]], size=(640, 400)) -> bool:
    """Line plot of mean PSNR against step per variant; False if no variant has curves."""
    curves = {n: c for n, rows in results.items() if (c := mean_curve(rows)) is not None}
    if not curves:
        return False
    w, h = size
    left, right, top, bottom = 60, 150, 20, 40
    xs = np.concatenate([c[0] for c in curves.values()])
    ys = np.concatenate([c[1] for c in curves.values()])
    x0, x1 = 0.0, float(xs.max())
    y0, y1 = float(np.floor(ys.min())), float(np.ceil(ys.max()))
    y1 = y1 if y1 > y0 else y0 + 1

    def to_px(x, y):
        return (
            left + (x - x0) / (x1 - x0 or 1) * (w - left - right),
            top + (y1 - y) / (y1 - y0) * (h - top - bottom),
        )

    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for frac in np.linspace(0, 1, 5):
        yv = y0 + frac * (y1 - y0)
        _, py = to_px(x0, yv)
        draw.text((5, py - 6), f"{yv:.1f}", fill="black")
        xv = x0 + frac * (x1 - x0)
        px, _ = to_px(xv, y0)
        draw.text((px - 10, h - bottom + 5), f"{int(xv)}", fill="black")
    draw.text((left, h - 15), "training step", fill="black")
    draw.text((5, 3), "PSNR of the network image (dB)", fill="black")
    for i, (name, (cx, cy)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        draw.line([to_px(a, b) for a, b in zip(cx, cy, strict=True)], fill=colour, width=2)
        draw.text((w - right + 8, top + 14 * i), name, fill=colour)
    image_io.atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return True
