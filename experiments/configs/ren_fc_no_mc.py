"""Variant `ren_fc_no_mc`: Ren et al.'s FC kernel net, no sampling (not SelfDeblur: selfdeblur.py).

jaxdeconv.variants.apply('ren_fc_no_mc', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/ren_fc_no_mc.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/ren_fc_no_mc.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("ren_fc_no_mc", config.PRESETS[base]())
