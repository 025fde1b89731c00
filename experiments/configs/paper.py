"""Faithful to the paper (section 3.1): Gx 6 levels x 128 channels, Gk a 4-level x 64-channel U-Net,
5000 alternating steps. A GPU workload (about 2 s per step on a 2-core CPU at 255x255).

Launch:
  python experiments/deblur.py --config=experiments/configs/paper.py --input=IMG --kernel_size=K
"""

from jaxdeconv import config


def get_config():
    return config.paper()
