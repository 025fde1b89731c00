"""The optimiser of both networks as a value: Adam with a step-decayed learning rate.

``Adam`` is an ``optax`` transformation (``init(params)``, ``update(grads, state, params)``)
described by its numbers alone, so two run specs built from equal configs compare equal and
share one compiled step (``jaxdeconv.run.runner`` keys its cache by value).

The base rate lives in the optimiser's state, not in the compiled program: the transformation
is wrapped in ``optax.inject_hyperparams``, so ``state.hyperparams['learning_rate']`` is a
traced value. :func:`learning_rate` reads it and :func:`with_learning_rate` replaces it, so a
``jax.vmap`` over a grid of rates trains the grid with one compiled step and ``jax.grad`` of an
unrolled run reaches the rate. The decay steps (``boundaries``, ``decay_factor``,
``held_steps``) stay part of the program.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

RATE = "learning_rate"  # the hyper-parameter's name in optax.inject_hyperparams' state


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam whose rate is ``lr`` (the default of the state's traced base rate), multiplied by
    ``decay_factor`` at each step of ``boundaries``, and 0 for the first ``held_steps`` steps
    (the parameters are kept while the moments accumulate)."""

    lr: float
    boundaries: tuple[int, ...]
    decay_factor: float
    held_steps: int = 0

    def schedule(self, base_rate: ArrayLike):
        """``count -> rate``: ``base_rate`` decayed at the boundaries, 0 while held."""
        decayed = optax.piecewise_constant_schedule(
            base_rate, {b: self.decay_factor for b in self.boundaries}
        )
        if self.held_steps <= 0:
            return decayed
        held = self.held_steps

        def rate(count):
            return jnp.where(count < held, 0.0, decayed(count))

        return rate

    def _adam(self, learning_rate) -> optax.GradientTransformation:
        # eps_root keeps sqrt(v) differentiable where v == 0 (hyper-gradients through training
        # were NaN with 0); at 1e-30 it is below float32 resolution of any v above ~1e-23, so
        # the updates themselves do not change.
        return optax.adam(self.schedule(learning_rate), eps_root=1e-30)

    def transformation(self) -> optax.GradientTransformation:
        """The ``optax`` transformation these numbers describe, its base rate in its state."""
        return optax.inject_hyperparams(self._adam)(learning_rate=self.lr)

    def init(self, params):
        return self.transformation().init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self.transformation().update(updates, state, params, **extra_args)


def learning_rate(opt_state) -> ArrayLike:
    """The base learning rate held in an :class:`Adam` state."""
    return opt_state.hyperparams[RATE]


def with_learning_rate(opt_state, rate: ArrayLike):
    """``opt_state`` with its base learning rate replaced by ``rate`` (a number or a traced
    scalar; stored as float32 unless ``rate`` is already an array of another float type)."""
    old = opt_state.hyperparams[RATE]
    rate = jnp.asarray(rate, dtype=getattr(rate, "dtype", old.dtype))
    if rate.shape != ():
        raise ValueError(f"a learning rate is a scalar, got shape {rate.shape}")
    return opt_state._replace(hyperparams={**opt_state.hyperparams, RATE: rate})
