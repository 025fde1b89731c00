r"""Blind deblurring on a benchmark, scored with the field's protocol.

  python experiments/benchmark.py --dataset=levin --config=experiments/configs/fast.py \
      --workdir=runs/levin_fast [--images=im1_kernel4,im2_kernel2]

Writes per-image JSON/PNG under WORKDIR/images, then results.csv, summary.md and kernels.png.
Re-running skips images already finished with the same config.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from jaxdeconv import evaluate, runtime

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/fast.py", "Run configuration.", lock_config=True
)
_DATASET = flags.DEFINE_enum("dataset", "levin", ["levin", "lai"], "Benchmark.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding levin/ and lai/.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/DATASET_PRESET).")
_IMAGES = flags.DEFINE_list("images", None, "Subset of image names (default: all).")


def main(argv):
    del argv
    runtime.enable_compilation_cache()
    preset = os.path.splitext(
        os.path.basename(config_flags.get_config_filename(flags.FLAGS["config"]))
    )[0]
    workdir = _WORKDIR.value or os.path.join("runs", f"{_DATASET.value}_{preset}")
    rows = evaluate.run_benchmark(
        _DATASET.value, _DATA_ROOT.value, _CONFIG.value, workdir, names=_IMAGES.value, preset=preset
    )
    with open(os.path.join(workdir, "summary.md")) as f:
        print(f.read())
    if any(r["status"] != "ok" for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
