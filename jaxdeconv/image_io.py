"""Host-side image reading and writing (Pillow + NumPy); nothing here is traced.

Images come in as float32 ``[H, W, C]`` in [0, 1] (C = 1 for grey, 3 for colour; an alpha
channel is dropped; a palette image is colour unless its palette is grey). 8- and 16-bit files
are scaled by their own range and EXIF orientation is applied. Floating-point files are taken as
they are when their values lie in [0, 1], scaled by 1/255 when they clearly hold 0..255 data
(maximum 2 to 255; a note says so) and refused otherwise, as are negative, NaN and infinite
values: nothing is clipped silently. Every write goes to a temporary file in the target
folder and is then renamed, so a crash never leaves a half-written output; the file gets the
permissions of a normally created one (0666 less the umask).
"""

from __future__ import annotations

import errno
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
    return read_image_with_notes(path)[0]


def missing_reason(path: str) -> str:
    """Why ``path`` cannot be opened: a symbolic link loop, a dangling link or no such file."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return f"dangling symbolic link (to {os.readlink(path)})"
        return "no such file"
    return "exists"


def _require_file(path: str) -> None:
    """Raises ``ImageReadError`` naming ``path`` when it is missing or a folder."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: {missing_reason(path)}")
    if os.path.isdir(path):
        raise ImageReadError(f"{path}: is a folder, not an image")


def read_image_with_notes(path: str) -> tuple[np.ndarray, list[str]]:
    """Like ``read_image``; also returns notes on what was done to the values (e.g. a float
    file scaled from 0..255)."""
    _require_file(path)
    notes: list[str] = []
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_array(img, notes)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except ImageReadError as e:
        raise ImageReadError(f"{path}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: empty image")
    return arr, notes


def probe_shape(path: str) -> tuple[int, int]:
    """``(H, W)`` of the image ``read_image`` would return, from the file's header only (no
    decoding; EXIF orientation applied). Raises ``ImageReadError`` naming the file."""
    _require_file(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            try:  # a PNG may keep its EXIF after the pixels: a truncated one fails to decode
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            except (OSError, SyntaxError, ValueError):
                orientation = 1
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot read the image header ({e})") from None
    if h < 1 or w < 1:
        raise ImageReadError(f"{path}: empty image")
    # Orientations 5-8 are stored rotated by a quarter turn (ImageOps.exif_transpose).
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


_EXIF_ORIENTATION = 0x0112


def _scaled(data: np.ndarray, notes: list[str], kind: str) -> np.ndarray:
    """``data`` mapped to [0, 1] by the range it holds; refuses what cannot be mapped safely."""
    if not np.all(np.isfinite(data)):
        raise ImageReadError(
            f"{kind} image holds {int(np.sum(~np.isfinite(data)))} NaN or infinite value(s)"
        )
    lo, hi = float(data.min()), float(data.max())
    if lo < 0:
        raise ImageReadError(
            f"{kind} image has negative values (range {lo:g}..{hi:g}); give values in [0, 1]"
        )
    if hi <= 1.0:
        return data
    if 2.0 <= hi <= 255.0:  # clearly 8-bit-scaled data stored as floats
        notes.append(f"{kind} values {lo:g}..{hi:g} read as 0..255 and scaled to [0, 1]")
        return data / 255.0
    raise ImageReadError(
        f"{kind} image has values {lo:g}..{hi:g}: neither in [0, 1] nor clearly 0..255; "
        "rescale it to [0, 1]"
    )


def _to_array(img: Image.Image, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64) / 65535.0
    elif mode == "I":
        data = np.asarray(img, dtype=np.float64)
        if data.min() < 0 or data.max() > 65535:
            raise ImageReadError(
                f"32-bit integer image with values {data.min():g}..{data.max():g}, outside "
                "0..65535; save it as 8 or 16 bits"
            )
        arr = data / (65535.0 if data.max() > 255 else 255.0)
    elif mode == "F":
        arr = _scaled(np.asarray(img, dtype=np.float64), notes, "floating-point")
    elif mode in ("L", "1", "LA", "La"):
        arr = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    else:  # RGB(A), palette (P, PA), CMYK, YCbCr, LAB, HSV, ...: decoded to RGB
        arr = np.asarray(img.convert("RGBA").convert("RGB"), dtype=np.float64) / 255.0
        if mode in ("P", "PA") and np.all(arr == arr[..., :1]):
            arr = arr[..., :1]  # a palette of greys: a grey image
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3] -> [H, W, 1]`` with Y = 0.299 R + 0.587 G + 0.114 B; grey passes through."""
    if image.shape[-1] == 1:
        return image
    weights = np.asarray([0.299, 0.587, 0.114], image.dtype)
    return (image[..., :3] @ weights)[..., None]


def _default_mode() -> int:
    """The permissions ``open()`` gives a new file: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str, write) -> None:
    """Calls ``write(tmp)`` on a temporary file beside ``path``, then renames it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600
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
