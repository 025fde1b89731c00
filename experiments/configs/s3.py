"""Variant `s3`: dropout 0.3, then 0.001 from step 1500 of 5000; no input noise (S3).

jaxdeconv.variants.apply('s3', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/s3.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/s3.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("s3", config.PRESETS[base]())
