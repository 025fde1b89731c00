r"""What ``recover.seeds`` agreement would pick, from benchmark runs already made with other
seeds: for each image present in every workdir, the kernel with the highest mean similarity to
the others' (the unflagged first, as ``pipeline.most_consistent`` ranks them), and its row's
scores; beside it seed 0 alone, the mean over seeds and the best seed (an oracle).

  python benchmarks/seed_agreement.py --workdirs=runs/a,runs/b,runs/c [--csv=out.csv]

Each workdir is an ``experiments/benchmark.py`` folder (``results.csv``,
``images/NAME_kernel.npy``). One difference from the preset: here every seed's estimate went
through the whole ``choose_estimate`` (with its own ``recover.attempts``); inside
``most_consistent`` the extra seeds get the network run and ``robust_kernel`` only.
"""

import csv
import json
import os
import sys

import numpy as np
from absl import app, flags

from jaxdeconv import config as config_lib
from jaxdeconv.classical import diagnose

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Benchmark folders, one per seed (first: kept).")
_CSV = flags.DEFINE_string("csv", None, "Write the chosen rows here (the first workdir's columns).")
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
    return rows


def choose(kernels: list[np.ndarray], recover) -> tuple[int, list[float], list[bool]]:
    """The index ``most_consistent`` keeps, each kernel's agreement and flag."""
    n = len(kernels)
    agreement = [
        float(
            np.mean(
                [diagnose.kernel_similarity(kernels[i], kernels[j]) for j in range(n) if j != i]
            )
        )
        for i in range(n)
    ]
    flagged = [
        not diagnose.diagnose(k, delta_peak=recover.delta_peak, border_limit=recover.border_mass).ok
        for k in kernels
    ]
    kept = max(range(n), key=lambda i: (not flagged[i], agreement[i], -i))
    return kept, agreement, flagged


def main(argv):
    del argv
    runs = [load(w) for w in _WORKDIRS.value]
    names = sorted(set.intersection(*(set(r) for r in runs)))
    if not names:
        print("seed_agreement.py: no image is in every workdir", file=sys.stderr)
        return 1
    recover = config_lib.fast().recover
    table, chosen = [], []
    for name in names:
        rows = [r[name] for r in runs]
        kept, agreement, flagged = choose([r["_kernel"] for r in rows], recover)
        ts = [float(r["psnr_two_stage"]) for r in rows]
        ratios = [float(r["error_ratio"]) for r in rows]
        table.append((name, ts, ratios, kept, agreement, flagged))
        chosen.append(rows[kept])
    print(
        "| image | " + " | ".join(f"seed {i}" for i in range(len(runs))) + " | kept | agreement |"
    )
    print("|---" * (len(runs) + 3) + "|")
    for name, ts, ratios, kept, agreement, flagged in table:
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
    picked = ts[np.arange(len(table)), kept]
    picked_ratio = ratios[np.arange(len(table)), kept]
    print(f"\n{len(names)} images, two-stage PSNR mean (right kernels, error ratio < {_RIGHT:g}):")
    for i in range(len(runs)):
        print(f"  seed {i} alone: {ts[:, i].mean():.2f} dB ({int((ratios[:, i] < _RIGHT).sum())})")
    print(f"  mean over seeds: {ts.mean():.2f} dB")
    print(f"  agreement pick: {picked.mean():.2f} dB ({int((picked_ratio < _RIGHT).sum())})")
    best, right = ts.max(axis=1), int((ratios.min(axis=1) < _RIGHT).sum())
    print(f"  best seed per image (oracle): {best.mean():.2f} dB ({right})")
    if _CSV.value:
        columns = [c for c in chosen[0] if not c.startswith("_")]
        with open(_CSV.value, "w", newline="") as f:
            w = csv.DictWriter(f, columns + ["seeds_kept"], extrasaction="ignore")
            w.writeheader()
            for row, k in zip(chosen, kept, strict=True):
                w.writerow({**row, "seeds_kept": int(k)})
    return 0


if __name__ == "__main__":
    app.run(main)
