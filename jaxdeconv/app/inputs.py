"""What a folder run takes: ``--input`` values (``split_specs``) expanded into the images to
deblur (``collect_inputs``: files, folders and globs), with a record for everything skipped or
missing; the kernel-size manifest; each input's output name; and the check that the output
folder holds no inputs.

Files a record names (``jaxdeconv.app.records``) are skipped when a folder or a glob given as
input holds them, so outputs are never read back as inputs, whatever their names.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Iterable
from typing import Any

from jaxdeconv.app import image_io
from jaxdeconv.app.records import written_here

# Files found in a folder or by a glob are taken when their suffix is one of these (any case);
# a file named on its own is taken whatever its name.
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".webp",
    ".gif",
    ".pgm",
    ".ppm",
    ".pnm",
)


def split_specs(values: Iterable[str]) -> list[str]:
    """``--input`` values -> specs: each value is split at commas, except a value naming an
    existing file or folder (taken whole) and commas escaped as ``\\,``."""
    specs = []
    for value in values:
        if os.path.lexists(value):
            specs.append(value)
            continue
        for part in re.split(r"(?<!\\),", value):
            part = part.replace("\\,", ",").strip()
            if part:
                specs.append(part)
    return specs


def _skip(path: str, reason: str) -> dict:
    return {
        "name": os.path.basename(path.rstrip(os.sep)) or path,
        "input": path,
        "status": f"skipped ({reason})",
        "error": "",
    }


def _failure(name: str, path: str, error: str, **extra: Any) -> dict:
    return {"name": name, "input": path, "status": "failed", "error": error, **extra}


def _classify(path: str, own: set[str]) -> str | None:
    """None if ``path`` (found in a folder or by a glob) is a file to deblur, else why not."""
    base = os.path.basename(path)
    if base in own:
        return "written by jaxdeconv in an earlier run"
    if os.path.islink(path) and not os.path.exists(path):
        return image_io.missing_reason(path)
    if os.path.isdir(path):
        return "sub-folder; folders are not searched recursively"
    if not os.path.isfile(path):
        kind = image_io.special_file_kind(path)
        return f"{kind}, not a regular file" if kind else "not a regular file"
    if base.startswith("."):
        return "hidden file"
    if not base.lower().endswith(IMAGE_SUFFIXES):
        return "not an image file type (sidecar or other file)"
    return None


def collect_inputs(specs: Iterable[str]) -> tuple[list[str], list[dict]]:
    """Expands files, folders (their files, not recursive) and globs.

    Returns the paths to deblur (in order, each file once) and a record for everything else:
    ``failed`` for a spec that matches nothing (the error names it), ``skipped (why)`` for a
    sub-folder, a dangling link, a symbolic link loop, a hidden image file, a file whose suffix
    is not an image type (``.xmp``, ``.txt`` sidecars: skipped, so they never fail a run nor
    change another file's output names), a duplicate or a file this tool wrote (outputs are
    never read back as inputs). Hidden entries that are not
    image files (``.DS_Store``, ``.jaxdeconv``) are ignored without a word.
    """
    paths, records = [], []
    own_by_folder: dict[str, set[str]] = {}

    def own_files(folder: str) -> set[str]:
        if folder not in own_by_folder:
            own_by_folder[folder] = written_here(folder)
        return own_by_folder[folder]

    for spec in specs:
        if os.path.isdir(spec):
            own = own_files(spec)
            found = 0
            for f in sorted(os.listdir(spec)):
                p = os.path.join(spec, f)
                if f.startswith(".") and not f.lower().endswith(IMAGE_SUFFIXES):
                    continue
                why = _classify(p, own)
                if why:
                    records.append(_skip(p, why))
                else:
                    paths.append(p)
                    found += 1
            if not found:
                records.append(_failure(spec, spec, f"{spec}: folder has no files to deblur"))
        elif os.path.lexists(spec):
            kind = image_io.special_file_kind(spec)
            if kind:  # a FIFO would block the run, a device never end: failed at once
                records.append(
                    _failure(
                        spec,
                        spec,
                        f"{spec}: is {kind}, not a regular file; only image files are read",
                    )
                )
            elif os.path.exists(spec):
                paths.append(spec)  # named by the user: taken whatever its name
            else:
                records.append(_failure(spec, spec, f"{spec}: {image_io.missing_reason(spec)}"))
        elif glob.has_magic(spec):
            found = 0
            for p in sorted(glob.glob(spec)):
                why = _classify(p, own_files(os.path.dirname(p) or "."))
                if why:
                    records.append(_skip(p, why))
                else:
                    paths.append(p)
                    found += 1
            if not found:
                records.append(_failure(spec, spec, f"{spec}: pattern matched no files"))
        else:
            records.append(_failure(spec, spec, f"{spec}: no such file or folder"))
    seen, unique = {}, []
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            if os.path.abspath(p) != os.path.abspath(seen[key]):
                records.append(_skip(p, f"same file as {seen[key]}"))
            continue
        seen[key] = p
        unique.append(p)
    return unique, records


def output_dir_problem(output_dir: str, specs: Iterable[str], paths: Iterable[str]) -> str | None:
    """Why ``output_dir`` cannot take these inputs' outputs, or None.

    Refused: a folder that holds an input (a folder given as input, or the folder of an input
    file), since outputs there would sit among the inputs and could be taken for them.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return f"--output_dir={output_dir} exists and is not a folder"
    out = os.path.realpath(output_dir)
    folders = [(s, s) for s in specs if os.path.isdir(s)]
    folders += [(os.path.dirname(p) or ".", p) for p in paths]
    for folder, source in folders:
        if os.path.realpath(folder) == out:
            sibling = os.path.abspath(folder).rstrip(os.sep) + "_deblurred"
            return (
                f"--output_dir={output_dir} is the folder of the input {source}: outputs would "
                f"sit among the inputs; give a separate folder, e.g. --output_dir={sibling}"
            )
    return None


def skip_lines(records: Iterable[dict], show: int = 5) -> list[str]:
    """One line per reason for the skipped records (``skipped (why): a, b and 3 more``);
    images skipped as complete are only counted elsewhere."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r["status"].startswith("skipped") and r["status"] != "skipped (complete)":
            groups.setdefault(r["status"], []).append(r["input"])
    lines = []
    for status, inputs in groups.items():
        more = f" and {len(inputs) - show} more" if len(inputs) > show else ""
        lines.append(f"{status}: {', '.join(inputs[:show])}{more}")
    return lines


def read_manifest(path: str) -> dict[str, int | str]:
    """A CSV with columns ``name`` (file name or stem) and ``kernel_size`` (odd or ``auto``)."""
    try:
        # utf-8-sig: a byte-order mark (Excel's CSV) is not part of the first column's name;
        # spaces after the commas are ignored.
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [
                {(k or "").strip(): v for k, v in row.items()}
                for row in csv.DictReader(f, skipinitialspace=True)
            ]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read manifest ({getattr(e, 'strerror', e)})") from None
    if rows and not {"name", "kernel_size"} <= set(rows[0]):
        raise ValueError(f"{path}: manifest needs the columns 'name' and 'kernel_size'")
    sizes: dict[str, int | str] = {}
    for i, row in enumerate(rows, start=2):
        name, value = (row.get("name") or "").strip(), (row.get("kernel_size") or "").strip()
        if not name:
            raise ValueError(f"{path}:{i}: empty name")
        if value.lower() == "auto":
            sizes[name] = "auto"
            continue
        try:
            sizes[name] = int(value)
        except ValueError:
            raise ValueError(f"{path}:{i}: kernel_size {value!r} is not an integer") from None
    return sizes


def unmatched_manifest_rows(manifest: dict, paths: Iterable[str]) -> list[str]:
    """Manifest names that match no input (neither its file name nor its stem)."""
    known = set()
    for p in paths:
        base = os.path.basename(p)
        known.update((base, os.path.splitext(base)[0]))
    return [n for n in manifest if n not in known]


def output_names(paths: list[str]) -> dict[str, str]:
    """Output prefix per input: the file stem, made unique when two inputs share it."""
    stems: dict[str, int] = {}
    for p in paths:
        s = os.path.splitext(os.path.basename(p))[0]
        stems[s] = stems.get(s, 0) + 1
    names, used = {}, set()
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        name = stem if stems[stem] == 1 else f"{stem}_{os.path.splitext(p)[1].lstrip('.')}"
        i = 2
        while name in used:
            name, i = f"{stem}_{i}", i + 1
        used.add(name)
        names[p] = name
    return names
