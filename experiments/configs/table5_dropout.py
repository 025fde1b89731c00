"""Variant `table5_dropout`: dropout 0.3 -> 0.001 at 1500, input noise off (Table 5).

jaxdeconv.variants.apply('table5_dropout', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/table5_dropout.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/table5_dropout.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("table5_dropout", config.PRESETS[base]())
