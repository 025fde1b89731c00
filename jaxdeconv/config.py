"""The one configuration object of a run, and the presets built on it.

Every field of a run lives in one ``ml_collections.ConfigDict``; ``experiments/configs/*.py``
return these presets so launchers can override any field from the command line
(``--config.num_steps=500``). Schedule switch points are fractions of ``num_steps``.

Presets:
* ``paper()``: the paper's section 3.1 (Gx 6 levels x 128 channels, Gk a 4-level x 64-channel
  U-Net, 5000 alternating steps with one draw per step, lr 1e-2 / 1e-4 halved at 3000, dropout
  0.3 -> 0.001 at 1500, noise 0.05 (K >= 29) or 0.01 -> 0.001 at 3500, mu = 1e-4 beside a
  summed data term). A GPU workload. docs/fidelity.md compares it with the paper point by
  point.
* ``fast()``: a CPU preset: networks lean at full resolution, fewer steps.
* ``tiny()``: for tests, seconds on a CPU at 32x32.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Iterable

import ml_collections
from ml_collections import config_dict

from jaxdeconv.variants import VARIANTS


def default_config() -> ml_collections.ConfigDict:
    """All fields, with the paper's values."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.kernel_size = 27  # odd; the kernel is [kernel_size, kernel_size]
    c.num_steps = 5000
    c.scheme = "alternating"  # 'alternating' (kernel update, then image update) or 'joint'
    # Alternating scheme: one draw (eps_t, M_t) per iteration for both half-steps (Algorithm 1,
    # line 4); False: independent draws for the kernel and the image half-steps (a variant).
    c.shared_draw = True
    # Data term of the loss: 'sum' (the squared norm of eq. 24; paper() uses it) or 'mean'
    # (per pixel, as in SelfDeblur's code; kept here so the other presets are unchanged). With
    # 'mean', mu weighs H*W times more against the data; docs/fidelity.md has the measurement.
    c.data_term = "mean"
    # From this step on the data term is 1 - SSIM of the re-blurred image (SelfDeblur's released
    # Levin script: 1000); 0: never.
    c.ssim_after = 0
    # Weight of a second data term on the residual's horizontal and vertical differences (the
    # re-blurred image's gradients against the blurry image's); 0: intensities only (the paper).
    c.grad_weight = 0.0
    # Initial weights: 'flax' (LeCun normal, zero biases) or 'pytorch' (weights and biases
    # uniform in +-1/sqrt(fan_in), as SelfDeblur's PyTorch code starts; core.initializers).
    c.param_init = "flax"
    c.num_draws = 1  # Monte-Carlo draws per loss evaluation
    c.randomize = "image"  # which net the draws sample: 'image' (paper), 'kernel' or 'both'
    c.mu = 1e-4  # weight of ||k||^2
    c.tv_weight = 0.0  # weight of a total-variation term on the image (eq. 8 baseline)
    # Extra loss terms added to the loss inside the train step: registered plug-ins
    # (jaxdeconv.core.plugins.register_loss_term, e.g. 'kernel_centre'), one weight each (none
    # given: 1 each). () : the paper's loss alone.
    c.extra_loss = ml_collections.ConfigDict()
    c.extra_loss.names = ()
    c.extra_loss.weights = ()
    c.blur_method = "auto"  # 'auto', 'direct' or 'fft'
    c.log_every = 100  # steps between host-side metric pulls and finiteness checks
    c.snapshot_every = 0  # keep the network's image every N steps (PSNR-vs-step curves); 0: off
    c.checkpoint_every = 0  # Orbax checkpoint interval in steps when a run has a folder; 0: off
    # Estimate the kernel on the most textured crop_size x crop_size window (0: whole image);
    # the two-stage result still covers the whole image. Cost per step grows with the area.
    c.crop_size = 0
    # How that window is chosen (crops.most_textured_crop): 'gradient' (most total gradient, the
    # paper's advice), 'structure' (strong edges in every direction after smoothing by
    # crop_sigma pixels of the working scale; avoids fences and foliage) or 'auto' ('structure'
    # where the network works coarse-to-fine, scale.max_kernel below the blur; else 'gradient').
    c.crop_select = "gradient"
    c.crop_sigma = 1.5
    # Refit the network's kernel by non-negative least squares on image gradients
    # (jaxdeconv.classical.refine); used by the two-stage result, not by the network's own image.
    c.refine = ml_collections.ConfigDict()
    c.refine.enabled = False
    c.refine.reg = 1e-3
    c.refine.threshold = 0.0
    # Then polish it by classical alternation (jaxdeconv.classical.refine.polish_kernel):
    # L0-gradient latent estimate, NNLS refit, ``iters`` times, on the most textured
    # ``crop_size`` window of the whole image (0: the whole image). Host-side, seconds per
    # image; not used by the network's own image.
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
    c.image_net.type = "unet"  # a registered image generator (jaxdeconv.core.plugins)
    c.image_net.channels = (128,) * 6  # one entry per level
    c.image_net.skip_channels = (16,) * 6
    c.image_net.input_channels = 8  # Cz of the fixed input zx ~ U(0, input_scale)
    c.image_net.input_scale = 0.1
    # The 1x1 conv -> norm -> act closing each decoder level (SelfDeblur's default). paper()
    # drops it: Table 6's 2.65 M parameters is what Gx has without it (docs/fidelity.md).
    c.image_net.decoder_1x1 = True
    # A non-local block (core.networks.NonLocal) in every level of Gx from this index on (0 is
    # the first); -1: none (the paper says nothing; SelfDeblur's image net has them from 2).
    c.image_net.non_local_from = -1

    c.kernel_net = ml_collections.ConfigDict()
    # A registered kernel generator (jaxdeconv.core.plugins): 'unet' (the paper's Gk), 'mlp' (Ren
    # et al.) or 'coord' (a SIREN over the kernel grid's coordinates, jaxdeconv.core.kernel_coord).
    c.kernel_net.type = "unet"
    c.kernel_net.channels = (64,) * 4
    c.kernel_net.skip_channels = (16,) * 4
    c.kernel_net.input_channels = 8  # for 'mlp': the input dimension (Ren et al.: 200)
    c.kernel_net.hidden = 1000  # 'mlp' only
    c.kernel_net.input_scale = 0.1
    c.kernel_net.decoder_1x1 = True  # 'unet' only
    c.kernel_net.coord_hidden = 64  # 'coord' only: units per hidden layer
    c.kernel_net.coord_layers = 3  # 'coord' only: hidden sine layers
    c.kernel_net.coord_omega = 30.0  # 'coord' only: SIREN's first-layer frequency

    c.optim = ml_collections.ConfigDict()
    c.optim.lr_x = 1e-2
    c.optim.lr_k = 1e-4
    c.optim.decay_boundaries = (0.6,)  # 3000 of 5000 steps
    c.optim.decay_factor = 0.5
    # The fraction of the first steps in which the kernel is not updated (rate 0): the image
    # network first fits the kernel it was given (progressive.hold_kernel sets it per level).
    c.optim.hold_k = 0.0

    c.dropout = ml_collections.ConfigDict()
    c.dropout.init = 0.3
    c.dropout.boundaries = (0.3,)  # 1500 of 5000
    c.dropout.levels = (0.001,)

    # The kernel net's dropout when it is sampled (randomize='kernel' or 'both'); section 3.5:
    # 0.1, then 0.001 from step 1500 of 5000. Its input noise follows c.noise.
    c.kernel_dropout = ml_collections.ConfigDict()
    c.kernel_dropout.init = 0.1
    c.kernel_dropout.boundaries = (0.3,)
    c.kernel_dropout.levels = (0.001,)

    c.noise = ml_collections.ConfigDict()
    # Unset: 'large_kernel' for kernel_size >= large_kernel_min_size, else 'small_kernel'.
    c.noise.init = config_dict.placeholder(float)
    c.noise.large_kernel = 0.05
    c.noise.small_kernel = 0.01
    # Between Levin's largest kernel (27, "small" in the paper) and Lai's smallest (31,
    # "large"); the paper gives no number.
    c.noise.large_kernel_min_size = 29
    c.noise.boundaries = (0.7,)  # 3500 of 5000
    c.noise.levels = (0.001,)

    # The final non-blind step of the two-stage result (jaxdeconv.classical.nonblind.final_deconv).
    # 'hyper_laplacian': Krishnan & Fergus; 'outlier_robust': the same prior with a data term
    # that lets clipped highlights be brighter than 1 and down-weights outliers (the paper uses
    # an outlier-handling method for Lai's 'saturated' images); 'auto': outlier_robust when at
    # least auto_min_clipped_fraction of the blurry pixels are >= clip_threshold.
    # Defaults equal nonblind.DEFAULT_* (checked by a test).
    c.nonblind = ml_collections.ConfigDict()
    c.nonblind.method = "auto"
    c.nonblind.lam = 5000.0
    # Lower the data weight to noise_lam_scale / sigma on noisy images (sigma: the blurry
    # image's estimated noise std, nonblind.estimate_noise); 5000 stays for sigma < 0.004.
    c.nonblind.noise_adaptive = True
    c.nonblind.noise_lam_scale = 20.0
    c.nonblind.alpha = 2.0 / 3.0
    c.nonblind.clip_threshold = 0.98
    c.nonblind.auto_min_clipped_fraction = 0.005
    c.nonblind.outlier_sigma = 0.02
    c.nonblind.outlier_prob = 0.05
    c.nonblind.inner_iters = 10  # outlier_robust: weight updates per continuation stage
    c.nonblind.cg_iters = 10  # outlier_robust: conjugate-gradient steps per update

    # Stochastic draws of the trained image net for the mean / uncertainty map. Unset levels
    # use the schedules' values at the last step (the regime the network ended in).
    c.sample = ml_collections.ConfigDict()
    c.sample.num_samples = 8
    c.sample.noise_std = config_dict.placeholder(float)
    c.sample.dropout_rate = config_dict.placeholder(float)
    _estimate_fields(c)
    return c


# --- Scale-aware estimate, automatic kernel size, failure recovery (jaxdeconv.pipeline) -------
def _estimate_fields(c: ml_collections.ConfigDict) -> None:
    """Fields of the estimate beyond the paper; every one off (the paper's path) by default."""
    # An odd integer, or "auto": the size is then found from an estimate at auto_size.max_size.
    c.kernel_size = config_dict.FieldReference(c.kernel_size, field_type=object)
    c.auto_size = ml_collections.ConfigDict()
    c.auto_size.max_size = 0  # upper bound; 0: min(75, short side / 4) (kernel_size.py)
    c.auto_size.min_size = 5
    c.auto_size.mass = 0.99  # the support box holds this fraction of the cleaned mass
    c.auto_size.margin = 2  # taps added on each side of the support box
    c.auto_size.threshold = 0.02  # taps below this fraction of the largest are noise
    # For a given size K: estimate a kernel of side odd(support_margin * K) (same working
    # scale), then cut it back to K around its support (kernel_size.recentre) and polish once
    # more. 1: estimate at K exactly (the paper).
    c.support_margin = 1.0
    # Coarse-to-fine: the network estimates at scale s = min(1, max_kernel / K) on the most
    # textured (crop_size / s)-pixel window down-sampled by s, so its kernel has at most
    # max_kernel taps a side; the kernel is then polished up a pyramid (factor pyramid_factor
    # per level) to full resolution. 0: the network works at full resolution.
    c.scale = ml_collections.ConfigDict()
    c.scale.max_kernel = 0
    c.scale.pyramid_factor = 2.0
    # The polish window's side is at least kernel_factor * K (0: polish.crop_size alone).
    c.polish.kernel_factor = 0
    # For kernels larger than lam_ref_size taps the L0 weight falls as (lam_ref_size / K)^2
    # (refine.size_scaled_lam); 0: polish.lam for every size.
    c.polish.lam_ref_size = 0
    # Blind failure checks on the final kernel (classical.diagnose); a flagged one gets up to
    # `attempts` more runs, the unflagged candidate with the lowest data residual wins.
    c.recover = ml_collections.ConfigDict()
    c.recover.attempts = 0
    # Whole estimates with seeds seed, seed+1, ...; which one is kept: "agreement" (the kernel
    # agreeing best with the others) or "evidence" (the kernel under which the blurry photo is
    # most probable, classical.evidence, each kernel first blurred by a Gaussian of camera_blur
    # px: the lens's and sensor's own blur, which real photos carry and motion kernels lack).
    c.recover.seeds = 1
    c.recover.seed_select = "agreement"
    c.recover.camera_blur = 0.75
    # With "evidence": each run's network kernel (before refit and polish) competes too.
    c.recover.network_kernels = False
    # Named variants (jaxdeconv.variants, e.g. ("ssim_switch",)) whose estimate competes with
    # the seeds' under seed_select: each run at the base seed, on the first seed's window.
    c.recover.variants = ()
    c.recover.delta_peak = 0.5
    c.recover.border_mass = 0.2
    # Other window rules (crop_select values) whose window also gets a network run on every
    # image (not only a flagged one); the same ranking picks the kernel. () : none.
    c.recover.windows = ()
    # Agreement across windows: the same estimate on up to this many windows of the photo (the
    # most textured first, each overlapping the others by at most max_overlap of its area), the
    # kernel they agree on kept (pipeline.agreeing_window). 1: the one window.
    c.recover.agree_windows = 1
    c.recover.max_overlap = 0.25
    # Progressive coarse-to-fine training of the network stage, every field explained in
    # jaxdeconv.run.progressive's docstring. 0 levels: one run at the working scale (the paper).
    c.progressive = ml_collections.ConfigDict()
    c.progressive.levels = 0
    c.progressive.factor = 2.0
    c.progressive.min_kernel = 7
    c.progressive.step_share = 0.4
    c.progressive.carry_image = False
    c.progressive.image_input = "noise"  # 'noise' | 'resampled' | 'previous'
    c.progressive.crop_size = -1  # the coarser levels' window; -1: crop_size; 0: whole photo
    c.progressive.hold_kernel = 0.0


def paper() -> ml_collections.ConfigDict:
    """Faithful to the paper's section 3.1, point by point in docs/fidelity.md."""
    c = default_config()
    # Gx with 6 levels x 128 channels has 2.646 M parameters without the decoder's 1x1 convs
    # (2.747 M with them): Table 6 gives 2.65 M. The same U-Net code builds Gk.
    c.image_net.decoder_1x1 = False
    c.kernel_net.decoder_1x1 = False
    # Eq. 24's squared norm (a sum over pixels), with which mu = 2 sigma^2 lambda = 1e-4 is
    # derived; on 3 Levin images x 2 seeds (fast preset, 1000 steps) it gave two-stage 27.86
    # against 27.56 dB with the mean, direct 24.84 against 25.28 (docs/fidelity.md).
    c.data_term = "sum"
    return c


def fast() -> ml_collections.ConfigDict:
    """CPU preset: about 215 s per 255x255 image on a 2-core CPU (Levin: 31.48 dB two-stage).

    Lean full-resolution layers, wider deeper down; Ren et al.'s MLP kernel net; joint updates;
    the kernel estimated on the most textured 128x128 crop, refit by NNLS on gradients and
    polished by L0-latent / NNLS alternation where that fits better; 2500 steps; kernels above
    27 px coarse-to-fine; a flagged kernel re-estimated once. Each choice's measurement is in
    the comments below and docs/performance.md.
    """
    c = default_config()
    c.num_steps = 2500  # not 1000: +0.52 dB on the 32 Levin images at 2.6x the time
    c.crop_size = 128
    # Blurs above 27 px (coarse-to-fine): the window with strong edges in every direction, not
    # the most gradient (Lai 20-image subset: 16.49 -> 17.98 dB two-stage, 4 -> 6 right
    # kernels). Up to 27 px the most gradient, as tuned: on 21 Levin images 'structure' gave
    # 30.89 dB against 31.44 (docs/performance.md, 2026-11-26).
    c.crop_select = "auto"
    c.refine.enabled = True  # +0.3 to +0.65 dB on 3 of 4 Levin images, no loss on the fourth
    c.scheme = "joint"  # cheaper than alternating, and better (im1_kernel4: 28.4 vs 25.2 dB)
    c.image_net.channels = (16, 32, 64, 64, 128)
    c.image_net.skip_channels = (4, 8, 16, 16, 16)
    c.kernel_net.type = "mlp"
    c.kernel_net.input_channels = 200
    c.optim.lr_k = 5e-4
    # Input noise by blur size: none up to 27 px (with the paper's 0.01 too, 32 Levin images
    # gave 29.93 dB two-stage, before the polish, against 30.27 with dropout alone at 1000
    # steps); from 29 px the paper's large-kernel schedule (0.05, then 0.001 from 70% of the
    # steps): on the Lai 20-image subset (all blurs 31-75 px) 18.85 dB two-stage against 17.98
    # without it, better on 12 of 20, 7 right kernels against 6 (docs/performance.md).
    c.noise.small_kernel = 0.0
    c.polish.enabled = True
    # Kernels above 27 px (Levin's largest, where this preset was tuned) are estimated
    # coarse-to-fine: the network at scale 27 / K on a (128 K / 27)-pixel window, then the
    # polish up a pyramid on a window of at least 4 K (docs/performance.md, "Photographs").
    # Kernels up to 27 px take exactly the path measured on Levin.
    c.scale.max_kernel = 27
    c.polish.kernel_factor = 4
    # A kernel flagged as a delta or piled on its border gets one more network run (another
    # key); the unflagged candidate with the better data fit is kept.
    c.recover.attempts = 1
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


def quality() -> ml_collections.ConfigDict:
    """CPU preset that spends about 3x `fast`'s time: `fast` on three seeds, the final kernel
    under which the blurry photo is most probable kept (``recover.seed_select = "evidence"``,
    with 0.75 px of camera blur allowed for). The seeds of `fast` disagree on hard images
    (Levin's dev 8: one image at 28.5, 20.8 and 25.8 dB); the evidence is a judge that needs
    no sharp image. The networks' own kernels stay out of the choice
    (``recover.network_kernels``): they helped on Levin and hurt on the synthetic suite
    (docs/results.md, tenth probe)."""
    c = fast()
    c.recover.seeds = 3
    c.recover.seed_select = "evidence"
    c.recover.camera_blur = 0.75
    return c


PRESETS = {"paper": paper, "fast": fast, "quality": quality, "tiny": tiny}


# --- What a config computes: one fingerprint, and the defaults of a partial config ------------

# Fields that change no result: how often a run reports, checkpoints or keeps the network's
# image for curves.
RESULT_NEUTRAL = ("log_every", "checkpoint_every", "snapshot_every")

# Fields added after fingerprints were first stored, each with the value at which a config
# computes what it did before the field existed: left out of the fingerprint at that value, so
# what was stored before stays valid (a resumed benchmark does not redo it). A new field that
# is off by default goes here with its default.
ADDED_FIELDS = {
    "param_init": "flax",
    "support_margin": 1.0,
    "recover.windows": (),
    "recover.seeds": 1,
    "recover.seed_select": "agreement",
    "recover.camera_blur": 0.75,
    "recover.network_kernels": False,
    "recover.variants": (),
    "recover.agree_windows": 1,
    "recover.max_overlap": 0.25,
    "grad_weight": 0.0,
    "image_net.type": "unet",
    "image_net.non_local_from": -1,
    "kernel_net.coord_hidden": 64,
    "kernel_net.coord_layers": 3,
    "kernel_net.coord_omega": 30.0,
    "progressive.levels": 0,
    "progressive.factor": 2.0,
    "progressive.min_kernel": 7,
    "progressive.step_share": 0.4,
    "progressive.carry_image": False,
    "progressive.image_input": "noise",
    "progressive.crop_size": -1,
    "progressive.hold_kernel": 0.0,
    "optim.hold_k": 0.0,
    "extra_loss.names": (),
    "extra_loss.weights": (),
}


def _parent(d: dict, field: str) -> tuple[dict, str]:
    """The dict holding dotted ``field`` in the nested ``d`` (``{}`` when absent) and its key."""
    *parents, leaf = field.split(".")
    for part in parents:
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return (d if isinstance(d, dict) else {}), leaf


def fingerprint(cfg: ml_collections.ConfigDict, *, ignore: Iterable[str] = RESULT_NEUTRAL) -> str:
    """12 hex digits naming what ``cfg`` computes: a SHA-1 of its fields as sorted JSON, less
    the dotted names in ``ignore`` and less :data:`ADDED_FIELDS` at their off value (a group
    they leave empty goes too). Equal configs, or configs differing only there, share it."""
    d = cfg.to_dict()
    for field in ignore:
        node, leaf = _parent(d, field)
        node.pop(leaf, None)
    for field, off in ADDED_FIELDS.items():
        node, leaf = _parent(d, field)
        if leaf in node:
            value = node[leaf]
            if (tuple(value) if isinstance(value, list | tuple) else value) == off:
                del node[leaf]
    for group in {f.split(".")[0] for f in ADDED_FIELDS if "." in f}:
        if d.get(group) == {}:  # a group added later, every field at its off value
            del d[group]
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def with_defaults(cfg: ml_collections.ConfigDict, group: str = "") -> ml_collections.ConfigDict:
    """A copy of ``cfg`` (a run config, or its group ``group`` such as ``'nonblind'``) with every
    field it lacks taken from :func:`default_config`: for a partial config, or one saved before
    a field existed. A full config comes back with the same values."""
    defaults = default_config()
    for part in filter(None, group.split(".")):
        defaults = defaults[part]

    def merged(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            out[key] = merged(base[key], value) if both else value
        return out

    return ml_collections.ConfigDict(merged(defaults.to_dict(), cfg.to_dict()))


# --- Kernel sizes: the one check of a size's validity -----------------------------------------


def kernel_size_problem(k, *, allow_auto: bool = True, where: str = "kernel_size") -> str | None:
    """Why ``k`` is not a kernel size (None when it is): a positive odd integer (a NumPy
    integer too, not a bool), or ``'auto'`` where ``allow_auto``. ``where`` starts the message."""
    if allow_auto and isinstance(k, str) and k == "auto":
        return None
    if isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1 and k % 2 == 1:
        return None
    either = " or 'auto'" if allow_auto else ""
    return f"{where} must be a positive odd integer{either}, got {k!r}"


def check_kernel_size(k, *, allow_auto: bool = True, where: str = "kernel_size") -> int | str:
    """``k`` as an ``int`` (or ``'auto'``); ``ValueError`` with :func:`kernel_size_problem`'s
    message when it is not a kernel size."""
    problem = kernel_size_problem(k, allow_auto=allow_auto, where=where)
    if problem:
        raise ValueError(problem)
    return k if isinstance(k, str) else int(k)


def check_kernel_shape(shape: tuple, *, where: str = "kernel") -> None:
    """``ValueError`` unless ``shape`` is that of a kernel array, ``[K, K]`` with ``K`` odd."""
    shape = tuple(shape)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] % 2 != 1:
        raise ValueError(f"{where} must be [K, K] with K odd, got shape {shape}")


# --- Command-line overrides (one syntax for the command, the launchers and the ablation tool) --


def field_names(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every settable field of ``cfg`` as a dotted name (``optim.lr_x``), groups excluded."""
    names = []
    for key in sorted(cfg.keys()):
        value = cfg[key]
        if isinstance(value, ml_collections.ConfigDict):
            names += field_names(value, f"{prefix}{key}.")
        else:
            names.append(prefix + key)
    return names


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "True or False"}.get(
        t, t.__name__
    )


def _entry_ok(value, kinds: set) -> bool:
    """Whether ``value`` may stand in a tuple whose entries have the types ``kinds``."""
    if not kinds:  # an empty default says nothing
        return True
    if kinds <= {int, float}:  # numbers: an integer may stand for a float
        return not isinstance(value, bool) and (
            isinstance(value, int) or (float in kinds and isinstance(value, float))
        )
    return type(value) in kinds


def _typed(field: str, text: str, target: type, current):
    """``text`` parsed as a Python literal and checked against the field's type."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word: only a string field takes it
    if target is str:
        return value if isinstance(value, str) else text
    if target is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    elif target in (tuple, list):
        if not isinstance(value, tuple | list):
            raise ValueError(f"{field}={text}: expects a tuple, e.g. {field}=({text},)")
        kinds = {type(v) for v in current or ()}
        for v in value:
            if not _entry_ok(v, kinds):
                want = " or ".join(sorted(_type_name(k) for k in kinds))
                raise ValueError(f"{field}={text}: every entry must be {want}, not {v!r}")
        return tuple(float(v) for v in value) if kinds == {float} else tuple(value)
    elif target is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif target is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, target):
        return value
    raise ValueError(f"{field}={text}: expects {_type_name(target)}, got {text!r}")


def apply_overrides(cfg: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
    """Sets ``FIELD=VALUE`` items (``num_steps=2000``, ``optim.lr_x=5e-3``,
    ``image_net.channels=(16,32)``, ``noise.init=None``) on ``cfg`` in place and returns it.

    A value is a Python literal (a bare word is a string) and must have the field's type (an
    integer may stand for a float; a tuple for a tuple; ``None`` only where the field may be
    unset). Raises ``ValueError`` naming the item, before anything is changed, for an unknown
    field (with the closest names), a group of fields, or a value of the wrong type.
    """
    import difflib

    known = field_names(cfg)
    staged = []
    for item in overrides:
        field, sep, text = str(item).partition("=")
        field = field.strip()
        if not sep or not field:
            raise ValueError(f"{item!r}: expected FIELD=VALUE, e.g. num_steps=2000")
        *parents, leaf = field.split(".")
        node = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            close = difflib.get_close_matches(field, known, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(f"{item}: unknown config field '{field}'{hint}")
        current = node[leaf]
        if isinstance(current, ml_collections.ConfigDict):
            raise ValueError(
                f"{item}: '{field}' is a group of fields; set one of them, e.g. "
                f"{field}.{sorted(current.keys())[0]}=..."
            )
        target = node.get_type(leaf)
        if text.strip() == "None":
            if current is not None and not _unset_by_default(field):
                raise ValueError(f"{item}: '{field}' cannot be None")
            staged.append((node, leaf, None))
            continue
        if current is None and target is type(None):
            raise ValueError(f"{item}: '{field}' has no type to check the value against")
        if field == "kernel_size" and text.strip() == "auto":  # the one non-integer size
            staged.append((node, leaf, "auto"))
            continue
        staged.append((node, leaf, _typed(field, text.strip(), target, current)))
    for node, leaf, value in staged:
        with node.ignore_type():  # types were checked above (this allows 'auto')
            node[leaf] = value
    return cfg


def _unset_by_default(field: str) -> bool:
    """True for fields that ``default_config()`` leaves unset (``None``), like ``noise.init``."""
    node = default_config()
    for part in field.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return False
        node = node[part]
    return node is None


def check_values(cfg: ml_collections.ConfigDict) -> None:
    """Raises ``ValueError`` for field values no run can use (checked before any work).
    Fields a config does not have are not checked."""

    def get(field):
        node = cfg
        for part in field.split("."):
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        return node

    problems = []
    k = get("kernel_size")
    if k is not None and (problem := kernel_size_problem(k, allow_auto=True)):
        problems.append(problem)
    for field, least in [
        ("num_steps", 1),
        ("num_draws", 1),
        ("log_every", 1),
        ("sample.num_samples", 1),
        ("checkpoint_every", 0),
        ("snapshot_every", 0),
        ("crop_size", 0),
        ("ssim_after", 0),
        ("recover.seeds", 1),
        ("recover.agree_windows", 1),
    ]:
        value = get(field)
        if isinstance(value, int) and value < least:
            what = "a positive integer" if least else "0 or more"
            problems.append(f"{field} must be {what}, got {value!r}")
    windows = get("recover.windows") or ()
    if isinstance(windows, str) or any(w not in ("gradient", "structure") for w in windows):
        problems.append(
            f"recover.windows must be a tuple of 'gradient' or 'structure', got {windows!r}"
        )
    for field, allowed in [
        ("crop_select", ("gradient", "structure", "auto")),
        ("progressive.image_input", ("noise", "resampled", "previous")),
        ("param_init", ("flax", "pytorch")),
        ("recover.seed_select", ("agreement", "evidence")),
        ("scheme", ("alternating", "joint")),
    ]:
        if (value := get(field)) is not None and value not in allowed:
            problems.append(
                f"{field} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )
    pool = get("recover.variants") or ()
    if isinstance(pool, str) or any(not isinstance(v, str) or v not in VARIANTS for v in pool):
        problems.append(
            f"recover.variants must be a tuple of variant names (jaxdeconv.variants), got {pool!r}"
        )
    blur_sigma = get("recover.camera_blur")
    if isinstance(blur_sigma, int | float) and not blur_sigma >= 0:
        problems.append(f"recover.camera_blur must be 0 or more (px), got {blur_sigma!r}")
    names, weights = get("extra_loss.names") or (), get("extra_loss.weights") or ()
    if weights and len(weights) != len(names):
        problems.append(
            f"extra_loss.weights needs one weight per name, got {len(names)} names and "
            f"{len(weights)} weights"
        )
    levels, non_local = get("image_net.channels"), get("image_net.non_local_from")
    if isinstance(non_local, int) and levels is not None and not -1 <= non_local < len(levels):
        problems.append(
            f"image_net.non_local_from must be -1 (none) or a level index below "
            f"{len(levels)}, got {non_local!r}"
        )
    margin = get("support_margin")
    if isinstance(margin, (int, float)) and not margin >= 1.0:
        problems.append(f"support_margin must be 1 or more, got {margin!r}")
    if problems:
        raise ValueError("; ".join(problems))
