"""Synthetic test scenes and camera-shake kernels (host-side NumPy, seeded).

Used for the tests, so nothing needs downloading. ``make_example`` follows the library's
forward model exactly: a sharp scene of ``[H + K - 1, W + K - 1]`` is cross-correlated ('valid')
with a random motion kernel and Gaussian noise is added.

The development suite (``suite``, ``make_case``) uses the same forward model on crops of the
shipped sharp photographs (Lai's 25 as luminance, Levin's 4) with camera-shake kernels from
``shake_kernel`` (9-75 px, tight or loose support; :mod:`jaxdeconv.classical.shake`), noise,
JPEG and low-texture crops. A case is a small spec; its images are made on demand,
deterministically from the spec. Every blur here is the operator of :mod:`jaxdeconv.core.blur`
(its NumPy implementation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io
from jaxdeconv.app.example import Example
from jaxdeconv.classical import multiscale
from jaxdeconv.classical.shake import SUPPORT_THRESHOLD, shake_kernel
from jaxdeconv.core import blur

__all__ = ["Example", "SUPPORT_THRESHOLD", "shake_kernel"]  # re-exported from lower layers


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A piecewise-smooth grey scene with edges, corners and some texture, ``[H, W]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = 0.35 + 0.3 * (xx / max(width - 1, 1)) * (0.5 + 0.5 * yy / max(height - 1, 1))
    scale = min(height, width)
    for _ in range(8 + scale // 8):
        kind = rng.integers(3)
        value = rng.uniform(0.05, 0.95)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        size = rng.uniform(0.08, 0.35) * scale
        if kind == 0:  # axis-aligned rectangle
            mask = (np.abs(yy - cy) < size / 2) & (np.abs(xx - cx) < size * rng.uniform(0.3, 1))
        elif kind == 1:  # disk
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 2) ** 2
        else:  # rotated bar
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            mask = (np.abs(u) < size / 2) & (np.abs(v) < max(1.5, size / 8))
        img = np.where(mask, value, img)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * 0.11 + yy * 0.07))
    patch = (yy > 0.6 * height) & (xx < 0.4 * width)
    img = np.where(patch, 0.25 + 0.5 * stripes, img)
    img = blur.gaussian_smooth_numpy(img, 0.6)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def motion_kernel(size: int, seed: int = 0, length: float | None = None) -> np.ndarray:
    """A random camera-shake trajectory splatted on a ``[size, size]`` grid, summing to one.

    A random walk with momentum is drawn, scaled to fit the grid, centred on its mass,
    rasterised with bilinear splats and lightly smoothed.
    """
    config_lib.check_kernel_size(size, allow_auto=False, where="kernel size")
    if size == 1:
        return np.ones((1, 1), np.float32)
    rng = np.random.default_rng(seed)
    n = 200
    velocity = rng.normal(size=2)
    points = np.zeros((n, 2))
    for i in range(1, n):
        velocity = 0.9 * velocity + 0.45 * rng.normal(size=2)
        points[i] = points[i - 1] + velocity
    points -= points.mean(axis=0)
    extent = np.abs(points).max()
    length = (size - 1) / 2 * 0.85 if length is None else length
    points *= length / max(extent, 1e-6)
    points += (size - 1) / 2
    k = np.zeros((size, size))
    for py, px in points:
        y0, x0 = int(np.floor(py)), int(np.floor(px))
        fy, fx = py - y0, px - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    k[y0 + dy, x0 + dx] += wy * wx
    k = blur.gaussian_smooth_numpy(k, 0.5) if size >= 7 else k
    return (k / k.sum()).astype(np.float32)


def correlate_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """NumPy 'valid' cross-correlation ``[Hb, Wb] x [K, K] -> [Hb-K+1, Wb-K+1]`` (float64):
    :func:`jaxdeconv.core.blur.valid_correlate_numpy`, direct."""
    return blur.valid_correlate_numpy(x, kernel)


def make_example(
    height: int = 128,
    width: int = 128,
    kernel_size: int = 15,
    noise: float = 0.005,
    seed: int = 0,
    kernel_length: float | None = None,
) -> Example:
    """A blurry synthetic scene made with the library's forward model.

    ``kernel_length``: half-extent of the shake in pixels (default: 85% of the kernel radius).
    """
    k = motion_kernel(kernel_size, seed=seed + 1, length=kernel_length)
    big = scene(height + kernel_size - 1, width + kernel_size - 1, seed=seed)
    rng = np.random.default_rng(seed + 2)
    blurry = correlate_valid(big, k) + noise * rng.normal(size=(height, width))
    m = (kernel_size - 1) // 2
    sharp = big[m : m + height, m : m + width]
    return Example(
        blurry=np.clip(blurry, 0, 1).astype(np.float32)[..., None],
        sharp=sharp[..., None],
        kernel=k,
        sharp_big=big[..., None],
    )


# ----------------------------------------------------------------------------------------------
# Camera-shake kernels with a controlled support, and the development suite built on them.


# Sharp sources of the suite: the shipped Lai (RGB, used as luminance) and Levin (grey) images,
# ``name: (height, width)``; tests check the table against the files when the data is present.
SOURCES: dict[str, tuple[int, int]] = {
    "lai/manmade_01": (680, 1024),
    "lai/manmade_02": (683, 1024),
    "lai/manmade_03": (648, 1012),
    "lai/manmade_04": (764, 1024),
    "lai/manmade_05": (680, 1024),
    "lai/natural_01": (701, 1024),
    "lai/natural_02": (684, 1024),
    "lai/natural_03": (605, 1024),
    "lai/natural_04": (683, 1024),
    "lai/natural_05": (768, 1024),
    "lai/people_01": (768, 1024),
    "lai/people_02": (683, 1024),
    "lai/people_03": (1024, 752),
    "lai/people_04": (1024, 768),
    "lai/people_05": (937, 1024),
    "lai/saturated_01": (663, 1008),
    "lai/saturated_02": (682, 1024),
    "lai/saturated_03": (368, 560),
    "lai/saturated_04": (809, 941),
    "lai/saturated_05": (678, 1024),
    "lai/text_01": (518, 630),
    "lai/text_02": (380, 536),
    "lai/text_03": (442, 612),
    "lai/text_04": (520, 558),
    "lai/text_05": (351, 502),
    "levin/im1": (255, 255),
    "levin/im2": (255, 255),
    "levin/im3": (255, 255),
    "levin/im4": (255, 255),
}

# Buckets of the given kernel size K (the window the estimator is told), and of the image size
# (the longer side of the blurry image; 'full' is a whole Lai photo, about 950-1020 px).
KERNEL_BUCKETS = {"k09-19": (9, 19), "k21-35": (21, 35), "k37-55": (37, 55), "k57-75": (57, 75)}
SIZE_BUCKETS = ("128", "256", "512", "full")
NOISE_LEVELS = (0.0, 0.01, 0.02)

# The development suite: one row per case, (kernel bucket, support, noise, jpeg, smooth, size).
# The 4 x 2 x 3 kernel bucket x support x noise grid, each cell once; each kernel bucket sees
# three or four image sizes (no 128 px image with a 57-75 px kernel: the blur would cover more
# than half of it); 7 JPEG cases and 4 smooth (low-texture) ones spread over the grid.
_DEV = (
    ("k09-19", "tight", 0.00, False, False, "128"),
    ("k09-19", "tight", 0.01, True, False, "256"),
    ("k09-19", "tight", 0.02, False, False, "512"),
    ("k09-19", "loose", 0.00, False, True, "256"),
    ("k09-19", "loose", 0.01, False, False, "full"),
    ("k09-19", "loose", 0.02, True, False, "128"),
    ("k21-35", "tight", 0.00, False, False, "256"),
    ("k21-35", "tight", 0.01, False, True, "128"),
    ("k21-35", "tight", 0.02, True, False, "full"),
    ("k21-35", "loose", 0.00, True, False, "512"),
    ("k21-35", "loose", 0.01, False, False, "512"),
    ("k21-35", "loose", 0.02, False, False, "128"),
    ("k37-55", "tight", 0.00, False, False, "512"),
    ("k37-55", "tight", 0.01, True, False, "full"),
    ("k37-55", "tight", 0.02, False, True, "256"),
    ("k37-55", "loose", 0.00, False, False, "full"),
    ("k37-55", "loose", 0.01, False, False, "128"),
    ("k37-55", "loose", 0.02, True, False, "256"),
    ("k57-75", "tight", 0.00, True, False, "full"),
    ("k57-75", "tight", 0.01, False, False, "512"),
    ("k57-75", "tight", 0.02, False, False, "256"),
    ("k57-75", "loose", 0.00, False, False, "256"),
    ("k57-75", "loose", 0.01, False, True, "256"),
    ("k57-75", "loose", 0.02, False, False, "512"),
)
# The quick suite: 8 of the dev cases (same names and images, so results carry over), one per
# kernel bucket x support, with every noise level, two JPEG, two smooth and every image size.
_QUICK = (2, 3, 7, 9, 13, 16, 20, 21)
SUITES = ("dev", "quick")


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """Everything that defines one synthetic case; :func:`make_case` makes it (cheaply).

    Attributes:
      name: unique, e.g. ``'07_k23t_n1_smooth_128'``.
      seed: seeds the trajectory, the crop position and the noise.
      kernel_size: K, the side of the true kernel's window and the size the estimator is told.
      blur_size: side of the blur's bounding box (``== K`` for a tight support).
      support: ``'tight'`` (the blur touches the window's border) or ``'loose'``.
      noise: Gaussian noise std as a fraction of the [0, 1] range.
      jpeg_quality: Pillow JPEG quality of the blurry image, 0 for none (8-bit PNG-like).
      smooth: a low-texture crop rather than a random one.
      height, width: the blurry (and sharp) image's size.
      source: sharp source, a key of :data:`SOURCES`.
      kernel_bucket, size_bucket: the bucket labels of K and of the image size.
    """

    name: str
    seed: int
    kernel_size: int
    blur_size: int
    support: str
    noise: float
    jpeg_quality: int
    smooth: bool
    height: int
    width: int
    source: str
    kernel_bucket: str
    size_bucket: str

    def tags(self) -> dict:
        """The bucket fields, as reported per image by the benchmark."""
        return {
            "kernel_bucket": self.kernel_bucket,
            "support": self.support,
            "noise": self.noise,
            "jpeg": self.jpeg_quality > 0,
            "smooth": self.smooth,
            "size_bucket": self.size_bucket,
            "blur_size": self.blur_size,
            "image_size": f"{self.height}x{self.width}",
            "source": self.source,
        }


def _image_size(bucket: str, source_hw: tuple[int, int], k: int) -> tuple[int, int]:
    if bucket == "full":  # the whole photo, cropped by K - 1 for the valid blur
        return source_hw[0] - k + 1, source_hw[1] - k + 1
    side = int(bucket)
    short = {128: 128, 256: 256, 512: 384}[side]
    return (side, short) if source_hw[0] > source_hw[1] else (short, side)


def _fits(source_hw: tuple[int, int], hw: tuple[int, int], k: int) -> bool:
    return source_hw[0] >= hw[0] + k - 1 and source_hw[1] >= hw[1] + k - 1


def suite(seed: int = 0, size: str = "dev") -> list[CaseSpec]:
    """The fixed list of synthetic cases: ``'dev'`` (24, see ``_DEV``) or ``'quick'`` (8 of them).

    Deterministic in ``seed``: the exact K in its bucket (odd), the loose support's margin (K is
    30-100% larger than the blur), the JPEG quality (75-90) and the sharp source (among those
    large enough; 'full' images come from Lai photos at least 1000 px wide, the 128 px cases
    with an even index from Levin's four) are drawn per case.
    No image is read: the specs are cheap, :func:`make_case` builds a case when needed.
    """
    if size not in SUITES:
        raise ValueError(f"unknown suite {size!r}; choose one of {SUITES}")
    specs = []
    for i, (kb, support, noise, jpeg, smooth, sb) in enumerate(_DEV):
        rng = np.random.default_rng([seed, i])
        lo, hi = KERNEL_BUCKETS[kb]
        k = int(rng.choice(np.arange(lo, hi + 1, 2)))
        blur = k if support == "tight" else max(3, multiscale.odd(k / rng.uniform(1.3, 2.0)))
        quality = int(rng.integers(75, 91)) if jpeg else 0
        names = sorted(
            n
            for n, hw in SOURCES.items()
            if (sb != "full" or max(hw) >= 1000) and _fits(hw, _image_size(sb, hw, k), k)
        )
        if sb == "128" and i % 2 == 0:  # so that Levin's scenes are used too
            names = [n for n in names if n.startswith("levin/")]
        if smooth:
            names = [n for n in names if n in SMOOTH_SOURCES]
        source = names[int(rng.integers(len(names)))]
        h, w = _image_size(sb, SOURCES[source], k)
        name = (
            f"{i:02d}_k{k:02d}{support[0]}_n{round(100 * noise)}"
            f"{'_jpeg' if jpeg else ''}{'_smooth' if smooth else ''}_{sb}"
        )
        specs.append(
            CaseSpec(
                name=name,
                seed=int(rng.integers(2**31)),
                kernel_size=k,
                blur_size=blur,
                support=support,
                noise=noise,
                jpeg_quality=quality,
                smooth=smooth,
                height=h,
                width=w,
                source=source,
                kernel_bucket=kb,
                size_bucket=sb,
            )
        )
    return [specs[i] for i in _QUICK] if size == "quick" else specs


# Bump when a change to the generator changes the cases a spec makes (the benchmark then
# re-runs the synthetic cases it finished before instead of reusing their results).
GENERATOR_VERSION = 1


def spec_key(spec: CaseSpec) -> str:
    """A short hash of a spec and :data:`GENERATOR_VERSION`: equal keys, equal cases."""
    text = json.dumps([GENERATOR_VERSION, dataclasses.asdict(spec)], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def source_path(root: str, source: str) -> str:
    """The file of a sharp source ``'lai/NAME'`` / ``'levin/NAME'``: ``root/lai/sharp/NAME.png``."""
    folder, name = source.split("/")
    return os.path.join(os.fspath(root), folder, "sharp", f"{name}.png")


def read_source(root: str, source: str) -> np.ndarray:
    """A sharp source ``'lai/NAME'`` / ``'levin/NAME'`` under ``root`` as luminance ``[H, W]``
    float64 in [0, 1] (``Y = 0.299 R + 0.587 G + 0.114 B``)."""
    path = source_path(root, source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"synthetic source {source!r} not found: missing {path}")
    return image_io.luminance(image_io.read_image(path))[..., 0].astype(np.float64)


def _texture(img: np.ndarray) -> np.ndarray:
    """Summed-area table of the gradient magnitude (for window texture scores)."""
    g = np.zeros_like(img)
    g[:-1, :-1] = np.hypot(np.diff(img, axis=0)[:, :-1], np.diff(img, axis=1)[:-1])
    return np.pad(np.cumsum(np.cumsum(g, 0), 1), ((1, 0), (1, 0)))


# Mean gradient magnitude of a window (on [0, 1] luminance): a smooth case takes the window
# closest to SMOOTH_TEXTURE (low texture, yet not a blank patch with nothing to estimate a kernel
# from); the others a random window with at least TEXTURED_MIN (a random crop of a photo is
# often sky or a wall), or of the more textured half where none has.
SMOOTH_TEXTURE = 0.015
TEXTURED_MIN = 0.03
# Sources where such smooth windows are common, at 128 and 256 px (measured on a 16 px grid of
# windows: 3-54% of them lie within 0.005 of SMOOTH_TEXTURE; most other photos have none).
SMOOTH_SOURCES = ("lai/natural_02", "lai/people_02", "lai/people_03", "lai/people_04")


def _crop_corner(
    rng: np.random.Generator, img: np.ndarray, hb: int, wb: int, smooth: bool
) -> tuple[int, int]:
    """Top-left corner of an ``hb x wb`` window of ``img``, among 256 random ones."""
    tops = rng.integers(0, img.shape[0] - hb + 1, size=256)
    lefts = rng.integers(0, img.shape[1] - wb + 1, size=256)
    c = _texture(img)
    score = c[tops + hb, lefts + wb] - c[tops, lefts + wb] - c[tops + hb, lefts] + c[tops, lefts]
    score = score / (hb * wb)
    if smooth:
        i = int(np.argmin(np.abs(score - SMOOTH_TEXTURE)))
    else:
        ok = np.nonzero(score >= min(TEXTURED_MIN, float(np.median(score))))[0]
        i = int(ok[rng.integers(len(ok))])
    return int(tops[i]), int(lefts[i])


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(
        buf, format="JPEG", quality=quality
    )
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"), np.float64) / 255.0


class Case(NamedTuple):
    blurry: np.ndarray  # [H, W, 1] float32, 8-bit values (JPEG-decoded when jpeg_quality > 0)
    sharp: np.ndarray  # [H, W, 1] float32, the centre of the crop that made ``blurry``
    kernel: np.ndarray  # [K, K] float32 correlation kernel
    spec: CaseSpec
    box: tuple[int, int, int, int]  # (top, left, H + K - 1, W + K - 1) of the crop in the source


def make_case(spec: CaseSpec, root: str) -> Case:
    """Builds a case from its spec and the sharp sources under ``root`` (holding ``lai/`` and
    ``levin/``), with the library's forward model.

    A ``(H + K - 1) x (W + K - 1)`` crop of the source's luminance is cross-correlated ('valid')
    with the kernel, so the blurry image has no border artefacts; the sharp image is the crop's
    centre. Then Gaussian noise (std ``spec.noise``), clipping to [0, 1], rounding to 8 bits and,
    when ``spec.jpeg_quality`` is set, JPEG compression.
    """
    k = shake_kernel(spec.kernel_size, spec.blur_size, seed=spec.seed)
    img = read_source(root, spec.source)
    big_h, big_w = spec.height + spec.kernel_size - 1, spec.width + spec.kernel_size - 1
    if img.shape[0] < big_h or img.shape[1] < big_w:
        raise ValueError(
            f"case {spec.name}: source {spec.source} {img.shape} is smaller than the "
            f"{big_h}x{big_w} crop it needs"
        )
    rng = np.random.default_rng(spec.seed)
    top, left = _crop_corner(rng, img, big_h, big_w, spec.smooth)
    big = img[top : top + big_h, left : left + big_w]
    blurry = blur.valid_correlate_numpy(big, k.astype(np.float64), "fft")
    blurry = blurry + spec.noise * rng.normal(size=blurry.shape)
    blurry = np.round(np.clip(blurry, 0.0, 1.0) * 255.0) / 255.0
    if spec.jpeg_quality:
        blurry = _jpeg(blurry, spec.jpeg_quality)
    m = (spec.kernel_size - 1) // 2
    sharp = big[m : m + spec.height, m : m + spec.width]
    return Case(
        blurry=blurry.astype(np.float32)[..., None],
        sharp=sharp.astype(np.float32)[..., None],
        kernel=k,
        spec=spec,
        box=(top, left, big_h, big_w),
    )
