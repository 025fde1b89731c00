"""Variant `randomize_image`: sample the image net only (the default).

jaxdeconv.variants.apply('randomize_image', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/randomize_image.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/randomize_image.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("randomize_image", config.PRESETS[base]())
