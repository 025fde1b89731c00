r"""Variants of an estimator side by side: their per-image rows gathered into one labelled CSV,
and a per-blur table against the committed `fast` rows on the images every variant finished.

  python benchmarks/variant_table.py collect --out=docs/lai20_kernel_generators_results.csv \
      --runs="coord, one scale=runs/k25_coord_lai20" --runs="unet=runs/k25_unet_lai20"
  python benchmarks/variant_table.py table --dataset=lai \
      --csv=docs/lai20_kernel_generators_results.csv [--variant=coord --variant=unet]
  python benchmarks/variant_table.py montage --out=docs/failures.png \
      --runs="seed 0=runs/a" --runs="seed 1=runs/b" [--images=im4_kernel4,im4_kernel8]

``collect`` reads each run folder's ``images/*.json`` (``experiments/benchmark.py``'s
per-image records; failed images left out) and merges them into ``--out``: a row of the same
(variant, image) is replaced, every other row kept. ``table`` prints, per kernel size, each
variant's mean two-stage PSNR (Lai: the published scale; Levin and the synthetic suite: their
own protocol) / right kernels (error ratio < 2) / mean kernel similarity, `fast`'s committed
rows first, on the images common to all the variants shown; then each variant on all its
images against `fast` on the same ones; ``--oracle`` adds the best of them per image (what a
perfect choice among them would reach). The synthetic suite is grouped by its kernel-size
bucket (``kernel_bucket``) rather than by size. ``--fast=CSV --fast_variant=LABEL`` takes the
reference from a collected CSV instead (e.g. `fast` run on the same machine as the variants).
``montage`` draws one row per image, the true kernel first and then each run's estimate
(``images/NAME_kernel.npy``) with its two-stage PSNR and error ratio, every tile on one scale
of side (the largest kernel's) and scaled to its own maximum: where runs fail alike, and how.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Sequence

import numpy as np

from jaxdeconv.app import image_io

COLUMNS = (
    "variant",
    "config_hash",
    "name",
    "category",
    "kernel_name",
    "kernel_size",
    "kernel_size_convention",
    "psnr_two_stage",
    "psnr_two_stage_published",
    "psnr_true_kernel",
    "psnr_direct",
    "error_ratio",
    "kernel_similarity",
    "kernel_peak",
    "psnr_blurry",
    "seconds_total",
    "kernel_bucket",
)
FAST_ROWS = {
    "lai": "docs/lai_all_fast_results.csv",
    "levin": "docs/levin_fast_results.csv",
    "synthetic": "docs/synthetic_dev_fast_results.csv",
}
RIGHT_RATIO = 2.0


def run_rows(label: str, folder: str) -> list[dict]:
    """The finished images of one benchmark run folder as rows of :data:`COLUMNS`."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "images", "*.json"))):
        with open(path) as f:
            saved = json.load(f)
        row = saved["row"]
        if row.get("status") != "ok":
            continue
        row = {**row, "variant": label, "config_hash": saved.get("config_hash", "")}
        rows.append({c: row.get(c, "") for c in COLUMNS})
    return rows


def merge(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """``old`` with ``new`` added; a new row replaces an old one of the same variant and image."""
    keys = {(r["variant"], r["name"]) for r in new}
    return [r for r in old if (r["variant"], r["name"]) not in keys] + list(new)


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: str, rows: Sequence[dict]) -> None:
    """``rows`` (columns :data:`COLUMNS`) to ``path``, replaced whole or not at all: ``collect``
    rewrites the CSV it merged into."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, extrasaction="ignore", restval="")
    w.writeheader()
    w.writerows(rows)
    image_io.write_text(path, buf.getvalue())


def summary(rows: Sequence[dict], psnr: str) -> tuple[float, int, float]:
    """(mean PSNR, right kernels, mean similarity) of ``rows``."""
    n = len(rows)
    return (
        sum(float(r[psnr]) for r in rows) / n,
        sum(float(r["error_ratio"]) < RIGHT_RATIO for r in rows),
        sum(float(r["kernel_similarity"]) for r in rows) / n,
    )


def best_of(rows: Sequence[dict], psnr: str) -> tuple[float, int]:
    """Per image, the best of several estimates: an oracle (it knows the sharp image).
    ``rows`` holds one list of rows per image; returns (mean of the per-image best PSNR,
    images where at least one estimate's kernel is right)."""
    best = [max(float(r[psnr]) for r in image) for image in rows]
    right = sum(any(float(r["error_ratio"]) < RIGHT_RATIO for r in image) for image in rows)
    return sum(best) / len(best), right


def montage_grid(
    true: Sequence[np.ndarray], estimates: Sequence[Sequence[np.ndarray]], zoom: int = 4
) -> np.ndarray:
    """The tiles of :func:`montage` as one grey ``[rows * (S + 2), (1 + runs) * (S + 2)]``
    array in [0, 1] (``S = zoom * the largest side``): row ``i`` holds ``true[i]`` then
    ``estimates[i]``, each centred on its tile and scaled to its own maximum; 2 px gaps."""
    side = max(k.shape[0] for k in [*true, *(e for row in estimates for e in row)])
    cell = zoom * side + 2
    cols = 1 + max(len(row) for row in estimates)
    grid = np.full((len(true) * cell, cols * cell), 0.25)
    for i, row in enumerate(estimates):
        for j, k in enumerate([true[i], *row]):
            k = np.asarray(k, np.float64)
            tile = np.kron(k / max(k.max(), 1e-12), np.ones((zoom, zoom)))
            off = (cell - 2 - tile.shape[0]) // 2
            top, left = i * cell + off, j * cell + off
            grid[i * cell : (i + 1) * cell - 2, j * cell : (j + 1) * cell - 2] = 0.0
            grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def montage(
    path: str, runs: dict[str, str | Sequence[str]], images: Sequence[str] | None = None
) -> None:
    """:func:`montage_grid` of the images every run finished (or ``images``), labelled, to
    ``path`` (PNG). A run is one folder or several (a run split over folders)."""
    from PIL import Image, ImageDraw

    rows, where = {}, {}
    for label, folders in runs.items():
        rows[label], where[label] = {}, {}
        for folder in [folders] if isinstance(folders, str) else folders:
            for r in run_rows(label, folder):
                rows[label][r["name"]], where[label][r["name"]] = r, folder
    names = sorted(set.intersection(*(set(r) for r in rows.values())))
    if images:
        missing = [n for n in images if n not in names]
        if missing:
            raise ValueError(f"image(s) {missing} are not finished in every run")
        names = list(images)
    if not names:
        raise ValueError("no image is finished in every run")
    first = next(iter(where.values()))
    true = [np.load(os.path.join(first[n], "images", f"{n}_true_kernel.npy")) for n in names]
    est = [
        [np.load(os.path.join(where[label][n], "images", f"{n}_kernel.npy")) for label in runs]
        for n in names
    ]
    grid = montage_grid(true, est)
    cell = grid.shape[0] // len(names)
    head, left = 16, 110
    canvas = Image.new("L", (left + grid.shape[1], head + grid.shape[0] + 14 * len(names)), 40)
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(["true", *runs]):
        draw.text((left + j * cell + 2, 2), label[: cell // 6], fill=255)
    for i, n in enumerate(names):
        y0 = head + i * (cell + 14)
        canvas.paste(
            Image.fromarray(image_io.to_uint8(grid[i * cell : (i + 1) * cell])), (left, y0)
        )
        draw.text((2, y0 + cell // 2 - 6), n, fill=255)
        for j, label in enumerate(runs):
            r = rows[label][n]
            note = f"{float(r['psnr_two_stage']):.1f} ({float(r['error_ratio']):.1f})"
            draw.text((left + (j + 1) * cell + 2, y0 + cell), note, fill=255)
    image_io.atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def table(
    dataset: str, fast: Sequence[dict], variants: dict[str, Sequence[dict]], oracle: bool = False
) -> str:
    """Markdown: per kernel size and in all, `fast` then each variant on the common images,
    then one line per variant on all its own images against `fast` on the same ones. With
    ``oracle``, a last column: per image the best PSNR of all those shown / the images where
    any of them found a right kernel (what a perfect choice among them would reach)."""
    psnr = "psnr_two_stage_published" if dataset == "lai" else "psnr_two_stage"
    by = {"fast": {r["name"]: r for r in fast if r.get("status", "ok") == "ok"}}
    by.update({v: {r["name"]: r for r in rows} for v, rows in variants.items()})
    common = sorted(set.intersection(*(set(rows) for rows in by.values())))
    if not common:
        raise ValueError("no image is common to fast and every variant")
    names = list(by)
    lines = [
        f"On the {len(common)} images common to all; cells: two-stage dB / right kernels "
        f"(ratio < {RIGHT_RATIO:g}) / kernel similarity.",
        "",
        "| blur | images | "
        + " | ".join(f"`{n}`" if n == "fast" else n for n in names)
        + (" | best per image |" if oracle else " |"),
        "|---|---|" + "---|" * (len(names) + oracle),
    ]

    def group(name: str) -> tuple[int | str, str]:  # (sort key, label) of an image's blur group
        r = by["fast"][name]
        if dataset == "synthetic":  # buckets such as 'k09-19', zero-padded: they sort as text
            return r["kernel_bucket"], r["kernel_bucket"]
        return int(r["kernel_size"]), f"{r['kernel_size']} px"

    groups = {n: group(n) for n in common}
    for key in [*sorted(set(groups.values())), None]:
        sel = [n for n in common if key is None or groups[n] == key]
        cells = []
        for v in names:
            m, right, sim = summary([by[v][n] for n in sel], psnr)
            cells.append(f"{m:.2f} / {right} / {sim:.2f}")
        if oracle:
            m, right = best_of([[by[v][n] for v in names] for n in sel], psnr)
            cells.append(f"{m:.2f} / {right}")
        label = "**all**" if key is None else key[1]
        lines.append(f"| {label} | {len(sel)} | " + " | ".join(cells) + " |")
    lines.append("")
    for v in names[1:]:
        own = sorted(set(by[v]) & set(by["fast"]))  # its images that `fast` has too
        m, right, sim = summary([by[v][n] for n in own], psnr)
        fm, fright, fsim = summary([by["fast"][n] for n in own], psnr)
        better = sum(float(by[v][n][psnr]) > float(by["fast"][n][psnr]) for n in own)
        lines.append(
            f"- {v}: {len(own)} images, {m:.2f} dB against `fast` {fm:.2f}, right {right} "
            f"against {fright}, similarity {sim:.2f} against {fsim:.2f}, better on {better}"
        )
    return "\n".join(lines)


def parse_runs(specs: Sequence[str]) -> dict[str, list[str]]:
    """``--runs`` values ``LABEL=FOLDER`` (split at the last ``=``) as ``{label: [folders]}``:
    one label may be given several times, for a run split over folders (e.g. two halves of a
    set run side by side); exits naming the value when it has no ``=`` or its folder does not
    exist, or when two folders of one label hold the same image."""
    runs: dict[str, list[str]] = {}
    for spec in specs:
        label, sep, folder = spec.rpartition("=")
        if not sep or not os.path.isdir(folder):
            raise SystemExit(f"--runs={spec!r}: expected LABEL=FOLDER with a run folder")
        runs.setdefault(label, []).append(folder)
    for label, folders in runs.items():
        seen: dict[str, str] = {}
        for folder in folders:
            for r in run_rows(label, folder):
                if r["name"] in seen:
                    raise SystemExit(
                        f"--runs: label {label!r} has image {r['name']!r} in both "
                        f"{seen[r['name']]} and {folder}"
                    )
                seen[r["name"]] = folder
    return runs


def main(argv: Sequence[str]) -> None:
    from absl import flags

    f = flags.FLAGS
    command = argv[1] if len(argv) > 1 else ""
    if command == "collect":
        if not f.out or not f.runs:
            raise SystemExit(
                "collect needs --out and at least one --runs=LABEL=FOLDER (split at the last =)"
            )
        new = []
        for label, folders in parse_runs(f.runs).items():
            for folder in folders:
                new += run_rows(label, folder)
        old = read_csv(f.out) if os.path.exists(f.out) else []
        rows = merge(old, new)
        write_csv(f.out, rows)
        print(f"{len(new)} rows collected, {len(rows)} in {f.out}")
    elif command == "table":
        rows = [r for path in f.csv for r in read_csv(path)]
        wanted = f.variant or list(dict.fromkeys(r["variant"] for r in rows))
        variants = {v: [r for r in rows if r["variant"] == v] for v in wanted}
        empty = [v for v, rs in variants.items() if not rs]
        if empty:
            raise SystemExit(f"no rows for variant(s) {empty} in {f.csv}")
        fast = read_csv(f.fast or FAST_ROWS[f.dataset])
        if f.fast_variant:
            fast = [r for r in fast if r.get("variant") == f.fast_variant]
            if not fast:
                raise SystemExit(f"no rows for --fast_variant={f.fast_variant!r} in {f.fast}")
        print(table(f.dataset, fast, variants, oracle=f.oracle))
    elif command == "montage":
        if not f.out or not f.runs:
            raise SystemExit("montage needs --out and at least one --runs=LABEL=FOLDER")
        montage(f.out, parse_runs(f.runs), f.images or None)
        print(f"wrote {f.out}")
    else:
        raise SystemExit("usage: variant_table.py collect|table|montage [flags]; see the docstring")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string(
        "out", None, "collect: the CSV to write (merged into when it exists); montage: the PNG."
    )
    flags.DEFINE_multi_string("runs", [], "collect, montage: LABEL=FOLDER of a benchmark run.")
    flags.DEFINE_list("images", [], "montage: these images only, in this order.")
    flags.DEFINE_enum(
        "dataset", "lai", ["lai", "levin", "synthetic"], "table: the protocol's PSNR column."
    )
    flags.DEFINE_list("csv", [], "table: CSVs written by collect.")
    flags.DEFINE_multi_string(
        "variant", [], "table: a variant to show (repeat; default: all in --csv)."
    )
    flags.DEFINE_string("fast", None, "table: `fast`'s rows (default: the committed ones).")
    flags.DEFINE_string("fast_variant", None, "table: only this variant's rows of --fast.")
    flags.DEFINE_bool("oracle", False, "table: add the best of all shown, per image.")
    app.run(main)
