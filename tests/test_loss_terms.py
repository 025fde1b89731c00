"""The built-in extra loss terms, by hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdeconv.core import plugins


def test_kernel_centre_is_the_squared_offset_of_the_mass():
    term = plugins.loss_term("kernel_centre")
    images, key, step = jnp.zeros((1, 8, 8, 1)), jax.random.key(0), jnp.int32(0)
    centred = jnp.zeros((5, 5)).at[2, 2].set(1.0)
    value, metrics = term(images, centred, key, step)
    assert float(value) == 0.0
    # Half the mass two rows down and one column left of the centre, half at the centre.
    shifted = jnp.zeros((5, 5)).at[2, 2].set(0.5).at[4, 1].set(0.5)
    value, metrics = term(images, shifted, key, step)
    np.testing.assert_allclose(float(metrics["dy"]), 1.0)
    np.testing.assert_allclose(float(metrics["dx"]), -0.5)
    np.testing.assert_allclose(float(value), 1.0 + 0.25)
    # One kernel per draw: the mean over the draws.
    value, _ = term(images, jnp.stack([centred, shifted]), key, step)
    np.testing.assert_allclose(float(value), 1.25 / 2)
