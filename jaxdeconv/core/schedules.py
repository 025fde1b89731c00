"""Step schedules for the learning rates, the dropout rate and the input-noise level.

A schedule is a pure function ``step -> value`` that works on traced integers, so the
dropout rate and the noise level can change during training without recompiling the step.
Switch points are given as fractions of the run length (``0.3`` of 5000 steps is step 1500,
the paper's dropout switch), so shortening a run keeps the shape of its schedules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jax.typing import ArrayLike

Schedule = Callable[[ArrayLike], jnp.ndarray]


@dataclasses.dataclass(frozen=True)
class PiecewiseConstant:
    """``init`` before ``boundaries[0]``, then ``values[i]`` from step ``boundaries[i]`` on.

    A value (two schedules with the same numbers compare and hash equal), so run specs built
    from equal configs are equal and share compiled functions (``jaxdeconv.run.runner``).
    """

    init: float
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    @property
    def levels(self) -> tuple[float, ...]:
        """``(init, *values)``: the level before the first boundary, then after each one."""
        return (self.init, *self.values)

    def __call__(self, step: ArrayLike) -> jnp.ndarray:
        return self.at(step, jnp.asarray(self.levels, dtype=jnp.float32))

    def at(self, step: ArrayLike, levels: ArrayLike) -> jnp.ndarray:
        """The schedule's value at ``step`` with its levels replaced by ``levels``
        ``[1 + len(boundaries)]`` (traced values: a vmap or grad over them shares one
        program; the boundaries stay part of the program)."""
        table = jnp.asarray(levels)
        bounds = jnp.asarray(list(self.boundaries), dtype=jnp.int32)
        index = jnp.sum(jnp.asarray(step) >= bounds) if len(self.boundaries) else 0
        return table[index]


def piecewise_constant(init: float, boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """``init`` before ``boundaries[0]``, then ``values[i]`` from step ``boundaries[i]`` on.

    Args:
      init: value at step 0.
      boundaries: increasing step indices (absolute) where the value changes.
      values: the value taken at each boundary; same length as ``boundaries``.
    """
    if len(boundaries) != len(values):
        raise ValueError(
            f"schedule needs one value per boundary, got {len(boundaries)} boundaries "
            f"and {len(values)} values"
        )
    if list(boundaries) != sorted(boundaries):
        raise ValueError(f"schedule boundaries must increase, got {list(boundaries)}")
    return PiecewiseConstant(init, tuple(boundaries), tuple(values))


def fraction_boundaries(fractions: Sequence[float], num_steps: int) -> tuple[int, ...]:
    """Converts switch points given as fractions of the run to step indices."""
    return tuple(int(round(f * num_steps)) for f in fractions)


def from_config(cfg, num_steps: int, init: float | None = None) -> Schedule:
    """Builds a schedule from a config block with ``init``, ``boundaries``, ``levels``.

    ``boundaries`` are fractions of ``num_steps``; ``init`` overrides ``cfg.init``.
    """
    start = cfg.init if init is None else init
    return piecewise_constant(
        float(start), fraction_boundaries(cfg.boundaries, num_steps), tuple(cfg.levels)
    )
