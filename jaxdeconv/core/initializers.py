"""Parameter initialisation schemes, applied to freshly initialised parameter trees.

Flax's layers start with LeCun-normal weights and zero biases. PyTorch's ``Conv2d`` and
``Linear`` (what SelfDeblur and its successors use) start with weights and biases uniform in
``+-1/sqrt(fan_in)``, ``fan_in`` being the weight's inputs per output (``kh * kw * C_in`` for a
convolution). :func:`reinit` redraws a tree built by Flax under another scheme, so any network,
plug-ins included, can start the way the PyTorch code bases start theirs. Normalisation scales
and offsets (instance norm) start at 1 and 0 in both libraries and are left alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

SCHEMES = ("flax", "pytorch")


def _fan_in(kernel_shape: tuple) -> int:
    """Inputs per output of a Flax ``Dense`` (``[in, out]``) or ``Conv`` (``[kh, kw, in, out]``)
    weight."""
    return int(math.prod(kernel_shape[:-1]))


def reinit(params, key: jax.Array, scheme: str = "flax"):
    """``params`` (a Flax tree) re-drawn under ``scheme``: ``'flax'`` returns it unchanged;
    ``'pytorch'`` redraws every layer holding a ``kernel`` (and its ``bias``) uniformly in
    ``+-1/sqrt(fan_in)``, one sub-key per layer (``fold_in(key, layer index)`` in the tree's
    flattening order). Pure: the same key gives the same tree."""
    if scheme not in SCHEMES:
        raise ValueError(f"param_init must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "flax":
        return params
    index = [0]

    def visit(node):
        if not isinstance(node, dict) and not hasattr(node, "items"):
            return node
        node = dict(node)
        kernel = node.get("kernel")
        if kernel is not None and not hasattr(kernel, "items") and jnp.ndim(kernel) >= 2:
            bound = 1.0 / math.sqrt(_fan_in(jnp.shape(kernel)))
            layer_key = jax.random.fold_in(key, index[0])
            index[0] += 1
            key_w, key_b = jax.random.split(layer_key)
            node["kernel"] = jax.random.uniform(
                key_w, jnp.shape(kernel), jnp.result_type(kernel), -bound, bound
            )
            if "bias" in node and not hasattr(node["bias"], "items"):
                bias = node["bias"]
                node["bias"] = jax.random.uniform(
                    key_b, jnp.shape(bias), jnp.result_type(bias), -bound, bound
                )
        return {k: visit(v) for k, v in sorted(node.items())}

    return visit(params)
