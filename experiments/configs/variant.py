"""A named variant of the method (jaxdeconv.variants), on the `paper` preset or another base.

The variant's name goes after a colon, the base after a second one:
  python experiments/deblur.py --config=experiments/configs/variant.py:s4 \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/variant.py:table5_none:fast \
      --dataset=levin
The names (section 3.5's S1-S6, Table 5's randomisation ablation, the baselines): see
``jaxdeconv.variants.VARIANTS``. Any field can be overridden on top, e.g.
``--config=experiments/configs/variant.py:s4:fast --config.num_steps=1000``.
"""

from jaxdeconv import config, variants


def get_config(arg: str = "table5_both"):
    name, _, base = arg.partition(":")
    base = base or "paper"
    if base not in config.PRESETS:
        raise ValueError(f"variant base must be one of {', '.join(config.PRESETS)}, got {base!r}")
    return variants.apply(name, config.PRESETS[base]())
