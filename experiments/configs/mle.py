"""Variant `mle`: Figure 1: plain MLE loss, eq. 7, no randomness.

jaxdeconv.variants.apply('mle', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/mle.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/mle.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("mle", config.PRESETS[base]())
