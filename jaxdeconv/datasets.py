"""Loaders for the blind-deblurring benchmarks shipped in ``data/`` (host-side NumPy + Pillow).

Conventions:

* Images are float32 in [0, 1] with shape ``[H, W, 1]`` (grey, channels last): 8-bit files are
  divided by 255, 16-bit files by 65535.
* Kernels are float32 *correlation* kernels ``[K, K]`` (K odd), non-negative and normalised to
  sum to one: ``blurry ~= correlate(sharp, kernel)`` (see ``data/*/README.md``).
* Colour files are reduced to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` computed in floating
  point from the 8-bit values (full range, no rounding back to integers). This is how the Lai
  ``blurry_y`` files were made, so sharp and blurry images are compared like with like.

Layouts (``root`` is the folder that holds ``levin/`` and ``lai/``):

* Levin et al. 2009: ``levin/blurry/im{i}_kernel{j}.png``, ``levin/sharp/im{i}.png``,
  ``levin/kernels/kernel{j}.npy``. Names ``im{i}_kernel{j}``, category ``kernel{j}``.
* Lai et al. 2016: ``lai/blurry_y/{cat}_{nn}_kernel_{kk}.png`` (grey luminance),
  ``lai/sharp/{cat}_{nn}.png`` (RGB), ``lai/kernels/kernel_{kk}.npy``. Names
  ``{cat}_{nn}_kernel_{kk}``, category ``{cat}`` (manmade, natural, people, saturated, text).

The image list comes from the blurry files present, so a partial copy (or a tiny test fixture)
works; the sharp image and kernel of every selected image must exist.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

from jaxdeconv import image_io


@dataclasses.dataclass(frozen=True, eq=False)
class BenchmarkImage:
    """One blurry/sharp/kernel triple of a benchmark.

    Attributes:
      name: unique name, e.g. ``'im1_kernel4'`` or ``'manmade_01_kernel_02'``.
      blurry: ``[H, W, 1]`` float32 in [0, 1].
      sharp: ``[H, W, 1]`` float32 in [0, 1].
      kernel: ``[K, K]`` float32 correlation kernel, non-negative, sums to one.
      kernel_size: K.
      category: ``'kernel{j}'`` for Levin, the scene category for Lai.
      sharp_name: which sharp image, e.g. ``'im1'`` or ``'manmade_01'``.
      kernel_name: which kernel, e.g. ``'kernel4'`` or ``'kernel_02'``.
    """

    name: str
    blurry: np.ndarray
    sharp: np.ndarray
    kernel: np.ndarray
    kernel_size: int
    category: str
    sharp_name: str = ""
    kernel_name: str = ""


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    blurry: str  # paths relative to the dataset folder
    sharp: str
    kernel: str
    category: str
    sharp_name: str
    kernel_name: str


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as grey ``[H, W, 1]`` float32 in [0, 1] (colour -> luminance Y)."""
    return image_io.luminance(image_io.read_image(os.fspath(path)))


def read_kernel(path: str | os.PathLike) -> np.ndarray:
    """Reads a ``.npy`` kernel: checks it is square with odd size, clips negative entries (rounding
    noise) to zero and normalises it to sum to one.

    Returns:
      ``[K, K]`` float32, non-negative, summing to one.
    """
    k = np.load(path).astype(np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 != 1:
        raise ValueError(f"kernel {path} must be [K, K] with K odd, got shape {k.shape}")
    k = np.maximum(k, 0.0)
    total = k.sum()
    if not total > 0:
        raise ValueError(f"kernel {path} has no positive entries")
    return (k / total).astype(np.float32)


def _scan(
    folder: str,
    dataset: str,
    blurry_dir: str,
    pattern: str,
    make_entry: Callable[[re.Match], _Entry],
) -> list[_Entry]:
    """Lists the entries named by the blurry files of ``folder/blurry_dir``."""
    bdir = os.path.join(folder, blurry_dir)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{dataset} dataset not found: missing folder {folder}")
    if not os.path.isdir(bdir):
        raise FileNotFoundError(
            f"{dataset} dataset incomplete under {folder}: missing {blurry_dir}/"
        )
    regex = re.compile(pattern)
    entries = []
    for fname in os.listdir(bdir):
        m = regex.fullmatch(fname)
        if m:
            entries.append(make_entry(m))
    if not entries:
        raise FileNotFoundError(
            f"{dataset} dataset incomplete under {folder}: no blurry images in {blurry_dir}/"
        )
    return sorted(entries, key=lambda e: e.name)


def _select(entries: list[_Entry], names: Sequence[str] | None, dataset: str) -> list[_Entry]:
    if names is None:
        return entries
    if isinstance(names, str):
        names = [names]
    by_name = {e.name: e for e in entries}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(
            f"unknown {dataset} image name(s) {unknown}; valid names: {sorted(by_name)}"
        )
    return sorted((by_name[n] for n in dict.fromkeys(names)), key=lambda e: e.name)


def _load(folder: str, dataset: str, entries: list[_Entry]) -> list[BenchmarkImage]:
    needed = dict.fromkeys(p for e in entries for p in (e.blurry, e.sharp, e.kernel))
    missing = [p for p in needed if not os.path.isfile(os.path.join(folder, p))]
    if missing:
        raise FileNotFoundError(
            f"{dataset} dataset incomplete under {folder}: missing {', '.join(missing)}"
        )
    sharp_cache: dict[str, np.ndarray] = {}
    kernel_cache: dict[str, np.ndarray] = {}
    out = []
    for e in entries:
        if e.sharp not in sharp_cache:
            sharp_cache[e.sharp] = read_gray(os.path.join(folder, e.sharp))
        if e.kernel not in kernel_cache:
            kernel_cache[e.kernel] = read_kernel(os.path.join(folder, e.kernel))
        blurry = read_gray(os.path.join(folder, e.blurry))
        sharp, kernel = sharp_cache[e.sharp], kernel_cache[e.kernel]
        if blurry.shape != sharp.shape:
            raise ValueError(
                f"{dataset} image {e.name}: blurry {blurry.shape} and sharp {sharp.shape} differ"
            )
        out.append(
            BenchmarkImage(
                name=e.name,
                blurry=blurry,
                sharp=sharp,
                kernel=kernel,
                kernel_size=int(kernel.shape[0]),
                category=e.category,
                sharp_name=e.sharp_name,
                kernel_name=e.kernel_name,
            )
        )
    return out


def load_levin(root: str | os.PathLike, names: Sequence[str] | None = None) -> list[BenchmarkImage]:
    """Loads the Levin et al. (2009) benchmark (32 images, kernel sizes 13 to 27).

    Args:
      root: folder that holds ``levin/``.
      names: optional subset, e.g. ``['im1_kernel4']``.

    Returns:
      ``BenchmarkImage`` list sorted by name.

    Raises:
      FileNotFoundError: the folder or a needed file is missing (the message names it).
      ValueError: an unknown name (the message lists the valid ones) or inconsistent data.
    """
    folder = os.path.join(os.fspath(root), "levin")

    def entry(m: re.Match) -> _Entry:
        i, j = m.group(1), m.group(2)
        return _Entry(
            name=f"im{i}_kernel{j}",
            blurry=f"blurry/im{i}_kernel{j}.png",
            sharp=f"sharp/im{i}.png",
            kernel=f"kernels/kernel{j}.npy",
            category=f"kernel{j}",
            sharp_name=f"im{i}",
            kernel_name=f"kernel{j}",
        )

    entries = _scan(folder, "Levin", "blurry", r"im(\d+)_kernel(\d+)\.png", entry)
    return _load(folder, "Levin", _select(entries, names, "Levin"))


def load_lai(root: str | os.PathLike, names: Sequence[str] | None = None) -> list[BenchmarkImage]:
    """Loads the Lai et al. (2016) uniform-blur benchmark, luminance version (100 images).

    The sharp RGB images are converted to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (float,
    full range), the definition the ``blurry_y`` files use. The full set is about 45 MB of PNGs
    (images up to 1024 x 1024); pass ``names`` to load a subset.

    Args:
      root: folder that holds ``lai/``.
      names: optional subset, e.g. ``['manmade_01_kernel_01']``.

    Returns:
      ``BenchmarkImage`` list sorted by name.

    Raises:
      FileNotFoundError: the folder or a needed file is missing (the message names it).
      ValueError: an unknown name (the message lists the valid ones) or inconsistent data.
    """
    folder = os.path.join(os.fspath(root), "lai")

    def entry(m: re.Match) -> _Entry:
        cat, nn, kk = m.group(1), m.group(2), m.group(3)
        return _Entry(
            name=f"{cat}_{nn}_kernel_{kk}",
            blurry=f"blurry_y/{cat}_{nn}_kernel_{kk}.png",
            sharp=f"sharp/{cat}_{nn}.png",
            kernel=f"kernels/kernel_{kk}.npy",
            category=cat,
            sharp_name=f"{cat}_{nn}",
            kernel_name=f"kernel_{kk}",
        )

    entries = _scan(folder, "Lai", "blurry_y", r"([A-Za-z]+)_(\d+)_kernel_(\d+)\.png", entry)
    return _load(folder, "Lai", _select(entries, names, "Lai"))


_LOADERS = {"levin": load_levin, "lai": load_lai}


def load_dataset(
    name: str, root: str | os.PathLike, names: Sequence[str] | None = None
) -> list[BenchmarkImage]:
    """Loads a benchmark by name: ``'levin'`` or ``'lai'`` (see :func:`load_levin`)."""
    try:
        loader = _LOADERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_LOADERS)}") from None
    return loader(root, names)
