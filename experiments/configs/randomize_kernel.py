"""Variant `randomize_kernel`: sample the kernel net only (its dropout 0.1 -> 0.001 at 1500).

jaxdeconv.variants.apply('randomize_kernel', base), with the `paper` preset as the default base;
another base goes after a colon:
  python experiments/deblur.py --config=experiments/configs/randomize_kernel.py \
      --input=IMG --kernel_size=K
  python experiments/benchmark.py --config=experiments/configs/randomize_kernel.py:fast \
      --dataset=levin
"""

from jaxdeconv import config, variants


def get_config(base: str = "paper"):
    return variants.apply("randomize_kernel", config.PRESETS[base]())
