"""Variant `s2`: dropout 0.001 throughout, no input noise (section 3.5, S2).

jaxdeconv.variants.apply('s2', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s2.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s2.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s2", config.PRESETS[base]())
