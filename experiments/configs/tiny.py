"""For tests: tiny networks and a few hundred steps; seconds on a CPU at 32x32.

Launch:
  python experiments/deblur.py --config=experiments/configs/tiny.py --input=IMG --kernel_size=K
"""

from jaxdeconv import config


def get_config():
    return config.tiny()
