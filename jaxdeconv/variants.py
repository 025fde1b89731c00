"""The paper's ablations and baselines as config edits (section 3.5, Tables 5-6, Figure 1).

``apply(name, config)`` returns a copy of ``config`` changed only where the variant differs,
so every variant can sit on any preset (``paper`` for the faithful numbers, ``fast`` on a CPU).
Switch points are fractions of the run (the paper's 1500 and 3500 of 5000 steps: 0.3, 0.7).
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections


def _fixed(block, value):
    block.init = value
    block.boundaries = ()
    block.levels = ()


def _no_randomness(c):
    _fixed(c.dropout, 0.0)
    _fixed(c.noise, 0.0)


def _table5_none(c):  # neither dropout nor input noise
    _no_randomness(c)


def _table5_dropout(c):  # dropout only
    _fixed(c.noise, 0.0)


def _table5_noise(c):  # input noise only
    _fixed(c.dropout, 0.0)


def _table5_both(c):  # the method as published
    del c


def _s1(c):  # dropout 0.5 throughout
    _fixed(c.dropout, 0.5)


def _s2(c):  # dropout 0.001 throughout
    _fixed(c.dropout, 0.001)


def _s3(c):  # dropout 0.3, then 0.001 from step 1500 of 5000 (the default)
    c.dropout.init, c.dropout.boundaries, c.dropout.levels = 0.3, (0.3,), (0.001,)


def _s4(c):  # noise 0.05 throughout
    _fixed(c.noise, 0.05)


def _s5(c):  # noise 0.001 throughout
    _fixed(c.noise, 0.001)


def _s6(c):  # noise 0.01, then 0.0001 from step 3500 of 5000
    c.noise.init, c.noise.boundaries, c.noise.levels = 0.01, (0.7,), (0.0001,)


def _randomize_image(c):  # sample the image net only (the default)
    c.randomize = "image"


def _randomize_kernel(c):  # sample the kernel net only
    c.randomize = "kernel"


def _randomize_both(c):  # sample both networks
    c.randomize = "both"


def _ren_fc(c):
    c.kernel_net.type = "mlp"
    c.kernel_net.input_channels = 200
    c.kernel_net.hidden = 1000


def _ren_fc_mc(c):  # Table 6: Ren et al.'s kernel net with the MC sampling
    _ren_fc(c)


def _ren_fc_no_mc(c):  # Table 6: Ren et al.'s kernel net, no sampling (SelfDeblur-like)
    _ren_fc(c)
    _no_randomness(c)


def _mle(c):  # Figure 1: plain MLE loss, eq. 7, no randomness
    _no_randomness(c)


def _mle_tv(c):  # Figure 1: MLE + TV on the image, eq. 8
    _no_randomness(c)
    c.tv_weight = 1e-3


VARIANTS: dict[str, Callable] = {
    "table5_none": _table5_none,
    "table5_dropout": _table5_dropout,
    "table5_noise": _table5_noise,
    "table5_both": _table5_both,
    "s1": _s1,
    "s2": _s2,
    "s3": _s3,
    "s4": _s4,
    "s5": _s5,
    "s6": _s6,
    "randomize_image": _randomize_image,
    "randomize_kernel": _randomize_kernel,
    "randomize_both": _randomize_both,
    "ren_fc_mc": _ren_fc_mc,
    "ren_fc_no_mc": _ren_fc_no_mc,
    "mle": _mle,
    "mle_tv": _mle_tv,
}


def apply(name: str, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` with variant ``name`` applied."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    c = ml_collections.ConfigDict(config.to_dict())
    VARIANTS[name](c)
    return c
