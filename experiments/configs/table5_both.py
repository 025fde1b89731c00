"""Variant `table5_both`: the method as published, both sources set explicitly (Table 5).

jaxdeconv.variants.apply('table5_both', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/table5_both.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/table5_both.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("table5_both", config.PRESETS[base]())
