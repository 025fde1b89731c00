"""Variant `table5_noise`: input noise 0.01 or 0.05 -> 0.001 at 3500, dropout off (Table 5).

jaxdeconv.variants.apply('table5_noise', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/table5_noise.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/table5_noise.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("table5_noise", config.PRESETS[base]())
