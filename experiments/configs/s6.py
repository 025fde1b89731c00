"""Variant `s6`: input noise 0.01, then 0.0001 from step 3500 of 5000; no dropout (S6).

jaxdeconv.variants.apply('s6', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s6.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s6.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s6", config.PRESETS[base]())
