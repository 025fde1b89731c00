"""Variant `table5_none`: neither dropout nor input noise.

jaxdeconv.variants.apply('table5_none', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/table5_none.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/table5_none.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("table5_none", config.PRESETS[base]())
