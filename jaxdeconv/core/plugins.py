"""Plug-ins chosen by name from the config: kernel generators, image generators and extra
loss terms.

A kernel generator is registered with a builder ``builder(config, kernel_size) -> (module,
zk_shape)``: ``config`` is the whole run config (its ``kernel_net`` group holds the
generator's fields), ``kernel_size`` the odd side of the kernel grid it must produce, and
``zk_shape`` the shape of its fixed input. The module is a ``flax.linen`` module called as
``module.apply(params, zk, noise_std, dropout_rate, deterministic=..., rngs=...)`` that returns
a kernel ``[K, K]``, non-negative and summing to one. ``config.kernel_net.type`` picks it.

An image generator is registered with ``builder(config, out_channels) -> module``, the module
mapping ``zx [Hb, Wb, Cz]`` to an image ``[Hb, Wb, out_channels]`` in (0, 1), with the
``'noise'`` and ``'dropout'`` rng streams unless ``deterministic``; ``config.image_net.type``
picks it.

Your own generator is one function and one config value, without editing the library::

    @plugins.register_kernel_net("mine")
    def build(config, kernel_size):
        return MyKernelNet(kernel_size), (kernel_size, kernel_size, 8)

    cfg.kernel_net.type = "mine"

An extra loss term is registered as the term itself, ``term(images, kernel, key, step) ->
(value, metrics)``: ``images`` are the Monte-Carlo draws of the image net ``[N, H + K - 1,
W + K - 1, C]`` (uncropped), ``kernel`` the kernel ``[K, K]`` (``[N, K, K]`` when the kernel
net is sampled), ``key`` a key of its own (never one of the draws'), ``step`` the traced step
index; it returns a scalar and a dict of scalar metrics (may be empty). It is added, times its
weight, to the paper's loss inside the train step (``jaxdeconv.core.train``), so the scheme,
the data term, ``mu``, SSIM and gradient terms and ``randomize`` still apply. The config picks
terms by name with a weight each (``extra_loss.names``, ``extra_loss.weights``)::

    @plugins.register_loss_term("centre")
    def centre(images, kernel, key, step):
        ...
        return value, {}

    cfg.extra_loss.names, cfg.extra_loss.weights = ("centre",), (1e-3,)

``resolution_free=True`` marks a kernel generator whose parameters do not depend on the grid
(the same weights give the kernel on any grid; its side is read from ``zk``'s shape): only
those can be carried from one scale to the next (``jaxdeconv.run.progressive``).

The built-in plug-ins are listed by name with the dotted path of their module
(``BUILTIN_MODULES``); a lookup imports that module, so this registry imports none of the
modules that register into it (no import cycle).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import NamedTuple


class KernelNetPlugin(NamedTuple):
    build: Callable  # (config, kernel_size) -> (module, zk_shape)
    resolution_free: bool


KERNEL_NETS: dict[str, KernelNetPlugin] = {}
IMAGE_NETS: dict[str, Callable] = {}
LOSS_TERMS: dict[str, Callable] = {}
_TABLES = {"kernel_net": KERNEL_NETS, "image_net": IMAGE_NETS, "loss_term": LOSS_TERMS}


def register_kernel_net(name: str, *, resolution_free: bool = False):
    """Decorator registering a kernel generator's builder under ``name`` (replacing one of the
    same name)."""

    def register(build: Callable) -> Callable:
        KERNEL_NETS[name] = KernelNetPlugin(build, resolution_free)
        return build

    return register


def register_image_net(name: str):
    """Decorator registering an image generator's builder under ``name``."""

    def register(build: Callable) -> Callable:
        IMAGE_NETS[name] = build
        return build

    return register


def register_loss_term(name: str):
    """Decorator registering an extra loss term ``term(images, kernel, key, step) -> (value,
    metrics)`` under ``name`` (replacing one of the same name)."""

    def register(term: Callable) -> Callable:
        LOSS_TERMS[name] = term
        return term

    return register


# The built-in plug-ins by name, as the dotted path of the module that registers them: a lookup
# imports that module (as big_vision imports ``models.{name}``), so this registry imports none
# of the modules that register into it.
BUILTIN_MODULES: dict[str, dict[str, str]] = {
    "kernel_net": {
        "unet": "jaxdeconv.core.networks",
        "mlp": "jaxdeconv.core.networks",
        "coord": "jaxdeconv.core.kernel_coord",
    },
    "image_net": {"unet": "jaxdeconv.core.networks"},
    "loss_term": {"kernel_centre": "jaxdeconv.core.loss_terms"},
}


def _registered(kind: str, table: dict, name: str) -> bool:
    """Whether ``name`` is in ``table`` once its built-in module, if any, is imported. A name
    registered before its module loads keeps that registration (a user's replacement wins)."""
    module = BUILTIN_MODULES[kind].get(name)
    if name not in table and module is not None:
        before = {t: dict(r) for t, r in _TABLES.items()}
        importlib.import_module(module)
        for t, registry in _TABLES.items():
            registry.update(before[t])
    return name in table


def _known(kind: str, table: dict) -> list[str]:
    return sorted(set(table) | set(BUILTIN_MODULES[kind]))


def kernel_net(name: str) -> KernelNetPlugin:
    """The kernel generator registered as ``name``; ``ValueError`` naming the known ones."""
    if not _registered("kernel_net", KERNEL_NETS, name):
        known = _known("kernel_net", KERNEL_NETS)
        raise ValueError(f"kernel_net.type must be one of {known}, got {name!r}")
    return KERNEL_NETS[name]


def image_net(name: str) -> Callable:
    """The image generator builder registered as ``name``; ``ValueError`` naming the known."""
    if not _registered("image_net", IMAGE_NETS, name):
        known = _known("image_net", IMAGE_NETS)
        raise ValueError(f"image_net.type must be one of {known}, got {name!r}")
    return IMAGE_NETS[name]


def loss_term(name: str) -> Callable:
    """The extra loss term registered as ``name``; ``ValueError`` naming the known ones."""
    if not _registered("loss_term", LOSS_TERMS, name):
        known = _known("loss_term", LOSS_TERMS)
        raise ValueError(f"extra_loss.names: {name!r} is not one of {known}")
    return LOSS_TERMS[name]
