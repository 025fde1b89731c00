"""Host-side image reading and writing (Pillow + NumPy); nothing here is traced.

Images come in as float32 ``[H, W, C]`` in [0, 1] (C = 1 for grey, 3 for colour; an alpha
channel is dropped; a palette image is colour unless its palette is grey). 8- and 16-bit files
are scaled by their own range and EXIF orientation is applied. Floating-point files are taken as
they are when their values lie in [0, 1], scaled by 1/255 when they clearly hold 0..255 data
(maximum 2 to 255; a note says so) and refused otherwise, as are negative, NaN and infinite
values: nothing is clipped silently. Every write goes to a temporary file in the target
folder and is then renamed, so a crash never leaves a half-written output; the file gets the
permissions of a normally created one (0666 less the umask). ``save_outputs`` writes the
files of one deblurred image. ``luminance`` is image maths (``jaxdeconv.classical.colour``),
re-exported here.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import stat
import tempfile
import time
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxdeconv.app import folder_lock, pictures
from jaxdeconv.classical.colour import luminance  # noqa: F401 - image maths, re-exported


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


def special_file_kind(path: str) -> str | None:
    """What ``path`` (links followed) is when it exists but is no regular file ('a folder',
    'a FIFO (named pipe)', 'a character device', ...), else None. Reading such a file can block
    forever (a FIFO) or never end (``/dev/zero``), so only regular files are read."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _require_file(path: str) -> None:
    """Raises ``ImageReadError`` naming ``path`` when it is missing or no regular file."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: {missing_reason(path)}")
    kind = special_file_kind(path)
    if kind == "a folder":
        raise ImageReadError(f"{path}: is a folder, not an image")
    if kind:
        raise ImageReadError(f"{path}: is {kind}, not a regular file; only image files are read")


def read_image_with_notes(path: str) -> tuple[np.ndarray, list[str]]:
    """Like ``read_image``; also returns notes on what was done to the values (e.g. a float
    file scaled from 0..255)."""
    arr, notes, _ = read_image_full(path)
    return arr, notes


def read_image_full(path: str) -> tuple[np.ndarray, list[str], int]:
    """Like ``read_image_with_notes``; also returns the file's bits per sample (8 or 16; 32
    for floating-point files). 16-bit colour PNG and TIFF files are decoded at full precision
    (pypng, tifffile: Pillow keeps their high bytes only). Notes say when an alpha channel
    with transparent pixels was dropped and when a file holds several frames (the first is
    used)."""
    _require_file(path)
    notes: list[str] = []
    try:
        with Image.open(path) as img:
            frames = int(getattr(img, "n_frames", 1) or 1)
            wide = _sixteen_bit_colour(img)
            img.load()
            if wide:
                arr = _read_sixteen_bit_colour(path, img.format, notes)
                arr = _oriented(arr, img.getexif().get(_EXIF_ORIENTATION, 1))
                bits = 16
            else:
                bits = _bits(img)
                img = ImageOps.exif_transpose(img)
                arr = _to_array(img, notes)
            if frames > 1:
                notes.append(f"the file holds {frames} frames (pages); the first is used")
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (format not recognised)") from None
    except ImageReadError as e:
        raise ImageReadError(f"{path}: {e}") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {_bomb(e)}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from None
    except MemoryError:
        raise ImageReadError(f"{path}: too large to decode in this machine's memory") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure fails this image alone
        raise ImageReadError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageReadError(f"{path}: empty image")
    return arr, notes, bits


def _sixteen_bit_colour(img: Image.Image) -> bool:
    """Whether ``img`` (opened, not loaded) is a 16-bit colour PNG or TIFF."""
    if img.format not in ("PNG", "TIFF") or img.mode not in ("RGB", "RGBA"):
        return False
    return any(";16" in str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in img.tile)


def _bits(img: Image.Image) -> int:
    if img.mode.startswith("I;16") or (img.mode == "I" and img.format in ("PNG", "TIFF")):
        return 16
    return 32 if img.mode in ("F", "I") else 8


def _read_sixteen_bit_colour(path: str, fmt: str, notes: list[str]) -> np.ndarray:
    """``[H, W, 3]`` float in [0, 1] from a 16-bit RGB(A) PNG or TIFF; alpha dropped."""
    if fmt == "PNG":
        import png  # pypng

        width, height, rows, info = png.Reader(filename=path).asDirect()
        planes = int(info["planes"])
        data = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, planes)
    else:
        import tifffile

        data = np.asarray(tifffile.imread(path, key=0))
        if data.ndim != 3 or data.shape[-1] not in (3, 4):
            raise ImageReadError(f"16-bit TIFF of shape {data.shape}: expected rows x columns x 3")
    if data.shape[-1] == 4:
        if int(data[..., 3].min()) < 65535:
            notes.append(_ALPHA_NOTE)
        data = data[..., :3]
    return (data.astype(np.float64) / 65535.0).astype(np.float32)


_ALPHA_NOTE = (
    "alpha channel dropped: transparent pixels are deblurred with the colour stored under them"
)


def _oriented(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``arr`` turned as EXIF ``orientation`` says (what ``ImageOps.exif_transpose`` does)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


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
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: {_bomb(e)}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot read the image header ({e})") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure fails this image alone
        raise ImageReadError(
            f"{path}: cannot read the image header ({type(e).__name__}: {e})"
        ) from None
    if h < 1 or w < 1:
        raise ImageReadError(f"{path}: empty image")
    # Orientations 5-8 are stored rotated by a quarter turn (ImageOps.exif_transpose).
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


_EXIF_ORIENTATION = 0x0112


def _bomb(e: Exception) -> str:
    """One line for Pillow's refusal of a header declaring more pixels than it will decode."""
    limit = Image.MAX_IMAGE_PIXELS
    return (
        f"declares more pixels than the decoder's safety limit ({e}); a corrupt or hostile "
        f"file (a decompression bomb), or a photo over {2 * limit / 1e6:.0f} megapixels: "
        "split it into tiles"
    )


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
        rgba = img.convert("RGBA")
        if "A" in mode or "transparency" in img.info:
            if int(np.asarray(rgba)[..., 3].min()) < 255:
                notes.append(_ALPHA_NOTE)
        arr = np.asarray(rgba.convert("RGB"), dtype=np.float64) / 255.0
        if mode in ("P", "PA") and np.all(arr == arr[..., :1]):
            arr = arr[..., :1]  # a palette of greys: a grey image
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.astype(np.float32)


def _default_mode() -> int:
    """The permissions ``open()`` gives a new file: 0666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def tmp_prefix() -> str:
    """The prefix of this process's temporary files: ``.tmp-HOST-PID-`` (HOST: 8 hex digits
    of the host name), so a later run can tell which ones a dead process left."""
    return f".tmp-{_host_tag()}-{os.getpid()}-"


_TMP = re.compile(r"\.tmp-(?:([0-9a-f]{8})-(\d+)-)?")
# A temporary file of unknown origin (another host, an older version) older than this is
# taken for one left by a killed process.
_TMP_STALE_S = 600.0


def remove_stale_tmp_files(folder: str) -> list[str]:
    """Removes the temporary files (:func:`atomic_write`) that processes which are gone left in
    ``folder`` (a run killed while writing): those of this host whose process no longer runs,
    and others once older than 10 minutes. Returns the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = _TMP.match(name)
        if not m:
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        host, pid = m.group(1), m.group(2)
        if host == _host_tag() and pid is not None:
            gone = not folder_lock.pid_running(int(pid))
        else:
            gone = now - st.st_mtime > _TMP_STALE_S
        if gone:
            try:
                os.remove(path)
                removed.append(name)
            except OSError:
                pass
    return removed


def atomic_write(path: str, write) -> None:
    """Calls ``write(tmp)`` on a temporary file beside ``path`` (named by :func:`tmp_prefix`),
    then renames it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=tmp_prefix(), suffix=os.path.splitext(path)[1])
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


def write_image(path: str, image: np.ndarray, bits: int = 8) -> None:
    """Writes ``[H, W]`` or ``[H, W, C]`` in [0, 1] as an 8-bit image (format from the suffix),
    or with ``bits=16`` as a 16-bit PNG (grey or RGB)."""
    if bits == 16:
        arr = np.round(np.clip(np.asarray(image, np.float64), 0, 1) * 65535).astype(np.uint16)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]

        def save(tmp):
            import png  # pypng

            mode = "L;16" if arr.ndim == 2 else "RGB;16"
            png.from_array(arr.reshape(arr.shape[0], -1), mode).save(tmp)

        atomic_write(path, save)
        return
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


def save_outputs(
    outdir: str,
    name: str,
    outputs,
    bits: int = 8,
    *,
    blurry: np.ndarray | None = None,
    true_kernel: np.ndarray | None = None,
) -> dict[str, str]:
    """Writes one image's ``outputs`` (``jaxdeconv.pipeline.Outputs``): ``NAME_deblurred.png``,
    ``NAME_network.png``, ``NAME_kernel.png``/``.npy`` and ``NAME_uncertainty.png`` (scaled so
    the largest deviation is white) plus ``.npy``; the two images as 16-bit PNGs with
    ``bits=16`` (a 16-bit input), the pictures of the kernel and the uncertainty always 8-bit.
    Given the ``blurry`` input, also ``NAME_comparison.png`` (blurry | deblurred | kernel, and
    ``true_kernel`` where known). Returns the paths by role."""
    paths = {
        "deblurred": os.path.join(outdir, f"{name}_deblurred.png"),
        "network": os.path.join(outdir, f"{name}_network.png"),
        "kernel_png": os.path.join(outdir, f"{name}_kernel.png"),
        "kernel_npy": os.path.join(outdir, f"{name}_kernel.npy"),
        "uncertainty_png": os.path.join(outdir, f"{name}_uncertainty.png"),
        "uncertainty_npy": os.path.join(outdir, f"{name}_uncertainty.npy"),
    }
    write_image(paths["deblurred"], outputs.deblurred, bits=16 if bits == 16 else 8)
    write_image(paths["network"], outputs.network, bits=16 if bits == 16 else 8)
    write_kernel_png(paths["kernel_png"], outputs.kernel)
    write_npy(paths["kernel_npy"], outputs.kernel)
    std = outputs.uncertainty
    write_image(paths["uncertainty_png"], std / max(float(std.max()), 1e-12))
    write_npy(paths["uncertainty_npy"], std)
    if blurry is not None:
        paths["comparison"] = os.path.join(outdir, f"{name}_comparison.png")
        picture = pictures.comparison(blurry, outputs.deblurred, outputs.kernel, true_kernel)
        write_image(paths["comparison"], picture / 255.0)
    return paths
