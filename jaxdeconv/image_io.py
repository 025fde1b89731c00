"""Host-side image reading and writing (Pillow + NumPy); nothing here is traced.

Images come in as float32 ``[H, W, C]`` in [0, 1] (C = 1 for grey, 3 for colour; an alpha
channel is dropped). 8- and 16-bit files are scaled by their own range and EXIF orientation is
applied. Every write goes to a temporary file in the target folder and is then renamed, so a
crash never leaves a half-written output, and an existing input is never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageReadError(ValueError):
    """An input file could not be read as an image; the message names the file."""


def read_image(path: str) -> np.ndarray:
    """Reads ``path`` as float32 ``[H, W, C]`` in [0, 1] (C is 1 or 3)."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: empty image")
    return arr


def _to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float64) / 65535.0
    elif mode == "I":
        data = np.asarray(img, dtype=np.float64)
        arr = data / (65535.0 if data.max() > 255 else 255.0)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
    elif mode in ("L", "1", "P", "LA", "PA"):
        arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3] -> [H, W, 1]`` with Y = 0.299 R + 0.587 G + 0.114 B; grey passes through."""
    if image.shape[-1] == 1:
        return image
    weights = np.asarray([0.299, 0.587, 0.114], image.dtype)
    return (image[..., :3] @ weights)[..., None]


def atomic_write(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(image, np.float64), 0, 1) * 255).astype(np.uint8)


def write_image(path: str, image: np.ndarray) -> None:
    """Writes ``[H, W]`` or ``[H, W, C]`` in [0, 1] as an 8-bit image (format from the suffix)."""
    arr = to_uint8(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp))


def write_kernel_png(path: str, kernel: np.ndarray, scale: int = 8) -> None:
    """Writes a kernel scaled so its maximum is white, enlarged ``scale`` times for viewing."""
    k = np.asarray(kernel, np.float64)
    k = k / max(k.max(), 1e-12)
    k = np.kron(k, np.ones((scale, scale)))
    write_image(path, k)


def write_npy(path: str, array: np.ndarray) -> None:
    def save(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array))

    atomic_write(path, save)


def write_json(path: str, data: Any) -> None:
    def save(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")

    atomic_write(path, save)


def write_text(path: str, text: str) -> None:
    def save(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, save)
