r"""Scores, on the CPU, the Levin and Lai arrays that benchmarks/gpu_report.py brought back.

  python benchmarks/score_gpu_results.py --results=<folder with levin_*.npz / lai_*.npz, or files> \
      [--data=benchmarks/data] [--lai_data=../shared/data] [--compare=docs/levin_fast_results.csv] \
      [--out=scores.md] [--csv_dir=docs]

Each ``<dataset>_<label>.npz`` holds, per image, the kernel and the network's image after training
on the GPU (one file per group of one shape and kernel size). Scoring follows
``jaxdeconv.bench.evaluate``: the two-stage image is the protocol's non-blind step with the
estimated kernel (``evaluate.nonblind_deconv``: hyper-Laplacian, outlier-robust for Lai's
'saturated'; ``--nonblind=final``: ``nonblind.final_deconv`` instead), recomputed here; the
reference is the same step with the true kernel, and every image is scored with the shift-aligned
protocol (``metrics.aligned_psnr_ssim``): PSNR and SSIM direct (the network's image), two-stage and
true kernel, the error ratio (two-stage SSD over true-kernel SSD), the kernel similarity
(``metrics.kernel_similarity``) and the kernel's largest tap. Lai rows add the published scale
(``evaluate.published_scores``: studio-range luma as SelfDeblur's statistic_lai.m, for the
two-stage, true-kernel and direct images). The two-stage image computed on the GPU is compared with
the one recomputed here (``two_stage_gpu_psnr``).

Levin sharp images and kernels come from ``--data`` (benchmarks/data holds all 32); Lai's from
``--lai_data`` (the sharp images do not travel to the GPU machine: ../shared/data).

Groups are labelled ``'<dataset> <precision>'``, plus ``' q<config>'`` for the question phase's
files (issue 40: meta ``question``); every row carries ``config`` (the question config, else
''), ``kernel_size_convention`` (meta's; 'full' for files from before it was recorded) and
``precision``.

Prints one markdown table per group (with the `fast` preset's numbers on the same images from
``--compare``, when given), so one per question config, a comparison of the question configs
on the images all of them finished, a precision comparison when there are several, writes the
rows as CSV beside ``--out``, and with ``--csv_dir`` the docs-ready tables
``levin_paper_gpu_results.csv`` (always the 32 Levin images at ``--precision``, question rows
aside: those not in the results are taken from ``--previous``, the issue-16 H100 run of the 8
K = 23 images, with their ``source``, else marked ``not run``), ``lai_paper_gpu_results.csv``
(the Lai images run) and, when there are question rows, ``levin_paper_gpu_question_results.csv``
(every question row, both configs).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)

from jaxdeconv.bench.protocol import PUBLISHED_SCORES, SCORES  # noqa: E402

# Lai's published scale (evaluate.published_scores, and the direct image the same way).
PUBLISHED = ("psnr_direct_published", "ssim_direct_published", *PUBLISHED_SCORES)
_NAMES = ("name", "category", "kernel_name", "kernel_size", "nonblind_method")
# The run's facts every row carries: the question config ('' outside the question phase), the
# kernel size convention (files from before it was recorded: 'full') and the precision setting.
RUN_COLUMNS = ("config", "kernel_size_convention", "precision")
COLUMNS = (
    ("group", "dataset", *RUN_COLUMNS, *_NAMES, "steps_done", "seconds")
    + SCORES
    + ("two_stage_gpu_psnr",)
    + PUBLISHED
)
# The docs-ready tables (--csv_dir).
_RUN = ("status", "source", "steps_done", "seconds_per_image")
LEVIN_CSV_COLUMNS = (
    ("name", "category", "kernel_size", *RUN_COLUMNS, *_RUN) + SCORES + ("two_stage_gpu_psnr",)
)
# Every question row (issue 40), config by config (--csv_dir, when there are any).
QUESTION_CSV_COLUMNS = (
    ("config", "name", "category", "kernel_size", "kernel_size_convention", "precision", *_RUN)
    + SCORES
    + ("two_stage_gpu_psnr",)
)
LAI_CSV_COLUMNS = (
    (*_NAMES, "status", "steps_done", "seconds_per_image")
    + SCORES
    + PUBLISHED
    + ("two_stage_gpu_psnr",)
)
DEFAULT_LAI_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def result_files(results: str | list[str]) -> list[str]:
    """The ``levin_*.npz`` and ``lai_*.npz`` files named by a folder, a file or a list."""
    if isinstance(results, str):
        results = [results]
    files: list[str] = []
    for r in results:
        if os.path.isdir(r):
            for pattern in ("levin_*.npz", "lai_*.npz"):
                files += sorted(glob.glob(os.path.join(r, pattern)))
        else:
            files.append(r)
    if not files:
        raise FileNotFoundError(f"no levin_*.npz or lai_*.npz in {results}")
    return files


def load_group(path: str) -> dict:
    """One saved group: its arrays and ``meta`` (a dict)."""
    with np.load(path, allow_pickle=False) as z:
        g = {k: z[k] for k in z.files}
    g["meta"] = json.loads(str(g["meta"]))
    g["meta"].setdefault("dataset", "levin")  # files from before issue 29: Levin only
    g["names"] = [str(n) for n in g["names"]]
    g["path"] = path
    return g


def _deconv(method: str, category: str):
    """``(name, deconv(y, k))``: the protocol's non-blind step for ``category``
    (``evaluate.nonblind_method``) or, for ``method='final'``, ``nonblind.final_deconv``."""
    from jaxdeconv.bench import evaluate
    from jaxdeconv.classical import nonblind

    if method == "final":
        return "final", lambda y, k: np.asarray(nonblind.final_deconv(y, k))
    if method not in ("protocol", "hyper_laplacian"):
        raise ValueError(f"unknown non-blind method {method!r}")
    name = evaluate.nonblind_method(category)
    return name, lambda y, k: evaluate.nonblind_deconv(name, y, k)


def _seconds_per_image(meta: dict) -> dict:
    """Training seconds per image: its batch's training time over the images in the batch."""
    out = {}
    for c in meta.get("chunks", []):
        for n in c["images"]:
            out[n] = c["train_s"] / max(len(c["images"]), 1)
    return out


def _load_items(dataset: str, roots: dict, names: list[str]) -> dict:
    from jaxdeconv.bench import datasets

    loader = {"levin": datasets.load_levin, "lai": datasets.load_lai}[dataset]
    return {it.name: it for it in loader(roots[dataset], names)}


def group_label(g: dict) -> str:
    """``'<dataset> <precision>'``, plus ``' q<label>'`` for a question config's file: the files
    of one label (one per shape and kernel size) add up."""
    m = g["meta"]
    label = f"{m['dataset']} {m.get('precision', os.path.basename(g['path']))}"
    return label + (f" q{m['question']}" if m.get("question") else "")


def score_group(g: dict, roots, nonblind: str = "protocol", cache=None) -> list:
    """Per-image score rows (dicts with ``COLUMNS``) for one loaded group. ``roots``: the data
    folder of each dataset (``{'levin': ..., 'lai': ...}``; a string serves both)."""
    from jaxdeconv.bench import evaluate
    from jaxdeconv.classical import metrics

    dataset = g["meta"]["dataset"]
    roots = roots if isinstance(roots, dict) else {"levin": roots, "lai": roots}
    cache = {} if cache is None else cache
    items = _load_items(dataset, roots, g["names"])
    seconds = _seconds_per_image(g["meta"])
    question = g["meta"].get("question") or ""
    label = group_label(g)
    luma = evaluate.PUBLISHED_LUMA.get(dataset)
    rows = []
    for i, name in enumerate(g["names"]):
        it = items[name]
        t, left, h, w = (int(v) for v in g["box"][i])
        blurry = it.blurry[t : t + h, left : left + w]
        sharp = it.sharp[t : t + h, left : left + w]
        kernel = g["kernel"][i]
        method, deconv = _deconv(nonblind, it.category)
        key = (dataset, name, t, left, h, w, method)
        if key not in cache:
            true_image = deconv(blurry, it.kernel)
            cache[key] = (true_image, metrics.aligned_psnr_ssim(true_image, sharp))
        true_image, reference = cache[key]
        two_stage = deconv(blurry, kernel)
        direct = metrics.aligned_psnr_ssim(g["network"][i], sharp)
        staged = metrics.aligned_psnr_ssim(two_stage, sharp)
        gpu = g.get("two_stage")
        loss = g["loss"][i][: int(g["steps_done"][i])]
        row = dict(
            group=label,
            dataset=dataset,
            config=question,
            kernel_size_convention=g["meta"].get("kernel_size_convention", "full"),
            precision=g["meta"].get("precision", ""),
            name=name,
            category=it.category,
            kernel_name=it.kernel_name,
            kernel_size=int(kernel.shape[0]),
            nonblind_method=method,
            steps_done=int(g["steps_done"][i]),
            num_steps=int(g["meta"].get("num_steps", 0)),
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
        row.update(
            evaluate.published_scores(dataset, two_stage, true_image, sharp, staged, reference)
        )
        if luma is not None:  # the direct image on the published scale too
            pub = metrics.aligned_psnr_ssim(luma(g["network"][i]), luma(sharp))
            row.update(psnr_direct_published=pub["psnr"], ssim_direct_published=pub["ssim"])
        rows.append(row)
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
    from jaxdeconv.classical import metrics

    m = g["meta"]
    steps = sorted({r["steps_done"] for r in rows})
    question = (
        f", question config `{m['question']}` (overrides {m.get('question_overrides') or 'none'})"
        if m.get("question")
        else ""
    )
    lines = [
        f"### {m['dataset'].capitalize()}, {len(rows)} images — preset `{m.get('preset')}` on "
        f"{m.get('device_kind')} ({m.get('backend')}), precision setting `{m.get('precision')}`"
        f"{question}",
        "",
        f"- kernel sizes: {m.get('kernel_size_convention', 'full')} "
        f"({sorted({r['kernel_size'] for r in rows})} px); overrides on the preset: "
        f"{m.get('overrides') or 'none'}",
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
    agree = [r["two_stage_gpu_psnr"] for r in rows if not np.isnan(r["two_stage_gpu_psnr"])]
    lines += [
        "",
        f"Error ratio below 2: {rates[2]:.0%}, below 3: {rates[3]:.0%}. Two-stage image from the "
        f"GPU vs recomputed here: PSNR between them at least "
        f"{format(min(agree), '.1f') if agree else '-'} dB (inf: identical).",
        "",
    ]
    return "\n".join(lines)


def comparison_markdown(
    rows_by_group: dict, title: str = "Precision settings on the same images"
) -> str:
    """Two-stage PSNR of the images every group has, one column per group."""
    labels = list(rows_by_group)
    if len(labels) < 2:
        return ""
    common = set.intersection(*({r["name"] for r in rs} for rs in rows_by_group.values()))
    if not common:
        return ""
    by = {g: {r["name"]: r for r in rs} for g, rs in rows_by_group.items()}
    lines = [
        f"### {title} (two-stage PSNR, dB)",
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
    lai_root: str = DEFAULT_LAI_DATA,
    compare: str | None = None,
    compare_label: str = "fast",
    nonblind: str = "protocol",
) -> tuple[str, dict]:
    """Scores every file; returns (markdown, {group label: rows}), one label per dataset,
    precision and question config (``'levin default'``, ``'levin float32 qb'``:
    :func:`group_label`): the files of one label (one per shape and kernel size) add up."""
    cache: dict = {}
    cmp_rows = read_compare(compare)
    roots = {"levin": data_root, "lai": lai_root}
    parts, rows_by_group, groups = [], {}, {}
    for path in result_files(results):
        g = load_group(path)
        rows = score_group(g, roots, nonblind, cache)
        label = rows[0]["group"] if rows else os.path.basename(path)
        rows_by_group.setdefault(label, []).extend(rows)
        groups.setdefault(label, g)
    for label, rows in rows_by_group.items():
        g = groups[label]
        if g["meta"].get("smoke"):  # crops, a few steps: not comparable with full runs
            parts.append("(smoke run: these numbers only show that the chain works)\n")
        use_compare = not g["meta"].get("smoke") and g["meta"]["dataset"] == "levin"
        parts.append(group_markdown(g, rows, cmp_rows if use_compare else {}, compare_label))
    question = {k: v for k, v in rows_by_group.items() if v and v[0]["config"]}
    finished = {k: [r for r in v if r["steps_done"] == r["num_steps"]] for k, v in question.items()}
    parts.append(comparison_markdown(finished, "Question configs on the images all finished"))
    others = {k: v for k, v in rows_by_group.items() if k not in question}
    parts.append(comparison_markdown(others))
    return "\n".join(p for p in parts if p), rows_by_group


def _csv_text(columns: Sequence[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def rows_csv(rows_by_group: dict) -> str:
    return _csv_text(COLUMNS, [r for rows in rows_by_group.values() for r in rows])


def _docs_row(r: dict, source: str) -> dict:
    r = dict(r, status="ok", source=source, seconds_per_image=r.get("seconds"))
    r.setdefault("kernel_size_convention", "full")  # earlier CSVs: all at the full size
    return r


def docs_tables(
    rows_by_group: dict, precision: str = "default", previous: str | None = None
) -> dict:
    """The docs-ready rows: ``{'levin': 32 rows, 'lai': the Lai images run, 'question': every
    question row}``; Levin and Lai at ``precision``. A Levin image without a finished result
    here (all ``num_steps``) is taken from ``previous`` (an earlier run's CSV of this script,
    ``source`` = its file name), else its row says ``not run`` (or ``partial``, with the steps
    done). The question rows (both configs, any precision) are by config, then image."""
    from jaxdeconv.bench import datasets

    levin = {r["name"]: r for r in rows_by_group.get(f"levin {precision}", [])}
    old = read_compare(previous)
    label = os.path.basename(previous) if previous else ""
    names = [f"im{i}_kernel{j}" for i in range(1, 5) for j in range(1, 9)]
    out_levin = []
    for n in names:
        r = levin.get(n)
        done = r is not None and r["steps_done"] == r["num_steps"]
        if done:
            out_levin.append(_docs_row(r, "this run"))
        elif n in old:
            out_levin.append(_docs_row(dict(old[n]), label))
        elif r is not None:
            out_levin.append(dict(_docs_row(r, "this run"), status="partial"))
        else:
            out_levin.append(dict(name=n, category=n.split("_")[1], status="not run"))
    order = {c: i for i, c in enumerate(datasets.LAI_CATEGORIES)}
    lai = sorted(
        rows_by_group.get(f"lai {precision}", []),
        key=lambda r: (order.get(r["category"], 9), r["name"]),
    )
    out_lai = []
    for r in lai:
        status = "ok" if r["steps_done"] == r["num_steps"] else "partial"
        out_lai.append(dict(_docs_row(r, "this run"), status=status))
    rank = {n: i for i, n in enumerate(names)}
    question = sorted(
        (r for rows in rows_by_group.values() for r in rows if r.get("config")),
        key=lambda r: (r["config"], r["precision"], rank.get(r["name"], 99), r["name"]),
    )
    out_question = [
        dict(
            _docs_row(r, "this run"),
            status="ok" if r["steps_done"] == r["num_steps"] else "partial",
        )
        for r in question
    ]
    return {"levin": out_levin, "lai": out_lai, "question": out_question}


def write_docs_csvs(tables: dict, csv_dir: str) -> list[str]:
    """Writes ``levin_paper_gpu_results.csv`` and, with rows, ``lai_paper_gpu_results.csv`` and
    ``levin_paper_gpu_question_results.csv``."""
    os.makedirs(csv_dir, exist_ok=True)
    written = []
    for name, columns, file in (
        ("levin", LEVIN_CSV_COLUMNS, "levin_paper_gpu_results.csv"),
        ("lai", LAI_CSV_COLUMNS, "lai_paper_gpu_results.csv"),
        ("question", QUESTION_CSV_COLUMNS, "levin_paper_gpu_question_results.csv"),
    ):
        if not tables.get(name):
            continue
        path = os.path.join(csv_dir, file)
        with open(path, "w") as fh:
            fh.write(_csv_text(columns, tables[name]))
        written.append(path)
    return written


def main(argv) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    md, rows = score(
        f.results,
        f.data,
        lai_root=f.lai_data,
        compare=f.compare,
        compare_label=f.compare_label,
        nonblind=f.nonblind,
    )
    print(md)
    if f.out:
        os.makedirs(os.path.dirname(os.path.abspath(f.out)), exist_ok=True)
        with open(f.out, "w") as fh:
            fh.write(md)
        with open(os.path.splitext(f.out)[0] + ".csv", "w") as fh:
            fh.write(rows_csv(rows))
    if f.csv_dir:
        tables = docs_tables(rows, f.precision, f.previous)
        for path in write_docs_csvs(tables, f.csv_dir):
            print(f"wrote {path}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_list("results", None, "Folder(s) with levin_/lai_*.npz, or files.", required=True)
    flags.DEFINE_string("data", os.path.join(REPO, "benchmarks", "data"), "Folder with levin/.")
    flags.DEFINE_string("lai_data", DEFAULT_LAI_DATA, "Folder with lai/ (with the sharp images).")
    flags.DEFINE_string(
        "compare", os.path.join(REPO, "docs", "levin_fast_results.csv"), "results.csv to compare."
    )
    flags.DEFINE_string("compare_label", "fast", "Name of the compared run in the table.")
    flags.DEFINE_enum(
        "nonblind", "protocol", ["protocol", "hyper_laplacian", "final"], "Non-blind step."
    )
    flags.DEFINE_string("csv_dir", None, "Write the docs-ready CSVs here (e.g. docs).")
    flags.DEFINE_string("precision", "default", "The precision label of the docs-ready CSVs.")
    flags.DEFINE_string(
        "previous",
        os.path.join(REPO, "docs", "levin_paper_gpu_k23_results.csv"),
        "Earlier Levin results (this script's CSV) for images not in --results.",
    )
    flags.DEFINE_string("out", None, "Write the markdown here (and the rows as .csv beside it).")
    app.run(main)
