"""The two generative networks, written with ``flax.linen`` for one image at a time.

* ``ImageUNet`` (Gx): an encoder-decoder with skip connections that maps the fixed input
  ``zx`` ``[H + K - 1, W + K - 1, Cz]`` to an image ``[H + K - 1, W + K - 1, C]`` in (0, 1).
  It becomes a sampler through two sources of randomness, both switched off with
  ``deterministic=True``: Gaussian noise added to its input (std ``noise_std``, rng stream
  ``'noise'``) and dropout before every up-sampling (rate ``dropout_rate``, rng stream
  ``'dropout'``). Both rates are ordinary (traceable) arguments, so schedules never recompile.
* ``KernelUNet`` (Gk): the same kind of network, deterministic, from ``zk`` ``[K, K, Cz]`` to
  ``K * K`` logits and a softmax over all of them: a kernel ``[K, K]`` that is non-negative and
  sums to one by construction.
* ``KernelMLP``: the fully connected kernel net of Ren et al. (SelfDeblur): a flat input,
  one hidden layer with ReLU6, a softmax over ``K * K`` outputs.

Layer choices (the paper gives no table; SelfDeblur's image net is the model): per level down,
3x3 conv stride 2 -> norm -> LeakyReLU(0.1) -> 3x3 conv -> norm -> LeakyReLU; a 1x1 skip branch;
bilinear up-sampling to the skip's exact shape (so odd sizes work); after concatenation
norm -> 3x3 conv -> norm -> act, then (``decoder_1x1``, SelfDeblur's default) 1x1 conv -> norm
-> act; reflection padding. A level whose input has a side under 3 px keeps its size (stride
1) instead of shrinking to 1 px, where instance norm would erase its input: so the 4-level
kernel net carries information at every level for K <= 15 too (13 -> 7 -> 4 -> 2 -> 2).
The norm is an instance norm: SelfDeblur trains batch norm on a batch of one image, which
normalises over the spatial axes exactly like this, but instance norm keeps no running
statistics, so ``apply`` stays a pure function with identical behaviour in training and inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdeconv.core import plugins

LEAKY_SLOPE = 0.1


def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Pads the spatial axes of ``[B, H, W, C]``; reflection, or edge where a side is 1 px."""
    if pad == 0:
        return x
    mode = "reflect" if min(x.shape[1], x.shape[2]) > pad else "edge"
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)


def dropout(x: jax.Array, rate: jax.Array, key: jax.Array) -> jax.Array:
    """Inverted dropout with a traceable rate in [0, 1)."""
    keep = 1.0 - rate
    mask = jax.random.bernoulli(key, keep, x.shape)
    return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


class _ConvNormAct(nn.Module):
    features: int
    kernel_size: int = 3
    stride: int = 1
    act: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _reflect_pad(x, self.kernel_size // 2)
        x = nn.Conv(
            self.features,
            (self.kernel_size, self.kernel_size),
            strides=(self.stride, self.stride),
            padding="VALID",
        )(x)
        x = nn.InstanceNorm()(x)
        return nn.leaky_relu(x, LEAKY_SLOPE) if self.act else x


class NonLocal(nn.Module):
    """A non-local block of the dot-product kind (Wang et al., CVPR 2018) on ``[B, H, W, C]``:
    every position adds a mix of all positions' features, weighted by the dot product of two
    learned 1x1 embeddings (width ``C // 2``) and divided by the number of positions mixed. The
    keys and values come from a 2x2 max-pooled map (``subsample``; a map of a side under 2 px is
    not pooled): a quarter of the positions, the same reach. The mix enters through a 1x1 conv
    and a norm whose scale starts at zero, so a new block is the identity and training opens
    it. SelfDeblur's image net (the paper's code base) has one in each level from its third
    down (docs/fidelity.md, point 6)."""

    subsample: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, height, width, channels = x.shape
        inner = max(1, channels // 2)
        query = nn.Conv(inner, (1, 1), name="query")(x).reshape(batch, -1, inner)
        source = x
        if self.subsample and min(height, width) >= 2:
            source = nn.max_pool(x, (2, 2), strides=(2, 2))
        keys = nn.Conv(inner, (1, 1), name="key")(source).reshape(batch, -1, inner)
        values = nn.Conv(inner, (1, 1), name="value")(source).reshape(batch, -1, inner)
        weights = jnp.einsum("bqc,bkc->bqk", query, keys) / keys.shape[1]
        mixed = jnp.einsum("bqk,bkc->bqc", weights, values).reshape(batch, height, width, inner)
        mixed = nn.Conv(channels, (1, 1), name="out")(mixed)
        mixed = nn.InstanceNorm(scale_init=nn.initializers.zeros, name="out_norm")(mixed)
        return x + mixed


def _down_stride(height: int, width: int) -> int:
    """Stride of a level's down-sampling conv for an input of ``height x width``: 2, unless
    that would leave a 1-pixel side, where instance normalisation maps every input to the
    same output (the level would carry no information). Then 1: the level keeps its size."""
    return 2 if min(height, width) >= 3 else 1


class _UNetBody(nn.Module):
    """Recursive encoder-decoder on ``[B, H, W, C]``; returns features at the input size.

    ``decoder_1x1``: the 1x1 conv -> norm -> act after each decoder level's 3x3 conv.
    ``non_local_from``: a :class:`NonLocal` block between the two down convs of every level
    from this index on (0 is the first level; SelfDeblur: 2); ``None``: none.
    """

    channels: Sequence[int]
    skip_channels: Sequence[int]
    decoder_1x1: bool = True
    non_local_from: int | None = None

    @nn.compact
    def __call__(self, x, dropout_rate=None, deterministic: bool = True):
        return self._level(x, 0, dropout_rate, deterministic)

    def _level(self, h, i, dropout_rate, deterministic):
        features = self.channels[i]
        parts = []
        if self.skip_channels[i] > 0:
            parts.append(_ConvNormAct(self.skip_channels[i], kernel_size=1, name=f"skip{i}")(h))
        stride = _down_stride(h.shape[1], h.shape[2])
        d = _ConvNormAct(features, stride=stride, name=f"down{i}a")(h)
        if self.non_local_from is not None and i >= self.non_local_from:
            d = NonLocal(name=f"nonlocal{i}")(d)
        d = _ConvNormAct(features, name=f"down{i}b")(d)
        if i + 1 < len(self.channels):
            d = self._level(d, i + 1, dropout_rate, deterministic)
        if not deterministic and dropout_rate is not None:
            d = dropout(d, dropout_rate, self.make_rng("dropout"))
        d = jax.image.resize(d, d.shape[:1] + h.shape[1:3] + d.shape[3:], method="bilinear")
        parts.append(d)
        u = jnp.concatenate(parts, axis=-1)
        u = nn.InstanceNorm(name=f"up{i}norm")(u)
        u = _ConvNormAct(features, name=f"up{i}a")(u)
        if self.decoder_1x1:
            u = _ConvNormAct(features, kernel_size=1, name=f"up{i}b")(u)
        return u


def _input_noise(module: nn.Module, z: jax.Array, noise_std: jax.Array | float) -> jax.Array:
    """``z`` plus Gaussian noise of std ``noise_std`` from the module's ``'noise'`` stream."""
    return z + noise_std * jax.random.normal(module.make_rng("noise"), z.shape, z.dtype)


def _check_levels(channels, skip_channels):
    if len(channels) == 0 or len(channels) != len(skip_channels):
        raise ValueError(
            f"need one skip width per level: channels={tuple(channels)}, "
            f"skip_channels={tuple(skip_channels)}"
        )


class ImageUNet(nn.Module):
    """Gx: ``zx [Hb, Wb, Cz] -> image [Hb, Wb, out_channels]`` in (0, 1).

    Call with ``rngs={'noise': key1, 'dropout': key2}`` unless ``deterministic``.
    """

    out_channels: int = 1
    channels: Sequence[int] = (128,) * 6
    skip_channels: Sequence[int] = (16,) * 6
    decoder_1x1: bool = True
    non_local_from: int | None = None

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        noise_std: jax.Array | float = 0.0,
        dropout_rate: jax.Array | float = 0.0,
        *,
        deterministic: bool = False,
    ) -> jax.Array:
        _check_levels(self.channels, self.skip_channels)
        x = z[None]
        if not deterministic:
            x = _input_noise(self, x, noise_std)
        x = _UNetBody(
            self.channels, self.skip_channels, self.decoder_1x1, self.non_local_from, name="body"
        )(x, jnp.asarray(dropout_rate, x.dtype), deterministic)
        x = nn.Conv(self.out_channels, (1, 1), name="head")(x)
        return nn.sigmoid(x)[0]


class KernelUNet(nn.Module):
    """Gk: ``zk [K, K, Cz] -> kernel [K, K]``, non-negative, sums to one.

    Deterministic by default (the paper); with ``deterministic=False`` it gets the image net's
    two sources of randomness (for the paper's "randomise the kernel net" ablation).
    """

    channels: Sequence[int] = (64,) * 4
    skip_channels: Sequence[int] = (16,) * 4
    decoder_1x1: bool = True

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        noise_std: jax.Array | float = 0.0,
        dropout_rate: jax.Array | float = 0.0,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        _check_levels(self.channels, self.skip_channels)
        k = z.shape[0]
        z = z[None]
        if not deterministic:
            z = _input_noise(self, z, noise_std)
        x = _UNetBody(self.channels, self.skip_channels, self.decoder_1x1, name="body")(
            z, jnp.asarray(dropout_rate, z.dtype), deterministic
        )
        logits = nn.Conv(1, (1, 1), name="head")(x)[0, :, :, 0]
        return jax.nn.softmax(logits.reshape(-1)).reshape(k, k)


class KernelMLP(nn.Module):
    """Ren et al.'s fully connected kernel net: ``zk [D] -> kernel [K, K]``.

    With ``deterministic=False``: Gaussian noise on the input and dropout on the hidden layer.
    """

    kernel_size: int
    hidden: int = 1000

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        noise_std: jax.Array | float = 0.0,
        dropout_rate: jax.Array | float = 0.0,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        if not deterministic:
            z = _input_noise(self, z, noise_std)
        h = nn.relu6(nn.Dense(self.hidden, name="hidden")(z))
        if not deterministic:
            h = dropout(h, jnp.asarray(dropout_rate, h.dtype), self.make_rng("dropout"))
        logits = nn.Dense(self.kernel_size * self.kernel_size, name="out")(h)
        return jax.nn.softmax(logits).reshape(self.kernel_size, self.kernel_size)


def kernel_input_shape(net: nn.Module, kernel_size: int, input_channels: int) -> tuple:
    """Shape of the fixed input ``zk`` for a kernel net."""
    if isinstance(net, KernelMLP):
        return (input_channels,)
    return (kernel_size, kernel_size, input_channels)


# --- the built-in generators, registered by name (listed in plugins.BUILTIN_MODULES) ----------


@plugins.register_kernel_net("unet")
def _build_kernel_unet(config, kernel_size: int):
    net = config.kernel_net
    module = KernelUNet(
        channels=tuple(net.channels),
        skip_channels=tuple(net.skip_channels),
        decoder_1x1=bool(net.decoder_1x1),
    )
    return module, (kernel_size, kernel_size, net.input_channels)


@plugins.register_kernel_net("mlp")
def _build_kernel_mlp(config, kernel_size: int):
    net = config.kernel_net
    return KernelMLP(kernel_size=kernel_size, hidden=net.hidden), (net.input_channels,)


@plugins.register_image_net("unet")
def _build_image_unet(config, out_channels: int):
    net = config.image_net
    return ImageUNet(
        out_channels=out_channels,
        channels=tuple(net.channels),
        skip_channels=tuple(net.skip_channels),
        decoder_1x1=bool(net.decoder_1x1),
        non_local_from=None if net.get("non_local_from", -1) < 0 else int(net.non_local_from),
    )
