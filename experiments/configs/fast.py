"""CPU preset: networks lean at full resolution and wider deeper down, fewer steps; kernels
above 27 px estimated coarse-to-fine; the kernel size found automatically with ``auto``.

Launch:
  python experiments/deblur.py --config=experiments/configs/fast.py --input=IMG --kernel_size=K
  python experiments/deblur.py --config=experiments/configs/fast.py --input=IMG \
      --config.kernel_size=auto --config.auto_size.max_size=41
"""

from jaxdeconv import config


def get_config():
    return config.fast()
