"""Deblurring many files: input discovery, grouping, batching, resume and fault isolation.

Every image is handled on its own terms: a file that cannot be read, an image smaller than
its kernel or a bad kernel size is reported in one line naming the file, and the others go
on. Images are grouped by (estimation shape, kernel size) from their headers; a group is
trained ``batch_size`` images at a time with ``jax.vmap``, sharded over the local devices (on
a CPU: one image per device, the command splitting the host into one device per core, see
``runtime.split_host_cpu``; vmapped batches on one CPU device measured slower); each image
always gets the key ``jax.random.key(seed)``. Pixels are decoded one batch ahead and the
previous batch is finished while a batch trains (``jaxdeconv.app.overlap``).

What is the user's stays the user's:
* Outputs are written atomically, and only over files this tool wrote: every image's record
  ``OUTPUT_DIR/.jaxdeconv/images/NAME.json`` lists its files and the fingerprint of the run
  that made them (input content, config, seed, kernel size). A file in the way that no record
  names is left alone and the image fails with a message.
* Files a record names are skipped (reported) when a folder or a glob given as input holds
  them, so outputs are never read back as inputs, whatever their names.
* A checkpoint (``OUTPUT_DIR/.checkpoints/LABEL-DIGEST/``) is resumed only by the run it
  belongs to: DIGEST is the hash of that run's fingerprint (input contents, config, seed,
  kernel size), kept in full beside it (``LABEL-DIGEST.json``); a checkpoint left for the same
  output names by another run is removed with a message.
* ``summary.json`` / ``summary.csv`` are rewritten (atomically) as every image finishes, so a
  killed run leaves one, listing what is still pending.
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdeconv import pipeline
from jaxdeconv.app import folder_lock, image_io, overlap, pictures, shards
from jaxdeconv.run import api, progressive

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
OUTPUT_SUFFIXES = (
    "_deblurred.png",
    "_network.png",
    "_kernel.png",
    "_kernel.npy",
    "_uncertainty.png",
    "_uncertainty.npy",
    "_comparison.png",
)


def summary_files(summary_name: str = "summary") -> tuple[str, str]:
    """The run's summary files; processes sharing an output folder give each its own name."""
    return (f"{summary_name}.json", f"{summary_name}.csv")


SUMMARY_FIELDS = (
    "name",
    "input",
    "status",
    "seconds",
    "final_loss",
    "kernel_size",
    "seed",
    "error",
    "warning",
)
# Write errors that say the output folder takes no more files (not a problem of one image).
_FOLDER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
RECORD_DIR = ".jaxdeconv"  # in an output folder: what this tool wrote there
CHECKPOINT_DIR = ".checkpoints"
# Fields that do not change a run's result: a checkpoint or output made with other values of
# these still belongs to the run.
_NOT_RESULT_FIELDS = ("checkpoint_every", "log_every")


# ----------------------------------------------------------------------------- inputs


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
        return "not a regular file"
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
            if os.path.exists(spec):
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


# ----------------------------------------------------------------------------- records


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_fingerprint(config: ml_collections.ConfigDict, leave_out: tuple = ()) -> str:
    """Hash of every config field that changes a result (seed and kernel size included unless
    named in ``leave_out``)."""
    skip = _NOT_RESULT_FIELDS + tuple(leave_out)
    d = {k: v for k, v in config.to_dict().items() if k not in skip}
    text = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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


def kernel_size_problem(k: Any, shape: tuple, min_auto: int = 5) -> str | None:
    """Why ``k`` cannot be estimated on an image of ``shape`` (None when it can). ``'auto'``
    needs room for a kernel of at least ``min_auto`` taps (``auto_size.min_size``), whose
    valid blur is more than twice its side."""
    if k == "auto":
        if pipeline._largest_kernel(shape) < min_auto:
            need = 2 * (min_auto + 1)
            return (
                f"image {shape[0]}x{shape[1]} is too small for an automatic kernel size "
                f"(the short side must be at least {need} px)"
            )
        return None
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 or k % 2 == 0:
        return f"kernel size must be a positive odd integer or 'auto', got {k!r}"
    if min(shape[:2]) < k:
        return f"image {shape[0]}x{shape[1]} is smaller than the {k}x{k} kernel"
    return None


# ----------------------------------------------------------------------------- progress


class Progress:
    """Overall progress with elapsed time and ETA on stderr; silent when ``quiet``.

    On a terminal the per-step line is redrawn in place; otherwise every update is one line
    (logs stay readable). The ETA counts only training steps this run has measured, after
    the first report of each batch (which includes compilation), plus the mean time of the
    final (non-network) stage per image; it reads ``ETA ?`` until it can be measured.
    """

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet, self.done = total, quiet, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.todo_steps = 0  # image-steps still to train in this run
        self.todo_images = 0  # images still to finish (post-processing)
        self.step_seconds = 0.0  # measured training seconds and their image-steps
        self.steps_measured = 0
        self.finish_seconds: list[float] = []
        self._transient = False
        # Lines come from the training thread and the reader/finisher threads (overlap).
        self._lock = threading.RLock()

    def fmt(self, s: float | None) -> str:
        if s is None:
            return "?"
        s = int(s)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def rate(self) -> float | None:
        return self.step_seconds / self.steps_measured if self.steps_measured else None

    def eta(self, steps: int | None = None, images: int | None = None) -> float | None:
        rate = self.rate()
        steps = self.todo_steps if steps is None else steps
        images = self.todo_images if images is None else images
        steps, images = max(steps, 0), max(images, 0)
        if steps and rate is None:
            return None
        finish = float(np.mean(self.finish_seconds)) if self.finish_seconds else 0.0
        return (rate or 0.0) * steps + finish * images

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._transient:
                self.stream.write("\r\033[K")
                self._transient = False
            print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """A line that the next update replaces, on a terminal."""
        if self.quiet:
            return
        if not self.tty:
            self.line(text)
            return
        with self._lock:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._transient = True

    def advance(self, n: int, text: str) -> None:
        with self._lock:
            self._advance(n, text)

    def _advance(self, n: int, text: str) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.start
        eta = self.eta() if self.steps_measured or self.done >= self.total else None
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.line(
            f"[{bar}] {self.done}/{self.total} elapsed {self.fmt(elapsed)} "
            f"ETA {self.fmt(eta)}  {text}"
        )


class _StepTracker:
    """Progress of one batch's training: turns the step reports into speed and ETA. The first
    report of a batch is only a reference point (its interval holds the compilation, and after
    a resume the steps done by the interrupted run), so only this run's steps are timed."""

    def __init__(self, progress: Progress, label: str, num_steps: int, batch: int):
        self.progress, self.label, self.num_steps, self.batch = progress, label, num_steps, batch
        self.t = self.step = None
        self.counted = 0

    def report(self, step: int, metrics: dict, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        p = self.progress
        if self.t is not None and step > self.step:
            steps = (step - self.step) * self.batch
            p.step_seconds += now - self.t
            p.steps_measured += steps
            p.todo_steps -= steps
            self.counted += steps
        self.t, self.step = now, step
        eta = p.eta((self.num_steps - step) * self.batch, 0)
        p.status(
            f"    {self.label}: step {step}/{self.num_steps} loss {metrics['loss']:.2e} "
            f"ETA {p.fmt(eta)} (all: {p.fmt(p.eta())})"
        )

    def close(self) -> None:
        """The batch is over: its steps are no longer to do."""
        self.progress.todo_steps -= self.num_steps * self.batch - self.counted
        self.counted = self.num_steps * self.batch


def choose_batch_size(requested: int | None) -> int:
    """``requested`` if given; else 8 on an accelerator (at least one image per local device,
    a multiple of their count) and 1 (sequential) on a CPU with one device (one per device
    with several)."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"batch size must be a positive integer, got {requested!r}")
        return requested
    n = jax.local_device_count()
    if jax.default_backend() == "cpu":
        return n
    return -(-max(8, n) // n) * n


# ----------------------------------------------------------------------------- the run


class _Run:
    """The records of one run, written to ``summary.json``/``.csv`` when one changes (at most
    once per ``len(records) / 1000`` seconds, so huge runs do not spend their time on it)."""

    def __init__(self, output_dir, config, paths, names, earlier, unmatched, summary_name):
        self.output_dir, self.config, self.summary_name = output_dir, config, summary_name
        self.order = list(paths)
        self.earlier = list(earlier)
        self.unmatched = list(unmatched)
        self.records = {
            p: {"name": names[p], "input": p, "status": "pending", "error": ""} for p in paths
        }
        self.interval = min(5.0, (len(self.order) + len(self.earlier)) / 1000)
        self.last_write = -float("inf")
        self._lock = threading.RLock()  # records are set from the overlap's threads too
        # The output folder stopped taking writes (full, read-only, over quota): the images
        # not yet trained are not tried, and the summary's own failure is reported.
        self.folder_error: OSError | None = None
        self.summary_error: str | None = None

    def set(self, path: str, record: dict) -> None:
        with self._lock:
            self.records[path] = record
            if time.perf_counter() - self.last_write >= self.interval:
                self.write()

    def ordered(self) -> list[dict]:
        return self.earlier + [self.records[p] for p in self.order]

    def write(self, finished: bool = False) -> None:
        with self._lock:
            try:
                write_summary(
                    self.output_dir,
                    self.ordered(),
                    self.config,
                    unmatched_manifest_rows=self.unmatched,
                    finished=finished,
                    summary_name=self.summary_name,
                )
            except OSError as e:
                error = f"cannot write {self.summary_name}.json/.csv ({e})"
                if error != self.summary_error:  # said once per distinct error
                    _log(f"jaxdeconv: {error}")
                self.summary_error = error
                self.note_write_error(e)
            else:
                self.summary_error = None
            self.last_write = time.perf_counter()

    def note_write_error(self, e: OSError) -> None:
        if e.errno in _FOLDER_ERRNOS and self.folder_error is None:
            self.folder_error = e

    def closing_records(self) -> list[dict]:
        """The records, and one failure record for a summary that could not be written."""
        records = self.ordered()
        if self.summary_error:
            records.append(
                {
                    "name": self.summary_name,
                    "input": "",
                    "status": "failed",
                    "error": f"{os.path.join(self.output_dir, self.summary_name)}: "
                    f"{self.summary_error}; the records above are this run's",
                }
            )
        return records


def process(
    paths: list[str],
    config: ml_collections.ConfigDict,
    output_dir: str,
    *,
    kernel_size: int | str | None = None,
    manifest: dict[str, int | str] | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    quiet: bool = False,
    checkpoints: bool = True,
    earlier: list[dict] | None = None,
    summary_name: str = "summary",
    num_shards: int = 1,
    shard_index: int = 0,
    overlapped: bool = True,
    take_over_lock: bool = False,
) -> list[dict]:
    """Deblurs every path into ``output_dir``; returns one record per image, after the
    ``earlier`` records (from ``collect_inputs``), never raising for a bad image. The run's
    records go to ``SUMMARY_NAME.json``/``.csv`` (one name per process sharing the folder).

    Images whose record shows outputs from this very run (same input content, config, seed and
    kernel size) are skipped with ``resume``; ``summary.json`` also lists manifest rows that
    name no input (``unmatched_manifest_rows``).

    Files are grouped from their headers; pixels are decoded one batch ahead of training and
    the previous batch is finished meanwhile (``jaxdeconv.app.overlap``; ``overlapped=False`` runs
    the stages in turn), so memory does not grow with the number of inputs.

    The run owns ``output_dir`` while it works (``jaxdeconv.app.folder_lock``, one lock per
    ``summary_name``): a second run into the same folder raises ``folder_lock.FolderBusy``
    naming the first; a lock left by a process that is gone is taken over
    (``take_over_lock`` for one from another host).
    """
    blocked = foreign_files(output_dir, summary_files(summary_name))
    if blocked:  # refused before the folder is touched
        raise ValueError(
            f"{', '.join(blocked)} exists and was not written by jaxdeconv; move it or choose "
            "another --output_dir"
        )
    command = " ".join(sys.argv)
    with folder_lock.owned(
        output_dir, summary_name, take_over=take_over_lock, log=_log, command=command
    ):
        return _process(
            paths,
            config,
            output_dir,
            kernel_size=kernel_size,
            manifest=manifest,
            batch_size=batch_size,
            resume=resume,
            quiet=quiet,
            checkpoints=checkpoints,
            earlier=earlier,
            summary_name=summary_name,
            num_shards=num_shards,
            shard_index=shard_index,
            overlapped=overlapped,
        )


def _log(text: str) -> None:
    print(text, file=sys.stderr)


def _process(
    paths,
    config,
    output_dir,
    *,
    kernel_size,
    manifest,
    batch_size,
    resume,
    quiet,
    checkpoints,
    earlier,
    summary_name,
    num_shards,
    shard_index,
    overlapped,
) -> list[dict]:
    # Output names over every input, so processes sharing the folder never collide; then
    # this process's share (jaxdeconv.app.shards: positions shard_index, + num_shards, ...).
    all_paths, names = list(paths), output_names(paths)
    paths = [p for _, p in shards.select(all_paths, shards.Shard(num_shards, shard_index))]
    size = choose_batch_size(batch_size)
    blocked = foreign_files(output_dir, summary_files(summary_name))
    if blocked:
        raise ValueError(
            f"{', '.join(blocked)} exists and was not written by jaxdeconv; move it or choose "
            "another --output_dir"
        )
    progress = Progress(len(paths), quiet)
    progress.line(
        f"JAX backend: {jax.default_backend()} ({jax.devices()[0].device_kind}, "
        f"{jax.local_device_count()} local device(s)); {len(paths)} image(s)"
    )
    manifest = manifest or {}
    unmatched = unmatched_manifest_rows(manifest, all_paths)
    if unmatched:
        progress.line(f"manifest rows naming no input (ignored): {', '.join(unmatched)}")
    own = written_here(output_dir)
    protected = {os.path.realpath(p) for p in all_paths}
    run = _Run(output_dir, config, paths, names, earlier or [], unmatched, summary_name)
    run.write()
    groups: dict[tuple, list[dict]] = {}
    for path in paths:
        name = names[path]
        stem = os.path.splitext(os.path.basename(path))[0]
        k = manifest.get(os.path.basename(path), manifest.get(stem, kernel_size))
        if k is None:
            k = config.kernel_size
        cfg = _config_for(config, k)
        try:
            sha = file_sha256(path)
        except OSError as e:
            sha = f"unreadable: {e}"
        fingerprint = hashlib.sha256(f"{sha} {config_fingerprint(cfg)}".encode()).hexdigest()
        if resume and outputs_complete(output_dir, name, fingerprint):
            run.set(path, _record(name, path, "skipped (complete)", k, cfg))
            progress.advance(1, f"{name}: outputs complete, skipped")
            continue
        if resume and outputs_complete(output_dir, name):
            progress.line(f"{name}: outputs made by another run (input, config or seed): redone")
        # Only the header is read here (shape for grouping); pixels are decoded batch by batch.
        try:
            shape = image_io.probe_shape(path)
        except image_io.ImageReadError as e:
            run.set(path, _failure(name, path, str(e), kernel_size=k))
            progress.advance(1, f"FAILED {e}")
            continue
        problem = kernel_size_problem(k, shape, int(cfg.auto_size.min_size))
        blocked = foreign_files(output_dir, output_files(name), protected, own)
        if blocked:
            problem = (
                f"would replace {', '.join(blocked)}, which jaxdeconv did not write; "
                "move it or choose another --output_dir"
            )
        if problem:
            run.set(path, _failure(name, path, f"{path}: {problem}", kernel_size=k))
            progress.advance(1, f"FAILED {path}: {problem}")
            continue
        member = {"path": path, "shape": shape, "cfg": cfg, "sha": sha, "fingerprint": fingerprint}
        # A batch holds same-shaped regions and one kernel size ('auto': by shape only), and
        # one network kernel size (pipeline.network_config: the size at the working scale).
        net_k = pipeline.plan(shape, cfg).net_kernel_size
        groups.setdefault((pipeline.region_shape(shape, cfg), k, net_k), []).append(member)
    progress.todo_images = sum(len(g) for g in groups.values())
    progress.todo_steps = sum(len(g) * g[0]["cfg"].num_steps for g in groups.values())
    chunks = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]

    def load(chunk):
        return [m for m in (_load(m, names, run, progress) for m in chunk) if m is not None]

    def train(chunk):
        if run.folder_error is not None:  # no output could be written: do not train
            e = run.folder_error
            return [OSError(e.errno, f"not tried: the output folder takes no writes ({e})")] * len(
                chunk
            )
        return _train_isolated(chunk, output_dir, names, checkpoints, progress) if chunk else []

    def finish(chunk, results):
        for member, result in zip(chunk, results, strict=True):
            _finish(member, result, output_dir, names, run, progress)
        ckpt = _checkpoint_dir(chunk, output_dir, names, checkpoints) if chunk else None
        if ckpt and all(run.records[m["path"]]["status"] == "ok" for m in chunk):
            _remove_checkpoint(ckpt)

    # Decoding the next batch and finishing the previous one overlap with training.
    overlap.run_overlapped(chunks, load, train, finish, overlap=overlapped)
    run.write(finished=True)
    if run.folder_error is None:
        write_overview(output_dir, run.ordered(), summary_name, progress.line)
    return run.closing_records()


def overview_file(summary_name: str = "summary") -> str:
    return "overview.png" if summary_name == "summary" else f"{summary_name}.overview.png"


def write_overview(output_dir: str, records: list[dict], summary_name: str, log) -> str | None:
    """One sheet of the comparison pictures of the images deblurred (or found complete) in
    this run, ``overview.png``, when there are two or more; recorded as this tool's file.
    Returns its path, or None."""
    names = [r["name"] for r in records if r["status"] in ("ok", "skipped (complete)")]
    found = [
        (n, os.path.join(output_dir, f"{n}_comparison.png"))
        for n in names
        if os.path.isfile(os.path.join(output_dir, f"{n}_comparison.png"))
    ]
    if len(found) < 2:
        return None
    target = overview_file(summary_name)
    if foreign_files(output_dir, [target]):
        log(f"{target} not written: a file of that name that jaxdeconv did not write is there")
        return None
    try:
        image_io.write_json(
            os.path.join(output_dir, RECORD_DIR, f"{summary_name}.overview.json"),
            {"files": [target]},
        )
        sheet = pictures.overview(
            [image_io.to_uint8(image_io.read_image(p)) for _, p in found], [n for n, _ in found]
        )
        path = os.path.join(output_dir, target)
        image_io.write_image(path, sheet / 255.0)
    except (OSError, image_io.ImageReadError) as e:
        log(f"{target} not written ({e})")
        return None
    return path


def _load(member: dict, names: dict, run: _Run, progress: Progress) -> dict | None:
    """Decodes one member's image and its estimation region; ``None`` (failure recorded) when
    the file cannot be decoded after all."""
    path, cfg = member["path"], member["cfg"]
    name, k = names[path], cfg.kernel_size
    try:
        blurry, notes, bits = image_io.read_image_full(path)
        if blurry.shape[:2] != tuple(member["shape"]):
            raise image_io.ImageReadError(
                f"{path}: decoded as {blurry.shape[0]}x{blurry.shape[1]}, but its header says "
                f"{member['shape'][0]}x{member['shape'][1]}"
            )
    except image_io.ImageReadError as e:
        run.set(path, _failure(name, path, str(e), kernel_size=k))
        progress.todo_images -= 1
        progress.todo_steps -= cfg.num_steps
        progress.advance(1, f"FAILED {e}")
        return None
    # One level of the file's own depth (8 or 16 bits; floating-point files: any change).
    step = 1.0 / (2**bits - 1) if bits in (8, 16) else 0.0
    if float(np.ptp(image_io.luminance(blurry))) <= step:
        notes.append("the image is constant (no detail): its kernel is arbitrary")
    gain = pipeline.exposure_gain(blurry)
    if gain != 1.0:
        notes.append(
            f"dark image (brightest value {1 / gain:.4g} of 1): worked on {gain:.3g} times "
            "brighter, outputs scaled back"
        )
        blurry = blurry * np.float32(gain)
    lum = image_io.luminance(blurry)
    for note in notes:
        progress.line(f"warning: {path}: {note}")
    region = _estimation_region(lum, cfg)
    return {
        **member,
        "blurry": blurry,
        "region": region,
        "notes": notes,
        "bits": bits,
        "gain": gain,
    }


def _config_for(config: ml_collections.ConfigDict, k: int | str) -> ml_collections.ConfigDict:
    """A copy of ``config`` with this image's kernel size (an int, or ``'auto'``)."""
    d = config.to_dict()
    d["kernel_size"] = int(k) if isinstance(k, np.integer) else k
    return ml_collections.ConfigDict(d)


def _record(name, path, status, k, cfg, **extra) -> dict:
    return {
        "name": name,
        "input": path,
        "status": status,
        "kernel_size": k,
        "seed": cfg.seed,
        "error": "",
        **extra,
    }


def _train_isolated(chunk, output_dir, names, checkpoints, progress) -> list:
    """Results (or the exception) per member; a failed batch is retried image by image."""
    try:
        return _train(chunk, output_dir, names, checkpoints, progress)
    except Exception as e:  # noqa: BLE001 - one bad image must not stop the others
        if len(chunk) == 1:
            return [e]
    if progress is not None:
        progress.todo_steps += chunk[0]["cfg"].num_steps * len(chunk)  # to do again
    results = []
    for member in chunk:
        try:
            results += _train([member], output_dir, names, checkpoints, progress)
        except Exception as e:  # noqa: BLE001
            results.append(e)
    return results


def _finish(member, result, output_dir, names, run, progress) -> None:
    """The calls after training for one image: final kernel, deconvolution, files, record."""
    path, cfg = member["path"], member["cfg"]
    name, k = names[path], cfg.kernel_size
    progress.todo_images -= 1
    if isinstance(result, Exception):
        run.set(path, _failure(name, path, f"{path}: {_describe(result)}", kernel_size=k))
        progress.advance(1, f"FAILED {path}: {_describe(result)}")
        return
    start = time.perf_counter()
    record = {
        "input": os.path.abspath(path),
        "input_sha256": member["sha"],
        "fingerprint": None,  # until every file is written
        "seed": cfg.seed,
        "kernel_size": k,
        "files": output_files(name),
    }
    try:
        outputs = pipeline.scaled_outputs(_final_stage(member, result), 1.0 / member["gain"])
        # Recorded before the files exist, so a kill in between never leaves outputs that
        # look like the user's; the fingerprint comes once all of them are written.
        image_io.write_json(record_path(output_dir, name), record)
        original = member["blurry"] / np.float32(member["gain"])
        pipeline.save_outputs(output_dir, name, outputs, bits=member["bits"], blurry=original)
        k = int(np.asarray(outputs.kernel).shape[0]) if k == "auto" else k
        record.update(fingerprint=member["fingerprint"], kernel_size=k)
        image_io.write_json(record_path(output_dir, name), record)
    except Exception as e:  # noqa: BLE001
        what = "cannot write outputs" if isinstance(e, OSError) else "final stage failed"
        if isinstance(e, OSError):
            run.note_write_error(e)
        run.set(path, _failure(name, path, f"{path}: {what} ({e})", kernel_size=k))
        progress.advance(1, f"FAILED {path}: {what} ({e})")
        return
    progress.finish_seconds.append(time.perf_counter() - start)
    extra = {"warning": "; ".join(member["notes"])} if member["notes"] else {}
    run.set(
        path,
        _record(
            name,
            path,
            "ok",
            k,
            cfg,
            seconds=round(result.seconds, 2),
            final_loss=float(result.loss_history[-1]),
            **extra,
        ),
    )
    progress.advance(1, f"{name}: done ({result.seconds:.0f} s)")


def _describe(e: Exception) -> str:
    return str(e) or type(e).__name__


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
        "config": config_fingerprint(chunk[0]["cfg"], leave_out=("seed", "kernel_size")),
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


def _train(chunk, output_dir, names, checkpoints, progress=None) -> list[api.DeblurResult]:
    """The network stage for the images of ``chunk`` (one batch)."""
    cfg = chunk[0]["cfg"]
    ckpt = _checkpoint_dir(chunk, output_dir, names, checkpoints)
    if ckpt:
        prepare_checkpoint(
            ckpt,
            _checkpoint_fingerprint(chunk),
            progress.line if progress else print,
            names=[names[m["path"]] for m in chunk],
        )
    label = ", ".join(names[m["path"]] for m in chunk)
    tracker = _StepTracker(progress or Progress(0, quiet=True), label, cfg.num_steps, len(chunk))
    try:
        return _network_stage(chunk, cfg, ckpt, tracker.report)
    finally:
        tracker.close()


# ------------------------------------------------------- the method's three calls, in one place


def _estimation_region(luminance: np.ndarray, cfg: ml_collections.ConfigDict) -> np.ndarray:
    """What the networks train on for one image (``[h, w, 1]``); images are grouped by its
    shape (and kernel size), so a batch holds same-shaped regions."""
    region, _ = pipeline.estimation_region(luminance, cfg)
    return region


def _network_stage(chunk, cfg, ckpt, report) -> list[api.DeblurResult]:
    """Trains the networks of one batch (``chunk``: same-shaped regions, one config)."""
    # The networks' kernel side at the working scale (pipeline.plan; the given size, or the
    # upper bound for 'auto', when the estimate runs at full resolution).
    if len(chunk) == 1 or progressive.level_kernel_sizes(cfg, chunk[0]["shape"]):
        # Progressive runs go one image at a time (each carries its own coarser levels).
        return [
            progressive.network_run(
                image_io.luminance(m["blurry"]),
                cfg,
                key=jax.random.key(cfg.seed),
                region=m["region"],
                checkpoint_dir=ckpt if len(chunk) == 1 else None,
                callback=report,
            )
            for m in chunk
        ]
    cfg = pipeline.network_config(cfg, chunk[0]["shape"])
    regions = [m["region"] for m in chunk]
    return api.deblur_batch(regions, cfg, checkpoint_dir=ckpt, callback=report)


def _final_stage(member: dict, result: api.DeblurResult) -> pipeline.Outputs:
    """Final kernel and non-blind deconvolution of every channel of one image."""
    return pipeline.finish(member["blurry"], result, member["region"], member["cfg"])


# ----------------------------------------------------------------------------- summary


def write_summary(
    output_dir: str,
    records: list[dict],
    config,
    *,
    unmatched_manifest_rows: list[str] = (),
    finished: bool = True,
    summary_name: str = "summary",
) -> None:
    """``SUMMARY_NAME.json`` (records, unmatched manifest rows, the config) and ``.csv``, each
    replaced atomically; recorded as this tool's files (``.jaxdeconv/SUMMARY_NAME.json``)."""
    files = summary_files(summary_name)
    run_record = os.path.join(output_dir, RECORD_DIR, f"{summary_name}.json")
    if not os.path.exists(run_record):  # first, so no summary is ever unrecorded
        image_io.write_json(run_record, {"files": list(files)})
    counts: dict[str, int] = {}
    for r in records:
        key = "skipped" if r["status"].startswith("skipped") else r["status"]
        counts[key] = counts.get(key, 0) + 1
    image_io.write_json(
        os.path.join(output_dir, files[0]),
        {
            "finished": finished,
            "counts": counts,
            "images": records,
            "unmatched_manifest_rows": list(unmatched_manifest_rows),
            "config": config.to_dict(),
        },
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({f: r.get(f, "") for f in SUMMARY_FIELDS})
    image_io.write_text(os.path.join(output_dir, files[1]), buf.getvalue())
