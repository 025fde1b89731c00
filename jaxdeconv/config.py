"""The one configuration object of a run, and the presets built on it.

Every field of a run lives in one ``ml_collections.ConfigDict``; ``experiments/configs/*.py``
return these presets so launchers can override any field from the command line
(``--config.num_steps=500``). Schedule switch points are fractions of ``num_steps``.

Presets:
* ``paper()``: the paper's section 3.1 (Gx 6 levels x 128 channels, Gk a 4-level x 64-channel
  U-Net, 5000 alternating steps, lr 1e-2 / 1e-4 halved at 3000, dropout 0.3 -> 0.001 at 1500,
  noise 0.05 or 0.01 -> 0.001 at 3500, mu = 1e-4). A GPU workload.
* ``fast()``: a CPU preset: networks lean at full resolution, fewer steps.
* ``tiny()``: for tests, seconds on a CPU at 32x32.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def default_config() -> ml_collections.ConfigDict:
    """All fields, with the paper's values."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.kernel_size = 27  # odd; the kernel is [kernel_size, kernel_size]
    c.num_steps = 5000
    c.scheme = "alternating"  # 'alternating' (kernel update, then image update) or 'joint'
    c.num_draws = 1  # Monte-Carlo draws per loss evaluation
    c.randomize = "image"  # which net the draws sample: 'image' (paper), 'kernel' or 'both'
    c.mu = 1e-4  # weight of ||k||^2
    c.tv_weight = 0.0  # weight of a total-variation term on the image (eq. 8 baseline)
    c.blur_method = "auto"  # 'auto', 'direct' or 'fft'
    c.log_every = 100  # steps between host-side metric pulls and finiteness checks
    c.snapshot_every = 0  # keep the network's image every N steps (PSNR-vs-step curves); 0: off
    c.checkpoint_every = 0  # Orbax checkpoint interval in steps when a run has a folder; 0: off
    # Estimate the kernel on the most textured crop_size x crop_size window (0: whole image);
    # the two-stage result still covers the whole image. Cost per step grows with the area.
    c.crop_size = 0
    # Refit the network's kernel by non-negative least squares on image gradients
    # (jaxdeconv.refine); used by the two-stage result, not by the network's own image.
    c.refine = ml_collections.ConfigDict()
    c.refine.enabled = False
    c.refine.reg = 1e-3
    c.refine.threshold = 0.0
    # Then polish it by classical alternation (jaxdeconv.refine.polish_kernel): L0-gradient
    # latent estimate, NNLS refit, ``iters`` times, on the most textured ``crop_size`` window of
    # the whole image (0: the whole image). Host-side, seconds per image; not used by the
    # network's own image.
    c.polish = ml_collections.ConfigDict()
    c.polish.enabled = False
    c.polish.iters = 10
    c.polish.lam = 2e-3
    c.polish.reg = 1e-3
    c.polish.threshold = 0.05
    c.polish.crop_size = 256
    # Keep the polished kernel only when the final non-blind step explains the blurry image
    # better with it (refine.polish_or_keep).
    c.polish.select = True

    c.image_net = ml_collections.ConfigDict()
    c.image_net.channels = (128,) * 6  # one entry per level
    c.image_net.skip_channels = (16,) * 6
    c.image_net.input_channels = 8  # Cz of the fixed input zx ~ U(0, input_scale)
    c.image_net.input_scale = 0.1

    c.kernel_net = ml_collections.ConfigDict()
    c.kernel_net.type = "unet"  # 'unet' (paper) or 'mlp' (Ren et al.)
    c.kernel_net.channels = (64,) * 4
    c.kernel_net.skip_channels = (16,) * 4
    c.kernel_net.input_channels = 8  # for 'mlp': the input dimension (Ren et al.: 200)
    c.kernel_net.hidden = 1000  # 'mlp' only
    c.kernel_net.input_scale = 0.1

    c.optim = ml_collections.ConfigDict()
    c.optim.lr_x = 1e-2
    c.optim.lr_k = 1e-4
    c.optim.decay_boundaries = (0.6,)  # 3000 of 5000 steps
    c.optim.decay_factor = 0.5

    c.dropout = ml_collections.ConfigDict()
    c.dropout.init = 0.3
    c.dropout.boundaries = (0.3,)  # 1500 of 5000
    c.dropout.levels = (0.001,)

    c.noise = ml_collections.ConfigDict()
    # Unset: 'large_kernel' for kernel_size >= large_kernel_min_size, else 'small_kernel'.
    c.noise.init = config_dict.placeholder(float)
    c.noise.large_kernel = 0.05
    c.noise.small_kernel = 0.01
    c.noise.large_kernel_min_size = 25
    c.noise.boundaries = (0.7,)  # 3500 of 5000
    c.noise.levels = (0.001,)

    # Stochastic draws of the trained image net for the mean / uncertainty map. Unset levels
    # use the schedules' values at the last step (the regime the network ended in).
    c.sample = ml_collections.ConfigDict()
    c.sample.num_samples = 8
    c.sample.noise_std = config_dict.placeholder(float)
    c.sample.dropout_rate = config_dict.placeholder(float)
    return c


def paper() -> ml_collections.ConfigDict:
    """Faithful to the paper's section 3.1."""
    return default_config()


def fast() -> ml_collections.ConfigDict:
    """CPU preset: about 215 s per 255x255 image on a 2-core CPU (Levin: 31.48 dB two-stage).

    Lean full-resolution layers, wider deeper down; Ren et al.'s MLP kernel net; joint updates
    (cheaper per step than alternating, and better in a 1000-step run: measured on
    im1_kernel4, 28.4 vs 25.2 dB two-stage); the kernel estimated on the most textured
    128x128 crop; the kernel refit by NNLS on gradients (+0.3 to +0.65 dB on 3 of 4 Levin
    images tried, no loss on the fourth); dropout without input noise; the kernel then
    polished by classical L0-latent / NNLS alternation where that fits the data better.
    2500 steps rather than 1000: +0.52 dB on the 32 Levin images (30.96 -> 31.48) at 2.6x the
    time. See docs/performance.md.
    """
    c = default_config()
    c.num_steps = 2500
    c.crop_size = 128
    c.refine.enabled = True
    c.scheme = "joint"
    c.image_net.channels = (16, 32, 64, 64, 128)
    c.image_net.skip_channels = (4, 8, 16, 16, 16)
    c.kernel_net.type = "mlp"
    c.kernel_net.input_channels = 200
    c.optim.lr_k = 5e-4
    # Dropout is the only randomness: with the input noise too, 32 Levin images gave 29.93 dB
    # (two-stage, before the polish) against 30.27 dB with dropout alone at 1000 steps.
    c.noise.init = 0.0
    c.noise.boundaries = ()
    c.noise.levels = ()
    c.polish.enabled = True
    return c


def tiny() -> ml_collections.ConfigDict:
    """For tests: 2-level nets, 5x5 kernels, 500 steps; seconds on a CPU at 32x32.

    Three Monte-Carlo draws per step: at this size single-draw runs fitted the blurry image's
    noise with ringing artefacts on some seeds, while N = 3 sharpened all four seeds tried.
    """
    c = default_config()
    c.kernel_size = 5
    c.num_steps = 500
    c.num_draws = 3
    c.log_every = 100
    c.image_net.channels = (16, 32)
    c.image_net.skip_channels = (8, 8)
    c.image_net.input_channels = 8
    c.kernel_net.type = "mlp"
    c.kernel_net.input_channels = 16
    c.kernel_net.hidden = 64
    c.optim.lr_k = 1e-2
    c.sample.num_samples = 4
    return c


PRESETS = {"paper": paper, "fast": fast, "tiny": tiny}
