"""Variant `s1`: dropout 0.5 throughout, no input noise (section 3.5, S1).

jaxdeconv.variants.apply('s1', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s1.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s1.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s1", config.PRESETS[base]())
