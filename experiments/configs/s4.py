"""Variant `s4`: input noise 0.05 throughout, no dropout (section 3.5, S4).

jaxdeconv.variants.apply('s4', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s4.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s4.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s4", config.PRESETS[base]())
