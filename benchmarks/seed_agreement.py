r"""What ``recover.seeds`` would pick, from benchmark runs already made with other seeds: for
each image present in every workdir, the kernel ``pipeline.most_consistent`` keeps under
``--select`` (``recover.seed_select``), and its row's scores. ``agreement``: the kernel with
the highest mean similarity to the others'. ``evidence``: the kernel under which the blurry
image is most probable with ``--camera_blur`` px of camera blur allowed for, among the final
kernels and, with ``--network_kernels``, the runs' network kernels too (scored here as the
benchmark scores a kernel). Unflagged kernels come first in both. Beside it: each run alone,
the mean over runs and the best run (an oracle). The runs may as well be variants of one
estimator (``--labels`` names them). Selectors that need no sharp image are scored beside,
for a choice among estimates to be judged on data it was not designed on: the lowest final
training loss (``final_loss``), the sharpest two-stage image (largest mean gradient
magnitude, ``sharpness``), the sparsest gradients (smallest L1/L2 ratio, Krishnan et al.'s
normalised sparsity, ``sparsity``) and, with ``--dataset`` (the runs' benchmark, whose blurry
images it reads), the kernel with the highest marginal likelihood of the blurry image, plain
and with the camera blur (``evidence``, :func:`jaxdeconv.classical.evidence.log_evidence`).

  python benchmarks/seed_agreement.py --workdirs=runs/a,runs/b,runs/c [--csv=out.csv] \
      [--labels=a,b,c] [--dataset=levin|lai|synthetic [--suite=quick] [--data_root=...]] \
      [--select=evidence [--camera_blur=0.75] [--[no]network_kernels]] \
      [--metric=psnr_two_stage_published]

Each workdir is an ``experiments/benchmark.py`` folder (``results.csv``,
``images/NAME_kernel.npy``). ``--csv`` writes the picked rows with ``seeds_kept`` (the run's
index), ``seed_select``, ``seconds_total`` as the runs' ``seconds_total`` summed (what the
preset with ``recover.seeds`` spends: its rows compare with other presets' on time) and
``seconds_kept_run`` (the kept run's own). Where the runs are ``--set=seed=i`` runs of a
config whose ``recover.windows`` is empty (``fast``), the pick is exactly the estimate of that
config with ``recover.seeds`` (each seed's estimate is ``robust_kernel`` on its network run,
in both); with other windows, here every seed went through the whole ``choose_estimate``,
while inside ``most_consistent`` the extra seeds get one window only.
"""

import csv
import json
import os
import sys

import numpy as np
from absl import app, flags

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline
from jaxdeconv.app import image_io
from jaxdeconv.bench import datasets, evaluate
from jaxdeconv.classical import evidence

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Benchmark folders, one per seed (first: kept).")
_CSV = flags.DEFINE_string("csv", None, "Write the chosen rows here (the first workdir's columns).")
_LABELS = flags.DEFINE_list(
    "labels", None, "Names of the workdirs' runs (default: seed 0, 1, ...)."
)
_DATASET = flags.DEFINE_enum(
    "dataset", None, ["levin", "lai", "synthetic"], "The runs' benchmark: adds the evidence pick."
)
_SUITE = flags.DEFINE_enum("suite", "dev", ["dev", "quick"], "Synthetic only: which suite.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding levin/ and lai/.")
_SELECT = flags.DEFINE_enum(
    "select",
    "agreement",
    ["agreement", "evidence"],
    "Whose pick --csv writes: recover.seed_select's rule (evidence needs --dataset).",
)
_NETWORK_KERNELS = flags.DEFINE_bool(
    "network_kernels",
    config_lib.quality().recover.network_kernels,
    "recover.network_kernels of the evidence pick: each run's network kernel "
    "(images/NAME_network_kernel.npy, scored here on --dataset) competes too (default: the "
    "quality preset's).",
)
_CAMERA_BLUR = flags.DEFINE_float(
    "camera_blur",
    config_lib.quality().recover.camera_blur,
    "recover.camera_blur of the evidence pick (default: the quality preset's).",
)
_METRIC = flags.DEFINE_enum(
    "metric",
    "psnr_two_stage",
    ["psnr_two_stage", "psnr_two_stage_published"],
    "The rows' column the tables report: our protocol's two-stage PSNR or the published "
    "tables' scale (Lai: the published scale is the one its targets and the paper use).",
)
_RIGHT = 2.0  # error ratio below which a kernel counts as right


def load(workdir: str) -> dict[str, dict]:
    """The finished images' rows (``images/NAME.json``, written as each image finishes)."""
    rows = {}
    folder = os.path.join(workdir, "images")
    for file in sorted(os.listdir(folder)):
        if file.endswith(".json"):
            with open(os.path.join(folder, file)) as f:
                row = json.load(f)["row"]
            if row.get("status") == "ok":
                rows[row["name"]] = row
    for name, row in rows.items():
        row["_kernel"] = np.load(os.path.join(workdir, "images", f"{name}_kernel.npy"))
        row["_image"] = os.path.join(workdir, "images", f"{name}_two_stage.png")
    return rows


def _score(row: dict, metric: str) -> float:
    """``row[metric]`` as a number; a clear error where the runs did not write it (the
    published scale exists for Levin and Lai only)."""
    value = row.get(metric, "")
    if value in ("", None):
        raise ValueError(f"{row['name']}: the run's row has no {metric!r}")
    return float(value)


def gradient_scores(image: np.ndarray) -> tuple[float, float]:
    """(mean gradient magnitude, L1/L2 ratio of the gradients) of a grey image in [0, 1]:
    forward differences, both directions stacked."""
    g = np.concatenate([np.diff(image, axis=0).ravel(), np.diff(image, axis=1).ravel()])
    g = np.abs(g.astype(np.float64))
    return float(g.mean()), float(g.sum() / max(np.sqrt((g * g).sum()), 1e-12))


def pick(values: list[float], rule: str) -> int:
    """The index a selector keeps: ``min`` or ``max`` of ``values`` (the first of equals)."""
    if rule not in ("min", "max"):
        raise ValueError(f"rule must be 'min' or 'max', got {rule!r}")
    best = min(values) if rule == "min" else max(values)
    return values.index(best)


def selector_values(
    rows: list[dict], blurry: np.ndarray | None = None, camera_blur: float = 0.0
) -> dict[str, tuple[list[float], str]]:
    """Per selector, each run's value and the rule that keeps one: final training loss (min),
    sharpness of the two-stage image (max), its gradient sparsity (min) and, given the blurry
    image, the kernel's evidence (max), plain and with ``camera_blur`` px of camera blur."""
    out = {"final_loss": ([float(r["final_loss"]) for r in rows], "min")}
    if all(os.path.exists(r["_image"]) for r in rows):
        grads = [gradient_scores(image_io.read_image(r["_image"]).mean(axis=-1)) for r in rows]
        out["sharpness"] = ([g[0] for g in grads], "max")
        out["sparsity"] = ([g[1] for g in grads], "min")
    if blurry is not None:
        score = evidence.kernel_scorer(blurry)  # the image's spectra once, for every run
        out["evidence"] = ([score(r["_kernel"]) for r in rows], "max")
        if camera_blur > 0:  # the same scorer, on each kernel given the camera's blur
            blurred = [evidence.with_camera_blur(r["_kernel"], camera_blur) for r in rows]
            out[f"evidence, camera blur {camera_blur:g} px"] = ([score(k) for k in blurred], "max")
    return out


def choose(
    kernels: list[np.ndarray],
    config,
    blurry: np.ndarray | None = None,
    network: list[np.ndarray] | None = None,
) -> tuple[int, list[float], list[bool]]:
    """The index ``pipeline.most_consistent`` keeps under ``config.recover.seed_select``
    (``evidence`` needs ``blurry``), each kernel's agreement and flag: the preset's own rule.
    With the evidence and ``network`` (each run's network kernel, in the runs' order), those
    compete too, after the final kernels: index ``len(kernels) + i`` is run ``i``'s."""
    kept, agreement, flagged = pipeline.medoid(kernels, config)
    if config.recover.seed_select == "evidence":
        pool, pool_flags = list(kernels), list(flagged)
        if network:
            pool += list(network)
            pool_flags += pipeline.flagged_kernels(list(network), config)
        kept, _ = pipeline.most_evident(pool, pool_flags, blurry, config.recover.camera_blur)
    return kept, agreement, flagged


def network_row(row: dict, item, workdir: str, dataset: str) -> dict | None:
    """``row`` with its run's network kernel (before refit and polish) in place of the final
    one, scored as the benchmark scores a kernel (``evaluate.score_kernel``); ``None`` where
    the network did not run at full resolution on the size asked for (its kernel's side is
    not ``kernel_size``: a coarse working scale, an automatic size), as the preset then
    leaves it out."""
    kernel = np.load(os.path.join(workdir, "images", f"{row['name']}_network_kernel.npy"))
    size = row.get("kernel_size")
    if not str(size).isdigit() or kernel.shape != (int(size), int(size)):
        return None
    kernel = np.asarray(kernel, np.float32)
    return {**row, **evaluate.score_kernel(item, kernel, dataset), "_kernel": kernel}


def main(argv):
    del argv
    runs = [load(w) for w in _WORKDIRS.value]
    names = sorted(set.intersection(*(set(r) for r in runs)))
    if not names:
        print("seed_agreement.py: no image is in every workdir", file=sys.stderr)
        return 1
    config = config_lib.apply_overrides(
        config_lib.fast(),
        [f"recover.seed_select={_SELECT.value}", f"recover.camera_blur={_CAMERA_BLUR.value}"],
    )
    if _SELECT.value == "evidence" and not _DATASET.value:
        print("seed_agreement.py: --select=evidence needs --dataset", file=sys.stderr)
        return 1
    network = _SELECT.value == "evidence" and _NETWORK_KERNELS.value
    labels = _LABELS.value or [f"seed {i}" for i in range(len(runs))]
    if len(labels) != len(runs):
        print("seed_agreement.py: --labels needs one name per workdir", file=sys.stderr)
        return 1
    loaded = {}
    if _DATASET.value:
        items = datasets.lazy_dataset(_DATASET.value, _DATA_ROOT.value, names, suite=_SUITE.value)
        loaded = {item.name: item.load() for item in items}
    table, chosen, others, used_network = [], [], {}, 0
    for name in names:
        rows = [r[name] for r in runs]
        blurry = loaded[name].blurry if loaded else None
        nets = []
        if network:
            nets = [
                network_row(row, loaded[name], folder, _DATASET.value)
                for row, folder in zip(rows, _WORKDIRS.value, strict=True)
            ]
            nets = nets if all(n is not None for n in nets) else []
        kernels = [r["_kernel"] for r in rows]
        kept, agreement, flagged = choose(kernels, config, blurry, [n["_kernel"] for n in nets])
        values_by = selector_values(rows, blurry, _CAMERA_BLUR.value)
        for selector, (values, rule) in values_by.items():
            others.setdefault(selector, []).append(pick(values, rule))
        ts = [_score(r, _METRIC.value) for r in rows]
        ratios = [float(r["error_ratio"]) for r in rows]
        picked_row = (rows + nets)[kept]
        used_network += kept >= len(rows)
        table.append((name, ts, ratios, kept % len(rows), agreement, flagged, picked_row))
        chosen.append(
            {
                **picked_row,
                "seconds_total": round(sum(float(r["seconds_total"]) for r in rows), 2),
                "seconds_kept_run": rows[kept % len(rows)]["seconds_total"],
                "kept_kernel": "network" if kept >= len(rows) else "final",
            }
        )
    print("| image | " + " | ".join(labels) + " | kept | agreement |")
    print("|---" * (len(runs) + 3) + "|")
    for name, ts, ratios, kept, agreement, flagged, _ in table:
        cells = [
            f"{t:.2f} ({r:.2f}){' F' if f else ''}"
            for t, r, f in zip(ts, ratios, flagged, strict=True)
        ]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {kept} | {', '.join(f'{a:.2f}' for a in agreement)} |"
        )
    ts = np.array([t[1] for t in table])
    ratios = np.array([t[2] for t in table])
    kept = np.array([t[3] for t in table])
    picked = np.array([_score(t[6], _METRIC.value) for t in table])
    picked_ratio = np.array([float(t[6]["error_ratio"]) for t in table])
    print(f"\n{len(names)} images, {_METRIC.value} mean (right kernels, error ratio < {_RIGHT:g}):")
    for i in range(len(runs)):
        print(
            f"  {labels[i]} alone: {ts[:, i].mean():.2f} dB ({int((ratios[:, i] < _RIGHT).sum())})"
        )
    print(f"  mean over runs: {ts.mean():.2f} dB")
    among = " and network kernels" if network else ""
    print(
        f"  {_SELECT.value} pick among final kernels{among} (recover.seed_select, flagged "
        f"last): {picked.mean():.2f} dB ({int((picked_ratio < _RIGHT).sum())}); a network "
        f"kernel kept on {used_network}"
    )
    rows_index = np.arange(len(table))
    for selector, picks in others.items():
        k = np.array(picks)
        print(
            f"  {selector} pick: {ts[rows_index, k].mean():.2f} dB "
            f"({int((ratios[rows_index, k] < _RIGHT).sum())})"
        )
    best, right = ts.max(axis=1), int((ratios.min(axis=1) < _RIGHT).sum())
    print(f"  best run per image (oracle): {best.mean():.2f} dB ({right})")
    if _CSV.value:
        columns = [c for c in chosen[0] if not c.startswith("_")]
        with open(_CSV.value, "w", newline="") as f:
            extra = [c for c in ("seeds_kept", "seed_select") if c not in columns]
            w = csv.DictWriter(f, columns + extra, extrasaction="ignore")
            w.writeheader()
            for row, k in zip(chosen, kept, strict=True):
                w.writerow({**row, "seeds_kept": int(k), "seed_select": _SELECT.value})
    return 0


if __name__ == "__main__":
    app.run(main)
