"""Variant `mle_tv`: Figure 1: MLE + TV on the image, eq. 8.

jaxdeconv.variants.apply('mle_tv', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/mle_tv.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/mle_tv.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("mle_tv", config.PRESETS[base]())
