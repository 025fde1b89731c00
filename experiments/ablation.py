r"""Runs several variants of the method on the same images and seeds, and compares them.

  python experiments/ablation.py --variants=table5_none,table5_dropout,table5_noise,table5_both \
      --base=fast --dataset=levin --images=im1_kernel1,im2_kernel2 --workdir=runs/ablation \
      --config.num_steps=1000

Writes WORKDIR/VARIANT/ (a benchmark run each, resumable), WORKDIR/ablation.md and
WORKDIR/psnr_vs_step.png. Variants: jaxdeconv.variants.VARIANTS. Overrides of the base preset:
--config.FIELD=VALUE (or --set=FIELD=VALUE), the same syntax and checks as the jaxdeconv
command and experiments/deblur.py; a bad override or variant name exits with code 2 before any
work.
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
_BASE = flags.DEFINE_enum("base", "fast", list(config_lib.PRESETS), "Base preset.")
_SET = flags.DEFINE_multi_string(
    "set", [], "Override a base config field: --config.FIELD=VALUE or --set=FIELD=VALUE."
)
_SNAPSHOT_EVERY = flags.DEFINE_integer("snapshot_every", 100, "Steps between curve points.")
_DATASET = flags.DEFINE_enum("dataset", "levin", ["levin", "lai"], "Benchmark.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding levin/, lai/.")
_IMAGES = flags.DEFINE_list("images", None, "Image names (default: all).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/ablation", "Output folder.")


def main(argv):
    del argv
    try:
        base = launch.load_config(
            _BASE.value, [f"snapshot_every={_SNAPSHOT_EVERY.value}", *_SET.value]
        )
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
        base_name=_BASE.value,
    )
    print(open(f"{_WORKDIR.value}/ablation.md").read())
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
