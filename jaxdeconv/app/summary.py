"""The run's summary: ``summary.json`` / ``summary.csv`` are rewritten (atomically) as every
image finishes (``_Run``), so a killed run leaves one, listing what is still pending; processes
sharing an output folder each write their own (``SUMMARY_NAME``; merged by
``jaxdeconv.app.shards``). And ``overview.png``: one sheet of the run's comparison pictures.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import threading
import time

import numpy as np
from PIL import Image

from jaxdeconv.app import image_io, pictures
from jaxdeconv.app.progress import _log
from jaxdeconv.app.records import RECORD_DIR, foreign_files


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
        sheet = pictures.overview([_picture(p) for _, p in found], [n for n, _ in found])
        path = os.path.join(output_dir, target)
        image_io.write_image(path, sheet / 255.0)
    except (OSError, ValueError) as e:  # a picture that cannot be read: no sheet
        log(f"{target} not written ({e})")
        return None
    return path


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


def _picture(path: str) -> np.ndarray:
    """One of this tool's own 8-bit RGB pictures, as it was written (not an input image)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))
