"""A coordinate (implicit) kernel generator: a SIREN over the kernel grid's coordinates.

The kernel is ``softmax(f(u))`` over the taps of the grid, where ``u`` in ``[-1, 1]^2`` are the
taps' coordinates (the grid spans the kernel's support, whatever its number of taps) and ``f``
a small multilayer perceptron with sine activations (Sitzmann et al.'s SIREN, the kernel
network of Deblur-INR). The parameters do not depend on the grid: the same weights give the
kernel on a 13-tap grid and on a 27-tap grid, so the estimate carries from a coarse scale to a
finer one (``jaxdeconv.run.progressive``). The fixed input ``zk`` only gives the grid's side
(``zk.shape[0]``); its values are not used.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdeconv import config as config_lib
from jaxdeconv.core import plugins
from jaxdeconv.core.networks import dropout


def _uniform(bound: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def grid_coordinates(k: int) -> jax.Array:
    """``[k * k, 2]`` coordinates of a ``k x k`` grid in ``[-1, 1]`` (row, column)."""
    u = jnp.linspace(-1.0, 1.0, k) if k > 1 else jnp.zeros((1,))
    rows, cols = jnp.meshgrid(u, u, indexing="ij")
    return jnp.stack([rows.reshape(-1), cols.reshape(-1)], axis=-1)


class KernelCoord(nn.Module):
    """``zk [K, K, *] -> kernel [K, K]``: a SIREN of ``layers`` hidden layers of ``hidden``
    units (first-layer frequency ``omega``), a linear head and a softmax over the taps.

    With ``deterministic=False``, dropout (rate ``dropout_rate``) on the hidden layers."""

    hidden: int = 64
    layers: int = 3
    omega: float = 30.0

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        noise_std: jax.Array | float = 0.0,
        dropout_rate: jax.Array | float = 0.0,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        k = z.shape[0]
        h = grid_coordinates(k).astype(z.dtype)
        # SIREN's initialisation: the first layer uniform in +-1/fan_in, the others in
        # +-sqrt(6/fan_in)/omega, so every layer's pre-activations stay spread over a few periods.
        h = jnp.sin(self.omega * nn.Dense(self.hidden, kernel_init=_uniform(0.5), name="in")(h))
        bound = (6.0 / self.hidden) ** 0.5 / self.omega
        for i in range(self.layers):
            h = jnp.sin(
                self.omega * nn.Dense(self.hidden, kernel_init=_uniform(bound), name=f"h{i}")(h)
            )
            if not deterministic:
                h = dropout(h, jnp.asarray(dropout_rate, h.dtype), self.make_rng("dropout"))
        logits = nn.Dense(1, kernel_init=_uniform(bound), name="head")(h)[:, 0]
        return jax.nn.softmax(logits).reshape(k, k)


# Listed in plugins.BUILTIN_MODULES: looking up "coord" imports this module.
@plugins.register_kernel_net("coord", resolution_free=True)
def build(config: ml_collections.ConfigDict, kernel_size: int):
    net = config_lib.with_defaults(config.kernel_net, "kernel_net")  # a partial one too
    module = KernelCoord(
        hidden=int(net.coord_hidden), layers=int(net.coord_layers), omega=float(net.coord_omega)
    )
    return module, (kernel_size, kernel_size, 1)
