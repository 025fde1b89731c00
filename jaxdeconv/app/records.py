"""Ownership records and checkpoints in an output folder: what is the user's stays the user's.

* Outputs are written atomically, and only over files this tool wrote: every image's record
  ``OUTPUT_DIR/.jaxdeconv/images/NAME.json`` lists its files and the fingerprint of the run
  that made them (input content, config, seed, kernel size). A file in the way that no record
  names is left alone and the image fails with a message.
* A checkpoint (``OUTPUT_DIR/.checkpoints/LABEL-DIGEST/``) is resumed only by the run it
  belongs to: DIGEST is the hash of that run's fingerprint (input contents, config, seed,
  kernel size), kept in full beside it (``LABEL-DIGEST.json``); a checkpoint left for the same
  output names by another run is removed with a message.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io

OUTPUT_SUFFIXES = (
    "_deblurred.png",
    "_network.png",
    "_kernel.png",
    "_kernel.npy",
    "_uncertainty.png",
    "_uncertainty.npy",
    "_comparison.png",
)
RECORD_DIR = ".jaxdeconv"  # in an output folder: what this tool wrote there
CHECKPOINT_DIR = ".checkpoints"


def written_here(folder: str) -> set[str]:
    """Names of the files in ``folder`` that the records in ``folder/.jaxdeconv`` say this tool
    wrote (outputs and summaries of earlier runs)."""
    names = set()
    root = os.path.join(folder, RECORD_DIR)
    for sub in ("images", "."):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.endswith(".json"):
                try:
                    with open(os.path.join(d, f)) as fh:
                        names.update(json.load(fh).get("files", []))
                except (OSError, ValueError, AttributeError):
                    continue
    return names


def file_sha256(path: str) -> str:
    """SHA-256 of a regular file's bytes. Raises ``OSError`` for anything else (a FIFO would
    block the open, ``/dev/zero`` never ends): opened without blocking, checked, and read no
    further than the size it had when opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        h, left = hashlib.sha256(), st.st_size
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def record_path(output_dir: str, name: str) -> str:
    """Where the record of image ``name``'s outputs in ``output_dir`` lives."""
    return os.path.join(output_dir, RECORD_DIR, "images", name + ".json")


def output_files(name: str) -> list[str]:
    return [name + s for s in OUTPUT_SUFFIXES]


def outputs_complete(output_dir: str, name: str, fingerprint: str | None = None) -> bool:
    """All of ``name``'s outputs exist (and, given ``fingerprint``, were made by that run)."""
    if not all(os.path.isfile(os.path.join(output_dir, f)) for f in output_files(name)):
        return False
    if fingerprint is None:
        return True
    try:
        with open(record_path(output_dir, name)) as f:
            return json.load(f).get("fingerprint") == fingerprint
    except (OSError, ValueError, AttributeError):
        return False


def foreign_files(
    output_dir: str,
    files: Iterable[str],
    inputs: Iterable[str] = (),
    own: set[str] | None = None,
) -> list[str]:
    """Those of ``files`` (names in ``output_dir``) that exist and were not written by this
    tool (``own``: ``written_here(output_dir)``), or that are one of ``inputs``: files an
    output must never replace."""
    own = written_here(output_dir) if own is None else own
    protected = inputs if isinstance(inputs, set) else {os.path.realpath(p) for p in inputs}
    bad = []
    for f in files:
        p = os.path.join(output_dir, f)
        if os.path.realpath(p) in protected or (os.path.lexists(p) and f not in own):
            bad.append(p)
    return bad


def check_output_dir(output_dir: str) -> None:
    """Raises ``OSError`` with a clear message if ``output_dir`` cannot be written."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write_test-{os.getpid()}.json")  # one per process
        image_io.write_json(probe, {})
        os.remove(probe)
    except OSError as e:
        raise OSError(
            f"{output_dir}: output folder cannot be written ({e.strerror or e})"
        ) from None


# ----------------------------------------------------------------------------- checkpoints


_LABEL_CHARS = 40  # of the first image's name in a checkpoint label (file-name limits)


def _checkpoint_dir(chunk, output_dir, names, checkpoints) -> str | None:
    """``OUTPUT_DIR/.checkpoints/LABEL``: LABEL is a readable prefix (the first image's
    output name, cut to ``_LABEL_CHARS``, and how many more images the batch holds) and the
    digest of the run's fingerprint (:func:`_checkpoint_fingerprint`: input contents, config,
    seed, kernel size). Two runs that differ in anything that changes the result, two inputs
    of the same name among them, never share a checkpoint, and the label stays under any file
    system's name limit whatever the input names."""
    cfg = chunk[0]["cfg"]
    if not (checkpoints and cfg.checkpoint_every > 0):
        return None
    first = names[chunk[0]["path"]][:_LABEL_CHARS]
    more = f"+{len(chunk) - 1}" if len(chunk) > 1 else ""
    fingerprint = json.dumps(_checkpoint_fingerprint(chunk), sort_keys=True, default=str)
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return os.path.join(output_dir, CHECKPOINT_DIR, f"{first}{more}-{digest}")


def _checkpoint_fingerprint(chunk) -> dict:
    return {
        "inputs": [m["sha"] for m in chunk],
        "config": config_lib.fingerprint(
            chunk[0]["cfg"], ignore=config_lib.RESULT_NEUTRAL + ("seed", "kernel_size")
        ),
        "seed": chunk[0]["cfg"].seed,
        "kernel_size": chunk[0]["cfg"].kernel_size,
    }


def prepare_checkpoint(ckpt: str, fingerprint: dict, log, names: Iterable[str] = ()) -> None:
    """Keeps ``ckpt`` only if its recorded fingerprint is ``fingerprint`` (its folder name
    carries the digest of it, so only a damaged record can differ); else removes it. Any
    other checkpoint in the folder recorded for one of the output ``names`` (left by a run
    with other inputs, config, seed or kernel size) is removed, saying so. Then records
    ``fingerprint`` (and ``names``) beside ``ckpt`` (``ckpt + '.json'``)."""
    names = sorted(names)
    meta = ckpt + ".json"
    label = os.path.basename(ckpt)
    if os.path.lexists(ckpt):
        old = _read_json(meta)
        if old is not None and old.get("fingerprint") == fingerprint:
            log(f"    {label}: continuing from the checkpoint of the interrupted run")
        else:
            why = "no record of its run" if old is None else "its record does not match"
            log(f"    {label}: checkpoint removed ({why}); starting afresh")
            _remove_checkpoint(ckpt, keep_parent=True)
    folder = os.path.dirname(ckpt)
    for other in sorted(glob.glob(os.path.join(glob.escape(folder), "*.json"))):
        record = _read_json(other)
        stale = other[: -len(".json")]
        if stale == ckpt or record is None or not set(record.get("names", ())) & set(names):
            continue
        why = _difference(record.get("fingerprint") or {}, fingerprint)
        log(f"    {os.path.basename(stale)}: checkpoint of another run ({why}) removed")
        _remove_checkpoint(stale, keep_parent=True)
    image_io.write_json(meta, {"fingerprint": fingerprint, "names": names})


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _difference(old: dict, new: dict) -> str:
    words = {"inputs": "input", "seed": "seed", "kernel_size": "kernel size", "config": "config"}
    diff = [w for k, w in words.items() if old.get(k) != new.get(k)]
    return "other " + ", ".join(diff) if diff else "unknown run"


def _remove_checkpoint(ckpt: str, keep_parent: bool = False) -> None:
    shutil.rmtree(ckpt, ignore_errors=True)
    if os.path.lexists(ckpt):
        os.remove(ckpt)
    if os.path.exists(ckpt + ".json"):
        os.remove(ckpt + ".json")
    if keep_parent:
        return
    try:
        os.rmdir(os.path.dirname(ckpt))  # only when empty
    except OSError:
        pass
