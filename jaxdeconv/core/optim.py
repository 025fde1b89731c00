"""The optimiser of both networks as a value: Adam with a step-decayed learning rate.

``Adam`` is an ``optax`` transformation (``init(params)``, ``update(grads, state, params)``)
described by its numbers alone, so two run specs built from equal configs compare equal and
share one compiled step (``jaxdeconv.run.runner`` keys its cache by value).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam whose rate is ``lr``, multiplied by ``decay_factor`` at each step of
    ``boundaries``, and 0 for the first ``held_steps`` steps (the parameters are kept while
    the moments accumulate)."""

    lr: float
    boundaries: tuple[int, ...]
    decay_factor: float
    held_steps: int = 0

    def transformation(self) -> optax.GradientTransformation:
        """The ``optax`` transformation these numbers describe."""
        lr_schedule = optax.piecewise_constant_schedule(
            self.lr, {b: self.decay_factor for b in self.boundaries}
        )
        if self.held_steps > 0:
            decayed, held = lr_schedule, self.held_steps

            def lr_schedule(step):
                return jnp.where(step < held, 0.0, decayed(step))

        # eps_root keeps sqrt(v) differentiable where v == 0 (hyper-gradients through training
        # were NaN with 0); at 1e-30 it is below float32 resolution of any v above ~1e-23, so
        # the updates themselves do not change.
        return optax.adam(lr_schedule, eps_root=1e-30)

    def init(self, params):
        return self.transformation().init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self.transformation().update(updates, state, params, **extra_args)
