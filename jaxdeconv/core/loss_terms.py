"""Extra loss terms of the train step: how they are chosen, combined and keyed, and the
built-in ones (registered by name, ``jaxdeconv.core.plugins``; none is used unless the config
names it in ``extra_loss.names`` or a term is given to ``train.build_spec``).

A term is ``fn(images, kernel, key, step) -> (value, metrics)`` (``plugins`` documents the
arguments). The step adds ``weight * value`` of each term to the paper's loss and logs
``value`` as metric ``name`` and each of its metrics as ``name/KEY``. Term ``i`` draws from
``fold_in(key, EXTRA_LOSS_STREAM + i)`` of its half-step's key.

Built-in:

* ``kernel_centre``: the squared distance, in taps, of the kernel's centre of mass from the
  centre of its grid. Blind deconvolution recovers the kernel only up to a shift (the image
  shifts the other way); a small weight keeps the kernel off the grid's border.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from jaxdeconv.core import plugins

# Far above any draw count: fold_in(key, EXTRA_LOSS_STREAM + i) is never one of the draws'
# keys split(key, N)[j] (with this JAX, fold_in(key, j) equals split(key, N)[j]).
EXTRA_LOSS_STREAM = 0x4C4F5353
# Metric names of the train step; a term may not take one.
STEP_METRICS = ("loss", "data", "kernel_norm", "tv", "noise_std", "dropout_rate")


class ExtraLoss(NamedTuple):
    """One extra loss term: ``weight * fn(images, kernel, key, step)[0]`` joins the loss."""

    name: str
    weight: float
    fn: Callable


def from_config(config: ml_collections.ConfigDict) -> tuple[ExtraLoss, ...]:
    """The registered terms ``config.extra_loss.names`` picks, with their weights
    (``extra_loss.weights``, one per name; none given: 1 each). ``ValueError`` for an unknown
    name or a count mismatch."""
    group = config.get("extra_loss")
    names = tuple(group.get("names", ())) if group is not None else ()
    if not names:
        return ()
    weights = tuple(group.get("weights", ())) or (1.0,) * len(names)
    if len(weights) != len(names):
        raise ValueError(
            f"extra_loss.weights needs one weight per name: {len(names)} names "
            f"{names}, {len(weights)} weights {weights}"
        )
    return tuple(
        ExtraLoss(name, float(w), plugins.loss_term(name))
        for name, w in zip(names, weights, strict=True)
    )


def as_extra_loss(term) -> ExtraLoss:
    """``ExtraLoss``, ``(name, weight, fn)`` or a bare ``fn`` (weight 1, named after it)."""
    if isinstance(term, ExtraLoss):
        return term
    if isinstance(term, tuple):
        return ExtraLoss(*term)
    if callable(term):
        return ExtraLoss(getattr(term, "__name__", "extra"), 1.0, term)
    raise ValueError(f"an extra loss is a function or (name, weight, function), got {term!r}")


def active(terms: Sequence[ExtraLoss]) -> tuple[ExtraLoss, ...]:
    """``terms`` without those of weight 0 (so a run with them is bit-identical to one
    without); ``ValueError`` for a name taken by a step metric or used twice."""
    kept = tuple(t for t in terms if not (isinstance(t.weight, int | float) and t.weight == 0))
    names = [t.name for t in kept]
    for name in names:
        if name in STEP_METRICS or names.count(name) > 1:
            raise ValueError(
                f"extra loss term name {name!r} is taken (the step's metrics are "
                f"{STEP_METRICS}; names must be distinct)"
            )
    return kept


def combine(
    terms: Sequence[ExtraLoss],
    key: jax.Array,
    step: jax.Array,
    weights: Sequence | None = None,
) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, dict]] | None:
    """``extra(images, kernel) -> (weighted sum, metrics)`` for ``loss.mc_loss`` (None when
    there are no terms): term ``i`` gets ``fold_in(key, EXTRA_LOSS_STREAM + i)`` and ``step``,
    and weight ``weights[i]`` (a number or a traced scalar; default: the term's own)."""
    if not terms:
        return None
    if weights is None:
        weights = tuple(term.weight for term in terms)
    if len(weights) != len(terms):
        raise ValueError(f"{len(terms)} extra loss terms need {len(terms)} weights, got {weights}")

    def extra(images: jax.Array, kernel: jax.Array) -> tuple[jax.Array, dict]:
        total, metrics = None, {}
        for i, (term, weight) in enumerate(zip(terms, weights, strict=True)):
            value, more = term.fn(
                images, kernel, jax.random.fold_in(key, EXTRA_LOSS_STREAM + i), step
            )
            weighted = weight * value
            total = weighted if total is None else total + weighted
            metrics[term.name] = value
            metrics.update({f"{term.name}/{k}": v for k, v in (more or {}).items()})
        return total, metrics

    return extra


@plugins.register_loss_term("kernel_centre")
def kernel_centre(
    images: jax.Array, kernel: jax.Array, key: jax.Array, step: jax.Array
) -> tuple[jax.Array, dict]:
    """Squared offset of the centre of mass of ``kernel [K, K]`` (or ``[N, K, K]``, averaged)
    from the grid's centre; metrics: the mean row and column offsets ``dy``, ``dx``."""
    del images, key, step
    side = kernel.shape[-1]
    offsets = jnp.arange(side, dtype=kernel.dtype) - (side - 1) / 2
    dy = jnp.sum(kernel, axis=-1) @ offsets  # the kernel sums to one: mass-weighted mean row
    dx = jnp.sum(kernel, axis=-2) @ offsets
    return jnp.mean(dy**2 + dx**2), {"dy": jnp.mean(dy), "dx": jnp.mean(dx)}
