r"""Runs several variants of the method on the same images and seeds, and compares them.

  python experiments/ablation.py --variants=table5_none,table5_dropout,table5_noise,table5_both \
      --config=fast --dataset=levin --images=im1_kernel1,im2_kernel2 --workdir=runs/ablation \
      --config.num_steps=1000

Writes WORKDIR/VARIANT/ (a benchmark run each, resumable), WORKDIR/ablation.md and
WORKDIR/psnr_vs_step.png. Variants: jaxdeconv.variants.VARIANTS. The base config is an
ml_collections config_flags flag, --config (a preset name or a config file), with
--config.FIELD=VALUE (or --set=FIELD=VALUE) overrides, as for the jaxdeconv command and
experiments/deblur.py; a bad override or variant name exits with code 2 before any work.
"""

import sys

from absl import app, flags

from jaxdeconv import config as config_lib
from jaxdeconv import variants
from jaxdeconv.app import launch
from jaxdeconv.bench import ablation
from jaxdeconv.run import runtime

_VARIANTS = flags.DEFINE_list(
    "variants",
    ["table5_none", "table5_dropout", "table5_noise", "table5_both"],
    "Variants to compare.",
)
_CONFIG = launch.define_config_flag(
    "fast",
    "Base config of every variant: a preset name (fast, quality, paper, tiny) or a "
    "configs/*.py file.",
)
_SNAPSHOT_EVERY = flags.DEFINE_integer(
    "snapshot_every", 100, "Steps between curve points (unless --config.snapshot_every is set)."
)
_DATASET = flags.DEFINE_enum("dataset", "levin", ["levin", "lai"], "Benchmark.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding levin/, lai/.")
_IMAGES = flags.DEFINE_list("images", None, "Image names (default: all).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/ablation", "Output folder.")


def main(argv):
    del argv
    base = _CONFIG.value
    try:
        if "snapshot_every" not in launch.overridden():
            base.snapshot_every = _SNAPSHOT_EVERY.value
            config_lib.check_values(base)
        for name in _VARIANTS.value:
            variants.apply(name, base)  # fail early on a typo
    except (ValueError, KeyError) as e:
        print(f"ablation.py: {e}", file=sys.stderr)
        return 2
    runtime.enable_compilation_cache()
    ablation.run_ablation(
        _VARIANTS.value,
        base,
        _DATASET.value,
        _DATA_ROOT.value,
        _WORKDIR.value,
        images=_IMAGES.value,
        base_name=launch.config_name(),
    )
    print(open(f"{_WORKDIR.value}/ablation.md").read())
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
