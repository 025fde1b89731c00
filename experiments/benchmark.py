r"""Blind deblurring on a benchmark, scored with the field's protocol.

  python experiments/benchmark.py --dataset=levin --config=experiments/configs/fast.py \
      --workdir=runs/levin_fast [--images=im1_kernel4,im2_kernel2]
  python experiments/benchmark.py --dataset=lai --subset=lai20 --config=experiments/configs/fast.py
  python experiments/benchmark.py --dataset=synthetic --suite=quick \
      --config=experiments/configs/fast.py
  python experiments/benchmark.py --dataset=levin --kernel_size_convention=published

Datasets: ``levin`` (32 images), ``lai`` (``--subset=lai20``: each category x each kernel once,
see ``datasets.lai_subset``; ``--subset=all``: 100 images) and ``synthetic`` (the development
suite of ``jaxdeconv.bench.synthetic``: ``--suite=dev``, 24 cases, or ``--suite=quick``, 8 of them).
Writes per-image JSON/PNG under WORKDIR/images, then results.csv, summary.md and kernels.png.
Re-running skips images already finished with the same config (and the same synthetic case and
kernel size convention). ``--kernel_size_convention=published`` estimates Levin's kernels on
the sizes the published runs used (``protocol.PUBLISHED_KERNEL_SIZES``); every row names its
convention. --config is an ml_collections config_flags flag: --config.FIELD=VALUE (or
--set=FIELD=VALUE) overrides any field, and an unknown field or a value of the wrong type exits
with code 2 before any work.
"""

import os

from absl import app, flags

from jaxdeconv.app import launch
from jaxdeconv.bench import evaluate
from jaxdeconv.run import runtime

_CONFIG = launch.define_config_flag(
    "experiments/configs/fast.py",
    "Run configuration: a configs/*.py file (FILE.py:ARG passes ARG) or a preset name.",
)
_DATASET = flags.DEFINE_enum("dataset", "levin", ["levin", "lai", "synthetic"], "Benchmark.")
_SUBSET = flags.DEFINE_enum("subset", "all", ["lai20", "all"], "Lai only: which images.")
_SUITE = flags.DEFINE_enum("suite", "dev", ["dev", "quick"], "Synthetic only: which suite.")
_SUITE_SEED = flags.DEFINE_integer("suite_seed", 0, "Synthetic only: the suite's seed.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding levin/ and lai/.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Output folder (default runs/DATASET[_SUBSET|_SUITE]_PRESET)."
)
_IMAGES = flags.DEFINE_list("images", None, "Subset of image names (default: all).")
_CONVENTION = flags.DEFINE_enum(
    "kernel_size_convention",
    "full",
    ["full", "published"],
    "Kernel size estimated per image: 'full' (the true kernel's grid) or 'published' (the "
    "sizes the published runs used; Levin: the grid less 2 px, kernel 4 kept at 27).",
)


def main(argv):
    del argv
    # Unknown fields and wrong types were refused before any work (launch.parse_flags).
    config = _CONFIG.value
    runtime.enable_compilation_cache()
    preset = launch.config_name()
    which = {"lai": f"_{_SUBSET.value}", "synthetic": f"_{_SUITE.value}"}.get(_DATASET.value, "")
    if _DATASET.value == "synthetic" and _SUITE_SEED.value:
        which += f"_seed{_SUITE_SEED.value}"
    if _CONVENTION.value != "full":
        which += f"_{_CONVENTION.value}"
    workdir = _WORKDIR.value or os.path.join("runs", f"{_DATASET.value}{which}_{preset}")
    rows = evaluate.run_benchmark(
        _DATASET.value,
        _DATA_ROOT.value,
        config,
        workdir,
        names=_IMAGES.value,
        subset=_SUBSET.value,
        suite=_SUITE.value,
        suite_seed=_SUITE_SEED.value,
        preset=preset,
        kernel_size_convention=_CONVENTION.value,
    )
    with open(os.path.join(workdir, "summary.md")) as f:
        print(f.read())
    if any(r["status"] != "ok" for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
