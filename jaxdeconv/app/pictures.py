"""Pictures to look at (host-side, Pillow + NumPy): one image's comparison and a run's sheet.

``comparison(blurry, deblurred, kernel, true_kernel=None)`` puts the blurry input, the
deblurred result and the estimated kernel (and the true one, where known) side by side, each
under a one-line label, as an 8-bit RGB array; ``overview(pictures, names)`` tiles several
comparisons into one sheet. Kernels are shown enlarged with nearest-neighbour sampling,
scaled so that their largest tap is white.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_LABEL_HEIGHT = 14
_GAP = 4


def _rgb8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return np.round(np.clip(a[..., :3], 0.0, 1.0) * 255).astype(np.uint8)


def _kernel_panel(kernel: np.ndarray, side: int) -> np.ndarray:
    """``kernel [K, K]`` scaled to white at its maximum, enlarged to at most ``side`` px."""
    k = np.asarray(kernel, np.float64)
    k = k / max(float(k.max()), 1e-12)
    zoom = max(1, side // k.shape[0])
    return _rgb8(np.kron(k, np.ones((zoom, zoom))))


def _labelled(panel: np.ndarray, label: str, height: int) -> np.ndarray:
    """``panel`` on a black column of at least ``height`` px (top-aligned) under ``label``."""
    h, w = panel.shape[:2]
    canvas = Image.new("RGB", (w, max(h, height) + _LABEL_HEIGHT), (0, 0, 0))
    canvas.paste(Image.fromarray(panel), (0, _LABEL_HEIGHT))
    ImageDraw.Draw(canvas).text((2, 1), label, fill=(255, 255, 255), font=ImageFont.load_default())
    return np.asarray(canvas)


def _pad_to(panel: np.ndarray, height: int) -> np.ndarray:
    """``panel`` with black rows below it up to ``height``."""
    extra = height - panel.shape[0]
    return np.pad(panel, ((0, extra), (0, 0), (0, 0))) if extra > 0 else panel


def comparison(
    blurry: np.ndarray,
    deblurred: np.ndarray,
    kernel: np.ndarray,
    true_kernel: np.ndarray | None = None,
    *,
    max_side: int = 512,
) -> np.ndarray:
    """``blurry | deblurred | kernel (| true kernel)`` as ``[h, w, 3]`` uint8.

    The images (``[H, W(, C)]`` in [0, 1]) are shrunk so their longer side is at most
    ``max_side``; the kernels get a square panel of a third of the images' height (at least
    their own size)."""
    b, d = _rgb8(blurry), _rgb8(deblurred)
    scale = min(1.0, max_side / max(b.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(b.shape[1] * scale)), max(1, round(b.shape[0] * scale)))
        b = np.asarray(Image.fromarray(b).resize(size, Image.LANCZOS))
        d = np.asarray(Image.fromarray(d).resize(size, Image.LANCZOS))
    height = b.shape[0]
    # A third of the images' height, at least the kernel's own size and (where the images
    # are that tall) 72 px, wide enough for the panel's label.
    side = max(height // 3, np.asarray(kernel).shape[0], min(72, height))
    panels = [
        _labelled(b, "blurry", height),
        _labelled(d, "deblurred", height),
        _labelled(_kernel_panel(kernel, side), "kernel", height),
    ]
    if true_kernel is not None:
        panels.append(_labelled(_kernel_panel(true_kernel, side), "true kernel", height))
    height = max(p.shape[0] for p in panels) - _LABEL_HEIGHT
    panels = [_pad_to(p, height + _LABEL_HEIGHT) for p in panels]
    gap = np.zeros((height + _LABEL_HEIGHT, _GAP, 3), np.uint8)
    row = []
    for p in panels:
        row += [p, gap]
    return np.concatenate(row[:-1], axis=1)


def overview(pictures: Sequence[np.ndarray], names: Sequence[str], width: int = 1200) -> np.ndarray:
    """The ``pictures`` (``[h, w, 3]`` uint8 each) as rows of a sheet ``width`` px wide, each
    shrunk to fit and captioned with its name."""
    if not pictures:
        raise ValueError("no pictures for an overview")
    rows = []
    for picture, name in zip(pictures, names, strict=True):
        img = Image.fromarray(np.asarray(picture, np.uint8))
        if img.width > width:
            img = img.resize((width, max(1, round(img.height * width / img.width))), Image.LANCZOS)
        row = Image.new("RGB", (width, img.height + _LABEL_HEIGHT + _GAP), (32, 32, 32))
        row.paste(img, (0, _LABEL_HEIGHT))
        ImageDraw.Draw(row).text((2, 1), name, fill=(255, 255, 0), font=ImageFont.load_default())
        rows.append(np.asarray(row))
    return np.concatenate(rows, axis=0)
