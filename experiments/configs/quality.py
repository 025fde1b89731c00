"""CPU preset at about 3x `fast`'s time: `fast` on three seeds, the estimate under which the
blurry photo is most probable kept (jaxdeconv.config.quality).

Launch:
  python experiments/deblur.py --config=experiments/configs/quality.py --input=IMG --kernel_size=K
  python experiments/benchmark.py --dataset=levin --config=quality \
      --kernel_size_convention=published
"""

from jaxdeconv import config


def get_config():
    return config.quality()
