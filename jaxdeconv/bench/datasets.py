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
import functools
import os
import re
from collections.abc import Callable, Sequence

import numpy as np

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io
from jaxdeconv.bench import synthetic


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
      tags: extra per-image facts reported by the benchmark (the synthetic suite's buckets).
    """

    name: str
    blurry: np.ndarray
    sharp: np.ndarray
    kernel: np.ndarray
    kernel_size: int
    category: str
    sharp_name: str = ""
    kernel_name: str = ""
    tags: dict = dataclasses.field(default_factory=dict)


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
    config_lib.check_kernel_shape(k.shape, where=f"kernel {path}")
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


_LEVIN_PATTERN = r"im(\d+)_kernel(\d+)\.png"
_LAI_PATTERN = r"([A-Za-z]+)_(\d+)_kernel_(\d+)\.png"


def _levin_entry(m: re.Match) -> _Entry:
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


def _lai_entry(m: re.Match) -> _Entry:
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
    entries = _scan(folder, "Levin", "blurry", _LEVIN_PATTERN, _levin_entry)
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
    entries = _scan(folder, "Lai", "blurry_y", _LAI_PATTERN, _lai_entry)
    return _load(folder, "Lai", _select(entries, names, "Lai"))


_LOADERS = {"levin": load_levin, "lai": load_lai}

LAI_CATEGORIES = ("manmade", "natural", "people", "saturated", "text")
LAI_SUBSETS = ("lai20", "all")


def lai_subset(subset: str = "lai20") -> list[str] | None:
    """Names of a fixed Lai subset: ``'lai20'`` or ``'all'`` (``None``: every image).

    ``'lai20'`` holds each category x each kernel once: category ``c`` (index 0-4 in
    :data:`LAI_CATEGORIES`) with kernel ``kernel_0{j+1}`` (j = 0-3) uses image
    ``nn = (c + j) mod 5 + 1``. So every category appears with 4 different images, every kernel
    with all 5 image numbers, and 20 of the 25 sharp images are used.
    """
    if subset == "all":
        return None
    if subset != "lai20":
        raise ValueError(f"unknown Lai subset {subset!r}; choose one of {LAI_SUBSETS}")
    return [
        f"{cat}_{(c + j) % 5 + 1:02d}_kernel_{j + 1:02d}"
        for c, cat in enumerate(LAI_CATEGORIES)
        for j in range(4)
    ]


@dataclasses.dataclass(frozen=True)
class LazyImage:
    """A benchmark image that is read (or, for the synthetic suite, made) only when needed.

    Attributes:
      name: unique name.
      category: as in :class:`BenchmarkImage`.
      load: returns the :class:`BenchmarkImage`.
      key: identifies the image's content for resumption (the synthetic case's spec and the
        generator's version; empty for files).
    """

    name: str
    category: str
    load: Callable[[], BenchmarkImage]
    key: str = ""


def _lazy_files(folder: str, dataset: str, entries: list[_Entry]) -> list[LazyImage]:
    needed = dict.fromkeys(p for e in entries for p in (e.blurry, e.sharp, e.kernel))
    missing = [p for p in needed if not os.path.isfile(os.path.join(folder, p))]
    if missing:
        raise FileNotFoundError(
            f"{dataset} dataset incomplete under {folder}: missing {', '.join(missing)}"
        )
    return [
        LazyImage(e.name, e.category, functools.partial(_load_one, folder, dataset, e))
        for e in entries
    ]


def _load_one(folder: str, dataset: str, entry: _Entry) -> BenchmarkImage:
    return _load(folder, dataset, [entry])[0]


def _synthetic_image(spec: synthetic.CaseSpec, root: str) -> BenchmarkImage:
    case = synthetic.make_case(spec, root)
    return BenchmarkImage(
        name=spec.name,
        blurry=case.blurry,
        sharp=case.sharp,
        kernel=case.kernel,
        kernel_size=spec.kernel_size,
        category=spec.kernel_bucket,
        sharp_name=spec.source,
        kernel_name=f"shake_{spec.seed}",
        tags=spec.tags(),
    )


def lazy_dataset(
    name: str,
    root: str | os.PathLike,
    names: Sequence[str] | None = None,
    *,
    subset: str = "all",
    suite: str | Sequence[synthetic.CaseSpec] = "dev",
    seed: int = 0,
) -> list[LazyImage]:
    """The images of a benchmark, each loaded on demand (full-size Lai is 100 photos).

    Args:
      name: ``'levin'``, ``'lai'`` or ``'synthetic'``.
      root: folder that holds ``levin/`` and ``lai/`` (the synthetic suite's sharp sources).
      names: optional subset by name (for Lai, within ``subset``).
      subset: Lai only: ``'all'`` or ``'lai20'`` (:func:`lai_subset`).
      suite: synthetic only: ``'dev'``, ``'quick'`` (:func:`jaxdeconv.bench.synthetic.suite`)
        or a list of :class:`jaxdeconv.bench.synthetic.CaseSpec`.
      seed: synthetic only: the suite's seed.

    Returns:
      ``LazyImage`` list, sorted by name.

    Raises:
      FileNotFoundError, ValueError: as :func:`load_levin`; missing files are reported before
        anything is loaded.
    """
    root = os.fspath(root)
    key = name.lower()
    if key == "synthetic":
        specs = synthetic.suite(seed, suite) if isinstance(suite, str) else list(suite)
        by_name = {s.name: s for s in specs}
        if names is not None:
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ValueError(
                    f"unknown synthetic case name(s) {unknown}; valid names: {sorted(by_name)}"
                )
            specs = [by_name[n] for n in dict.fromkeys(names)]
        missing = sorted(
            {s.source for s in specs if not os.path.isfile(synthetic.source_path(root, s.source))}
        )
        if missing:
            raise FileNotFoundError(
                f"synthetic suite: sharp sources missing under {root}: {', '.join(missing)}"
            )
        return sorted(
            (
                LazyImage(
                    s.name,
                    s.kernel_bucket,
                    functools.partial(_synthetic_image, s, root),
                    key=synthetic.spec_key(s),
                )
                for s in specs
            ),
            key=lambda item: item.name,
        )
    if key == "lai":
        chosen = lai_subset(subset)
        if names is not None:
            names = list(names)
            if chosen is not None:
                outside = [n for n in names if n not in chosen]
                if outside:
                    raise ValueError(f"image(s) {outside} are not in the Lai subset {subset!r}")
            chosen = names
        folder = os.path.join(root, "lai")
        entries = _scan(folder, "Lai", "blurry_y", _LAI_PATTERN, _lai_entry)
        return _lazy_files(folder, "Lai", _select(entries, chosen, "Lai"))
    if key == "levin":
        folder = os.path.join(root, "levin")
        entries = _scan(folder, "Levin", "blurry", _LEVIN_PATTERN, _levin_entry)
        return _lazy_files(folder, "Levin", _select(entries, names, "Levin"))
    raise ValueError(f"unknown dataset {name!r}; choose one of ['lai', 'levin', 'synthetic']")


def load_dataset(
    name: str, root: str | os.PathLike, names: Sequence[str] | None = None
) -> list[BenchmarkImage]:
    """Loads a benchmark by name: ``'levin'`` or ``'lai'`` (see :func:`load_levin`)."""
    try:
        loader = _LOADERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_LOADERS)}") from None
    return loader(root, names)
