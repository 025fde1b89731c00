"""The paper's ablations and baselines as config edits (section 3.5, Tables 5-6, Figure 1), and
the kernel estimators tried at large blurs (issue 25).

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


# The method's two schedules (section 3.1), set explicitly so a variant means the same on any
# base preset (``fast`` has no input noise, for instance).
def _paper_dropout(c):  # 0.3, then 0.001 from step 1500 of 5000
    c.dropout.init, c.dropout.boundaries, c.dropout.levels = 0.3, (0.3,), (0.001,)


def _paper_noise(c):  # 0.01 (K < 29) or 0.05, then 0.001 from step 3500 of 5000
    c.noise.init = None  # by kernel size: noise.small_kernel / noise.large_kernel
    c.noise.small_kernel, c.noise.large_kernel = 0.01, 0.05
    c.noise.boundaries, c.noise.levels = (0.7,), (0.001,)


def _no_randomness(c):
    _fixed(c.dropout, 0.0)
    _fixed(c.noise, 0.0)


# Table 5: each variant sets both sources.
def _table5_none(c):  # neither dropout nor input noise
    _no_randomness(c)


def _table5_dropout(c):  # dropout only
    _paper_dropout(c)
    _fixed(c.noise, 0.0)


def _table5_noise(c):  # input noise only
    _fixed(c.dropout, 0.0)
    _paper_noise(c)


def _table5_both(c):  # the method as published: both
    _paper_dropout(c)
    _paper_noise(c)


# Section 3.5, S1-S6: ONE source of randomness each, the other off.
def _s1(c):  # dropout 0.5 throughout, no input noise
    _fixed(c.dropout, 0.5)
    _fixed(c.noise, 0.0)


def _s2(c):  # dropout 0.001 throughout, no input noise
    _fixed(c.dropout, 0.001)
    _fixed(c.noise, 0.0)


def _s3(c):  # dropout 0.3, then 0.001 from step 1500 of 5000; no input noise
    _paper_dropout(c)
    _fixed(c.noise, 0.0)


def _s4(c):  # input noise 0.05 throughout, no dropout
    _fixed(c.dropout, 0.0)
    _fixed(c.noise, 0.05)


def _s5(c):  # input noise 0.001 throughout, no dropout
    _fixed(c.dropout, 0.0)
    _fixed(c.noise, 0.001)


def _s6(c):  # input noise 0.01, then 0.0001 from step 3500 of 5000; no dropout
    _fixed(c.dropout, 0.0)
    c.noise.init, c.noise.boundaries, c.noise.levels = 0.01, (0.7,), (0.0001,)


# Randomisation options (section 3.5, Figures 9-10). A sampled kernel net has its own dropout
# (0.1, then 0.001 from step 1500) and the image net's input noise.
def _kernel_dropout(c):
    c.kernel_dropout.init, c.kernel_dropout.boundaries = 0.1, (0.3,)
    c.kernel_dropout.levels = (0.001,)


def _randomize_image(c):  # sample the image net only (the method)
    c.randomize = "image"


def _randomize_kernel(c):  # sample the kernel net only
    c.randomize = "kernel"
    _kernel_dropout(c)


def _randomize_both(c):  # sample both networks
    c.randomize = "both"
    _kernel_dropout(c)


def _ren_fc(c):
    c.kernel_net.type = "mlp"
    c.kernel_net.input_channels = 200
    c.kernel_net.hidden = 1000


def _ren_fc_mc(c):  # Table 6 "[43] + MC": the method's image net and training, Ren's FC Gk
    _ren_fc(c)


def _ren_fc_no_mc(c):  # the method's image net and training, Ren's FC Gk, no sampling
    _ren_fc(c)
    _no_randomness(c)


def _selfdeblur(c):
    """Table 6 "[43]": SelfDeblur (Ren et al., CVPR 2020) as its released Levin script
    (csdwren/SelfDeblur, selfdeblur_levin.py) runs it: a 5-level skip net, 128 channels, 16-
    channel skips, with its decoder 1x1 convs; the FC kernel net (200 -> 1000 -> K*K);
    both nets updated together by Adam (lr 1e-2 for Gx, 1e-4 for Gk) for 5000 steps, both
    rates halved at steps 2000, 3000 and 4000; fresh Gaussian noise of std 0.001 on zx at
    every step; no dropout. Its MSE data term is a per-pixel mean, without the mu ||k||^2
    term, and becomes 1 - SSIM from step 1000 on (``ssim_after``; its SSIM pads windows with
    zeros at the border, ours uses whole windows only). Not reproduced: the TV term of
    SelfDeblur's paper, whose weight the released script does not give (its TVLoss.py is
    unused there); set ``tv_weight`` to add one."""
    _ren_fc(c)
    c.image_net.channels = (128,) * 5
    c.image_net.skip_channels = (16,) * 5
    c.image_net.decoder_1x1 = True
    c.scheme = "joint"
    c.num_steps = 5000
    c.num_draws = 1
    c.randomize = "image"
    c.mu = 0.0
    c.data_term = "mean"
    c.ssim_after = 1000
    c.tv_weight = 0.0
    c.optim.lr_x, c.optim.lr_k = 1e-2, 1e-4
    c.optim.decay_boundaries, c.optim.decay_factor = (0.4, 0.6, 0.8), 0.5
    _fixed(c.dropout, 0.0)
    _fixed(c.noise, 0.001)


def _mle(c):  # Figure 1: plain MLE loss, eq. 7, no randomness
    _no_randomness(c)


def _mle_tv(c):  # Figure 1: MLE + TV on the image, eq. 8
    _no_randomness(c)
    c.tv_weight = 1e-3


# The kernel estimators tried at large blurs (issue 25; docs/results.md, the probes on the Lai
# subset): the kernel generator by name, and progressive coarse-to-fine training. Meant for the
# ``fast`` base, where they were measured; each equals the probes' --set overrides exactly.
def _coord_gk(c):  # the coordinate (SIREN) kernel generator, one scale
    c.kernel_net.type = "coord"
    c.optim.lr_k = 1e-4


def _unet_gk(c):  # the paper's U-Net Gk, its settings, one scale
    c.kernel_net.type = "unet"
    c.kernel_net.decoder_1x1 = False
    c.optim.lr_k = 1e-4


def _progressive(c):  # one coarser level, its latent image starting the finer level's
    c.progressive.levels = 1
    c.progressive.image_input = "previous"


def _coord_progressive(c):
    _coord_gk(c)
    _progressive(c)


def _coord_progressive_whole(c):  # the coarser level trained on the whole down-scaled photo
    _coord_progressive(c)
    c.progressive.crop_size = 0


def _mlp_progressive(c):  # Ren's MLP, afresh at each level (it is bound to its grid)
    c.kernel_net.type = "mlp"
    _progressive(c)


# What the paper's code base (SelfDeblur) and its public successors do where the paper is
# silent (issue 41; docs/fidelity.md, "The code base"), one choice each, for any base preset.
# Switch points scale with the base's num_steps (SelfDeblur: steps 1000 and 2000-3000-4000 of
# 5000); override num_steps before applying, or set the fields again after.
def _ssim_switch(c):  # the data term becomes 1 - SSIM after the first 20% (Levin: 1000 / 5000)
    c.ssim_after = max(1, int(round(0.2 * c.num_steps)))


def _lr_milestones(c):  # both rates halved at 40%, 60% and 80% of the run (1/8 at the end)
    c.optim.decay_boundaries, c.optim.decay_factor = (0.4, 0.6, 0.8), 0.5


def _pytorch_init(c):  # weights and biases uniform in +-1/sqrt(fan_in) (PyTorch's default)
    c.param_init = "pytorch"


def _joint(c):  # one loss, both networks updated together (SelfDeblur)
    c.scheme = "joint"


def _alternating(c):  # kernel step, then image step against the new kernel (Algorithm 1)
    c.scheme = "alternating"


def _non_local(c):  # a non-local block in Gx's levels from the third down (SelfDeblur's)
    c.image_net.non_local_from = min(2, len(c.image_net.channels) - 1)


def _lineage(c):  # all of the code base's choices above that are config values, together
    _ssim_switch(c)
    _lr_milestones(c)
    _pytorch_init(c)
    _joint(c)


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
    "selfdeblur": _selfdeblur,
    "mle": _mle,
    "mle_tv": _mle_tv,
    "coord_gk": _coord_gk,
    "unet_gk": _unet_gk,
    "coord_progressive": _coord_progressive,
    "coord_progressive_whole": _coord_progressive_whole,
    "mlp_progressive": _mlp_progressive,
    "ssim_switch": _ssim_switch,
    "lr_milestones": _lr_milestones,
    "pytorch_init": _pytorch_init,
    "joint": _joint,
    "alternating": _alternating,
    "non_local": _non_local,
    "lineage": _lineage,
}


def apply(name: str, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` with variant ``name`` applied."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    c = ml_collections.ConfigDict(config.to_dict())
    VARIANTS[name](c)
    return c
