r"""Deblurs one image, or the built-in synthetic example when no --input is given.

  python experiments/deblur.py --config=experiments/configs/fast.py \
      --input=blurry.png --kernel_size=31 --workdir=runs/photo --config.num_steps=2000

Writes NAME_deblurred.png (two-stage result), NAME_network.png (Gx's own output),
NAME_kernel.png/.npy, NAME_uncertainty.png/.npy and NAME_run.json into --workdir (not the
input's folder). --config is an ml_collections config_flags flag (a preset name or a config
file); --config.FIELD=VALUE (or --set=FIELD=VALUE) overrides any field; an unknown field or a
value of the wrong type exits with code 2 before any work (jaxdeconv.app.launch.parse_flags).
"""

import sys

from absl import app, flags

from jaxdeconv.app import launch

_CONFIG = launch.define_config_flag(
    "experiments/configs/fast.py",
    "Run configuration: a configs/*.py file (FILE.py:ARG passes ARG to its get_config) or a "
    "preset name (fast, quality, paper, tiny).",
)
_INPUT = flags.DEFINE_string("input", None, "Blurry image; the built-in example if unset.")
_KERNEL_SIZE = flags.DEFINE_integer(
    "kernel_size", None, "Odd kernel size K; overrides config.kernel_size."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/deblur", "Output folder.")


def main(argv):
    del argv
    try:
        # The built-in example runs its own number of steps unless the user set num_steps.
        steps = None if "num_steps" in launch.overridden() else launch.EXAMPLE_STEPS
        launch.deblur_one(
            _CONFIG.value, _INPUT.value, _KERNEL_SIZE.value, _WORKDIR.value, example_steps=steps
        )
    except launch.InputError as e:  # unreadable image, bad kernel size, workdir among inputs
        print(f"deblur.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
