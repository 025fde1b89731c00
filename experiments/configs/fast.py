"""CPU preset: networks lean at full resolution and wider deeper down, fewer steps.

Launch:
  python experiments/deblur.py --config=experiments/configs/fast.py --input=IMG --kernel_size=K
"""

from jaxdeconv import config


def get_config():
    return config.fast()
