r"""Deblurs one image, or the built-in synthetic example when no --input is given.

  python experiments/deblur.py --config=experiments/configs/fast.py \
      --input=blurry.png --kernel_size=31 --workdir=runs/photo

Writes NAME_deblurred.png (two-stage result), NAME_network.png (Gx's own output),
NAME_kernel.png/.npy, NAME_uncertainty.png/.npy and NAME_run.json into --workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from jaxdeconv import launch

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    "experiments/configs/fast.py",
    "Run configuration (a configs/*.py file).",
    lock_config=True,
)
_INPUT = flags.DEFINE_string("input", None, "Blurry image; the built-in example if unset.")
_KERNEL_SIZE = flags.DEFINE_integer(
    "kernel_size", None, "Odd kernel size K; overrides config.kernel_size."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/deblur", "Output folder.")


def main(argv):
    del argv
    launch.deblur_one(_CONFIG.value, _INPUT.value, _KERNEL_SIZE.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
