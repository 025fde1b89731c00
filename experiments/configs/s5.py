"""Variant `s5`: input noise 0.001 throughout, no dropout (section 3.5, S5).

jaxdeconv.variants.apply('s5', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s5.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s5.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s5", config.PRESETS[base]())
