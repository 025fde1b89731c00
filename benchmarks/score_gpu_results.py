r"""Scores, on the CPU, the Levin arrays that benchmarks/gpu_report.py brought back from a GPU.

  python benchmarks/score_gpu_results.py --results=<folder with levin_*.npz, or the files> \
      [--data=benchmarks/data] [--compare=docs/levin_fast_results.csv] [--out=scores.md]

Each ``levin_<precision>.npz`` holds, per image, the kernel and the network's image after
training on the GPU. Scoring follows ``jaxdeconv.bench.evaluate``: the two-stage image is the
hyper-Laplacian non-blind step with the estimated kernel, recomputed here (``--nonblind=final``:
``nonblind.final_deconv`` instead), the reference is the same step with the true kernel, and
every image is scored with the shift-aligned protocol (``metrics.aligned_psnr_ssim``): PSNR and
SSIM direct (the network's image), two-stage and true kernel, the error ratio (two-stage SSD
over true-kernel SSD), the kernel similarity (``metrics.kernel_similarity``: peak normalised
cross-correlation over all shifts) and the kernel's largest tap. The two-stage image computed
on the GPU is compared with the one recomputed here (``two_stage_gpu_psnr``: PSNR between the
two, a check that the same kernel gives the same result on both machines).

Prints one markdown table per file (with the `fast` preset's numbers on the same images from
``--compare``, when given), a precision comparison when there are several files, and writes
the per-image rows as CSV beside ``--out``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

COLUMNS = (
    "group",
    "name",
    "category",
    "kernel_size",
    "steps_done",
    "seconds",
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
    "two_stage_gpu_psnr",
)


def result_files(results: str | list[str]) -> list[str]:
    """The ``levin_*.npz`` files named by a folder, a file or a list of files."""
    if isinstance(results, str):
        results = [results]
    files: list[str] = []
    for r in results:
        files += sorted(glob.glob(os.path.join(r, "levin_*.npz"))) if os.path.isdir(r) else [r]
    if not files:
        raise FileNotFoundError(f"no levin_*.npz in {results}")
    return files


def load_group(path: str) -> dict:
    """One saved group: its arrays and ``meta`` (a dict)."""
    with np.load(path, allow_pickle=False) as z:
        g = {k: z[k] for k in z.files}
    g["meta"] = json.loads(str(g["meta"]))
    g["names"] = [str(n) for n in g["names"]]
    g["path"] = path
    return g


def _deconv(method: str):
    from jaxdeconv.classical import nonblind

    if method == "final":
        return lambda y, k: np.asarray(nonblind.final_deconv(y, k))
    if method != "hyper_laplacian":
        raise ValueError(f"unknown non-blind method {method!r}")
    return lambda y, k: np.asarray(nonblind.hyper_laplacian_deconv(y, k))


def _seconds_per_image(meta: dict) -> dict:
    """Training seconds per image: its batch's training time over the images in the batch."""
    out = {}
    for c in meta.get("chunks", []):
        for n in c["images"]:
            out[n] = c["train_s"] / max(len(c["images"]), 1)
    return out


def score_group(g: dict, data_root: str, nonblind: str = "hyper_laplacian", cache=None) -> list:
    """Per-image score rows (dicts with ``COLUMNS``) for one loaded group."""
    from jaxdeconv.bench import datasets, metrics

    deconv = _deconv(nonblind)
    cache = {} if cache is None else cache
    items = {it.name: it for it in datasets.load_levin(data_root, g["names"])}
    seconds = _seconds_per_image(g["meta"])
    label = g["meta"].get("precision", os.path.basename(g["path"]))
    rows = []
    for i, name in enumerate(g["names"]):
        it = items[name]
        t, left, h, w = (int(v) for v in g["box"][i])
        blurry = it.blurry[t : t + h, left : left + w]
        sharp = it.sharp[t : t + h, left : left + w]
        kernel = g["kernel"][i]
        key = (name, t, left, h, w, nonblind)
        if key not in cache:
            ref = deconv(blurry, it.kernel)
            cache[key] = metrics.aligned_psnr_ssim(ref, sharp)
        reference = cache[key]
        two_stage = deconv(blurry, kernel)
        direct = metrics.aligned_psnr_ssim(g["network"][i], sharp)
        staged = metrics.aligned_psnr_ssim(two_stage, sharp)
        gpu = g.get("two_stage")
        loss = g["loss"][i][: int(g["steps_done"][i])]
        rows.append(
            dict(
                group=label,
                name=name,
                category=it.category,
                kernel_size=int(kernel.shape[0]),
                steps_done=int(g["steps_done"][i]),
                seconds=seconds.get(name, float("nan")),
                final_loss=float(loss[-1]) if loss.size else float("nan"),
                psnr_direct=direct["psnr"],
                ssim_direct=direct["ssim"],
                psnr_two_stage=staged["psnr"],
                ssim_two_stage=staged["ssim"],
                psnr_true_kernel=reference["psnr"],
                ssim_true_kernel=reference["ssim"],
                error_ratio=float(staged["ssd"] / reference["ssd"]),
                error_ratio_direct=float(direct["ssd"] / reference["ssd"]),
                kernel_similarity=metrics.kernel_similarity(kernel, it.kernel),
                kernel_peak=float(np.max(kernel)),
                two_stage_gpu_psnr=(
                    metrics.psnr(gpu[i], two_stage) if gpu is not None else float("nan")
                ),
            )
        )
    return rows


def read_compare(path: str | None) -> dict:
    """Rows of an evaluate results.csv by image name ({} without a file)."""
    if not path or not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f) if r.get("status", "ok") == "ok"}


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _mean(values) -> float:
    v = [x for x in map(_num, values) if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _fmt(x, spec: str) -> str:
    x = _num(x)
    return format(x, spec) if np.isfinite(x) else "-"


def group_markdown(g: dict, rows: list, compare: dict, compare_label: str) -> str:
    from jaxdeconv.bench import metrics

    m = g["meta"]
    steps = sorted({r["steps_done"] for r in rows})
    lines = [
        f"### Levin, {len(rows)} images — preset `{m.get('preset')}` on {m.get('device_kind')} "
        f"({m.get('backend')}), precision setting `{m.get('precision')}`",
        "",
        f"- run {m.get('date')}, commit {m.get('git_commit') or '?'}, jax "
        f"{m.get('versions', {}).get('jax', '?')}; {m.get('num_steps')} steps per image "
        f"(done: {steps}); batches of {m.get('batch')} images (vmap); seed {m.get('seed')}",
        f"- training: {_fmt(_mean(r['seconds'] for r in rows), '.1f')} s per image (batch time "
        "over its images, compilation excluded)",
        "- protocol: shift-aligned PSNR/SSIM (15 px crop, ±10 px search in 0.25 px steps); "
        "two-stage = the non-blind step with the estimated kernel, recomputed on the CPU; error "
        "ratio = SSD(two-stage) / SSD(true kernel, same non-blind step)",
        "",
    ]
    head = (
        "| image | PSNR direct | SSIM direct | PSNR two-stage | SSIM two-stage | PSNR true kernel "
        "| error ratio | kernel sim. | kernel peak |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|"
    if compare:
        head += f" {compare_label}: PSNR two-stage | {compare_label}: ratio |"
        sep += "---|---|"
    lines += [head, sep]

    def line(label, rs):
        cells = [
            label,
            _fmt(_mean(r["psnr_direct"] for r in rs), ".2f"),
            _fmt(_mean(r["ssim_direct"] for r in rs), ".3f"),
            _fmt(_mean(r["psnr_two_stage"] for r in rs), ".2f"),
            _fmt(_mean(r["ssim_two_stage"] for r in rs), ".3f"),
            _fmt(_mean(r["psnr_true_kernel"] for r in rs), ".2f"),
            _fmt(_mean(r["error_ratio"] for r in rs), ".2f"),
            _fmt(_mean(r["kernel_similarity"] for r in rs), ".3f"),
            _fmt(_mean(r["kernel_peak"] for r in rs), ".3f"),
        ]
        if compare:
            cs = [compare.get(r["name"], {}) for r in rs]
            cells += [
                _fmt(_mean(c.get("psnr_two_stage") for c in cs), ".2f"),
                _fmt(_mean(c.get("error_ratio") for c in cs), ".2f"),
            ]
        return "| " + " | ".join(cells) + " |"

    for r in rows:
        lines.append(line(r["name"], [r]))
    lines.append(line("**mean**", rows))
    rates = metrics.success_rates([r["error_ratio"] for r in rows], (2, 3))
    agree = [r["two_stage_gpu_psnr"] for r in rows if np.isfinite(r["two_stage_gpu_psnr"])]
    lines += [
        "",
        f"Error ratio below 2: {rates[2]:.0%}, below 3: {rates[3]:.0%}. Two-stage image from the "
        f"GPU vs recomputed here: PSNR between them at least "
        f"{_fmt(min(agree, default=None), '.1f')} dB.",
        "",
    ]
    return "\n".join(lines)


def comparison_markdown(rows_by_group: dict) -> str:
    """Two-stage PSNR of the images every group finished, one column per group."""
    labels = list(rows_by_group)
    common = set.intersection(*({r["name"] for r in rs} for rs in rows_by_group.values()))
    if len(labels) < 2 or not common:
        return ""
    by = {g: {r["name"]: r for r in rs} for g, rs in rows_by_group.items()}
    lines = [
        "### Precision settings on the same images (two-stage PSNR, dB)",
        "",
        "| image | " + " | ".join(labels) + f" | {labels[1]} - {labels[0]} |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    names = [r["name"] for r in rows_by_group[labels[0]] if r["name"] in common]
    for n in names + ["**mean**"]:
        vals = [
            _mean(by[g][m]["psnr_two_stage"] for m in (names if n == "**mean**" else [n]))
            for g in labels
        ]
        lines.append(
            f"| {n} | " + " | ".join(_fmt(v, ".2f") for v in vals) + f" | "
            f"{_fmt(vals[1] - vals[0], '+.2f')} |"
        )
    return "\n".join(lines + [""])


def score(
    results: str | list[str],
    data_root: str,
    *,
    compare: str | None = None,
    compare_label: str = "fast",
    nonblind: str = "hyper_laplacian",
) -> tuple[str, dict]:
    """Scores every group; returns (markdown, {group label: rows})."""
    cache: dict = {}
    cmp_rows = read_compare(compare)
    parts, rows_by_group = [], {}
    for path in result_files(results):
        g = load_group(path)
        rows = score_group(g, data_root, nonblind, cache)
        label = rows[0]["group"] if rows else os.path.basename(path)
        rows_by_group[label] = rows
        if g["meta"].get("smoke"):  # crops, a few steps: not comparable with full runs
            parts.append("(smoke run: these numbers only show that the chain works)\n")
        parts.append(
            group_markdown(g, rows, {} if g["meta"].get("smoke") else cmp_rows, compare_label)
        )
    parts.append(comparison_markdown(rows_by_group))
    return "\n".join(p for p in parts if p), rows_by_group


def rows_csv(rows_by_group: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for rows in rows_by_group.values():
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def main(argv) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    md, rows = score(
        f.results,
        f.data,
        compare=f.compare,
        compare_label=f.compare_label,
        nonblind=f.nonblind,
    )
    print(md)
    if f.out:
        with open(f.out, "w") as fh:
            fh.write(md)
        with open(os.path.splitext(f.out)[0] + ".csv", "w") as fh:
            fh.write(rows_csv(rows))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_list("results", None, "Folder(s) with levin_*.npz, or the files.", required=True)
    flags.DEFINE_string("data", os.path.join(REPO, "benchmarks", "data"), "Folder with levin/.")
    flags.DEFINE_string(
        "compare", os.path.join(REPO, "docs", "levin_fast_results.csv"), "results.csv to compare."
    )
    flags.DEFINE_string("compare_label", "fast", "Name of the compared run in the table.")
    flags.DEFINE_enum("nonblind", "hyper_laplacian", ["hyper_laplacian", "final"], "Non-blind.")
    flags.DEFINE_string("out", None, "Write the markdown here (and the rows as .csv beside it).")
    app.run(main)
