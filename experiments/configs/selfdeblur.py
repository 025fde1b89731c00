"""Variant `selfdeblur`: Table 6 "[43]", SelfDeblur as its released Levin script runs it.

jaxdeconv.variants.apply('selfdeblur', base), with the `paper` preset as the default base
(every training field comes from the variant; the base supplies only run plumbing such as
crops and the final non-blind step); another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/selfdeblur.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/selfdeblur.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("selfdeblur", config.PRESETS[base]())
