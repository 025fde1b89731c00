"""jaxdeconv: dataset-free blind image deblurring by Monte-Carlo sampling, in JAX/Flax.

Conventions: images are float32 in [0, 1], ``[H, W, C]``; a blur kernel ``[K, K]`` (K odd) is
non-negative, sums to one and acts by cross-correlation: ``y = valid_correlate(x_big, k)``
with ``x_big`` of shape ``[H + K - 1, W + K - 1, C]``.
"""

# The benchmark layer (datasets, metrics, synthetic suite, evaluation) is not imported here:
# ``from jaxdeconv.classical import metrics`` when you need it.
from jaxdeconv import config
from jaxdeconv.classical import nonblind
from jaxdeconv.classical.nonblind import hyper_laplacian_deconv, wiener_deconv
from jaxdeconv.core.blur import valid_correlate, valid_correlate_direct, valid_correlate_fft
from jaxdeconv.core.loss import LossTerms, loss_from_images, mc_loss, sample_images
from jaxdeconv.core.networks import ImageUNet, KernelMLP, KernelUNet
from jaxdeconv.core.schedules import piecewise_constant
from jaxdeconv.core.train import (
    ExtraLoss,
    Hyper,
    RunSpec,
    TrainState,
    build_spec,
    hyperparameters,
    image_estimate,
    init_state,
    kernel_estimate,
    make_train_step,
    sample_statistics,
    train_step,
    unrolled,
    with_hyperparameters,
)
from jaxdeconv.pipeline import deblur_image  # the two-stage result a user wants
from jaxdeconv.run.api import DeblurResult, NonFiniteLossError, deblur, deblur_batch

__version__ = "0.1.0"

__all__ = [
    "DeblurResult",
    "ExtraLoss",
    "Hyper",
    "ImageUNet",
    "KernelMLP",
    "KernelUNet",
    "LossTerms",
    "NonFiniteLossError",
    "RunSpec",
    "TrainState",
    "build_spec",
    "config",
    "hyper_laplacian_deconv",
    "nonblind",
    "wiener_deconv",
    "deblur",
    "deblur_batch",
    "deblur_image",
    "hyperparameters",
    "image_estimate",
    "init_state",
    "kernel_estimate",
    "loss_from_images",
    "make_train_step",
    "mc_loss",
    "piecewise_constant",
    "sample_images",
    "sample_statistics",
    "train_step",
    "unrolled",
    "valid_correlate",
    "valid_correlate_direct",
    "valid_correlate_fft",
    "with_hyperparameters",
]
