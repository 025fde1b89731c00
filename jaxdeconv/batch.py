"""Deblurring many files: input discovery, grouping, batching, resume and fault isolation.

Every image is handled on its own terms: a file that cannot be read, an image smaller than
its kernel or a bad kernel size is reported in one line naming the file, and the others go
on. Outputs are written atomically and ``--resume`` skips images whose outputs are complete.
Images are grouped by (estimation shape, kernel size); on an accelerator a group is trained
``batch_size`` images at a time with ``jax.vmap``, on a CPU one after another (measured
faster there); each image always gets the key ``jax.random.key(seed)``, so its result does
not depend on which batch it ran in.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import shutil
import sys
import time
from collections.abc import Iterable
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdeconv import api, image_io, pipeline

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
OUTPUT_SUFFIXES = (
    "_deblurred.png",
    "_network.png",
    "_kernel.png",
    "_kernel.npy",
    "_uncertainty.png",
    "_uncertainty.npy",
)
SUMMARY_FIELDS = (
    "name",
    "input",
    "status",
    "seconds",
    "final_loss",
    "kernel_size",
    "seed",
    "error",
)


def collect_inputs(specs: Iterable[str]) -> tuple[list[str], list[dict]]:
    """Expands files, folders (their image files, not recursive) and globs.

    Returns the image paths (sorted, without duplicates) and a failure record for every spec
    that matched nothing.
    """
    paths, failures = [], []
    for spec in specs:
        if os.path.isdir(spec):
            found = [
                os.path.join(spec, f)
                for f in sorted(os.listdir(spec))
                if not f.startswith(".") and os.path.isfile(os.path.join(spec, f))
            ]
            if not found:
                failures.append(_failure(spec, spec, "folder has no files"))
            paths += found
        elif os.path.exists(spec):
            paths.append(spec)
        elif glob.has_magic(spec):
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not found:
                failures.append(_failure(spec, spec, "pattern matched no files"))
            paths += found
        else:
            failures.append(_failure(spec, spec, "no such file or folder"))
    seen, unique = set(), []
    for p in paths:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, failures


def read_manifest(path: str) -> dict[str, int]:
    """A CSV with columns ``name`` (file name or stem) and ``kernel_size``."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ValueError(f"{path}: cannot read manifest ({e.strerror})") from None
    if rows and not {"name", "kernel_size"} <= set(rows[0]):
        raise ValueError(f"{path}: manifest needs the columns 'name' and 'kernel_size'")
    sizes = {}
    for i, row in enumerate(rows, start=2):
        try:
            sizes[row["name"].strip()] = int(row["kernel_size"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}:{i}: kernel_size {row['kernel_size']!r} is not an integer"
            ) from None
    return sizes


def _failure(name: str, path: str, error: str, **extra: Any) -> dict:
    return {"name": name, "input": path, "status": "failed", "error": error, **extra}


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


def outputs_complete(output_dir: str, name: str) -> bool:
    return all(os.path.isfile(os.path.join(output_dir, name + s)) for s in OUTPUT_SUFFIXES)


def check_output_dir(output_dir: str) -> None:
    """Raises ``OSError`` with a clear message if ``output_dir`` cannot be written."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        image_io.write_json(os.path.join(output_dir, ".write_test.json"), {})
        os.remove(os.path.join(output_dir, ".write_test.json"))
    except OSError as e:
        raise OSError(
            f"{output_dir}: output folder cannot be written ({e.strerror or e})"
        ) from None


def kernel_size_problem(k: Any, shape: tuple) -> str | None:
    if not isinstance(k, int | np.integer) or k < 1 or k % 2 == 0:
        return f"kernel size must be a positive odd integer, got {k!r}"
    if min(shape[:2]) < k:
        return f"image {shape[0]}x{shape[1]} is smaller than the {k}x{k} kernel"
    return None


class Progress:
    """Overall progress with elapsed time and ETA, on stderr; silent when ``quiet``."""

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet, self.done = total, quiet, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def fmt(self, s: float) -> str:
        s = int(s)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def advance(self, n: int, text: str) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.line(
            f"[{bar}] {self.done}/{self.total} elapsed {self.fmt(elapsed)} "
            f"ETA {self.fmt(eta)}  {text}"
        )


def choose_batch_size(requested: int | None) -> int:
    """``requested`` if given; else 8 on an accelerator and 1 (sequential) on a CPU."""
    if requested:
        return int(requested)
    return 1 if jax.default_backend() == "cpu" else 8


def process(
    paths: list[str],
    config: ml_collections.ConfigDict,
    output_dir: str,
    *,
    kernel_size: int | None = None,
    manifest: dict[str, int] | None = None,
    batch_size: int | None = None,
    resume: bool = False,
    quiet: bool = False,
    checkpoints: bool = True,
) -> list[dict]:
    """Deblurs every path into ``output_dir``; returns one record per image (never raises
    for a bad image)."""
    progress = Progress(len(paths), quiet)
    progress.line(
        f"JAX backend: {jax.default_backend()} ({jax.devices()[0].device_kind}); "
        f"{len(paths)} image(s)"
    )
    names = output_names(paths)
    manifest = manifest or {}
    records: dict[str, dict] = {}
    groups: dict[tuple, list[tuple[str, np.ndarray, np.ndarray, int]]] = {}
    for path in paths:
        name = names[path]
        stem = os.path.splitext(os.path.basename(path))[0]
        k = manifest.get(os.path.basename(path), manifest.get(stem, kernel_size))
        if k is None:
            k = config.kernel_size
        if resume and outputs_complete(output_dir, name):
            records[path] = {
                "name": name,
                "input": path,
                "status": "skipped (complete)",
                "kernel_size": k,
                "error": "",
            }
            progress.advance(1, f"{name}: outputs complete, skipped")
            continue
        try:
            blurry = image_io.read_image(path)
        except image_io.ImageReadError as e:
            records[path] = _failure(name, path, str(e), kernel_size=k)
            progress.advance(1, f"FAILED {e}")
            continue
        problem = kernel_size_problem(k, blurry.shape)
        if problem:
            records[path] = _failure(name, path, f"{path}: {problem}", kernel_size=k)
            progress.advance(1, f"FAILED {path}: {problem}")
            continue
        region, _ = pipeline.estimation_region(image_io.luminance(blurry), config)
        groups.setdefault((region.shape, int(k)), []).append((path, blurry, region, int(k)))

    size = choose_batch_size(batch_size)
    for (_, k), members in groups.items():
        cfg = ml_collections.ConfigDict(config.to_dict())
        cfg.kernel_size = k
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            try:
                results = _train(chunk, cfg, output_dir, names, checkpoints, progress)
            except Exception as e:  # noqa: BLE001 - a failed batch is retried image by image
                if len(chunk) == 1:
                    path = chunk[0][0]
                    records[path] = _failure(names[path], path, f"{path}: {e}", kernel_size=k)
                    progress.advance(1, f"FAILED {path}: {e}")
                    continue
                results = []
                for member in chunk:
                    try:
                        results += _train([member], cfg, output_dir, names, checkpoints, progress)
                    except Exception as e2:  # noqa: BLE001
                        results.append(e2)
            for (path, blurry, region, _), result in zip(chunk, results, strict=True):
                name = names[path]
                if isinstance(result, Exception):
                    records[path] = _failure(name, path, f"{path}: {result}", kernel_size=k)
                    progress.advance(1, f"FAILED {path}: {result}")
                    continue
                try:
                    outputs = pipeline.finish(blurry, result, region, cfg)
                    pipeline.save_outputs(output_dir, name, outputs)
                except OSError as e:
                    records[path] = _failure(
                        name, path, f"{path}: cannot write outputs ({e})", kernel_size=k
                    )
                    progress.advance(1, f"FAILED {path}: cannot write outputs ({e})")
                    continue
                records[path] = {
                    "name": name,
                    "input": path,
                    "status": "ok",
                    "seconds": round(result.seconds, 2),
                    "final_loss": float(result.loss_history[-1]),
                    "kernel_size": k,
                    "seed": cfg.seed,
                    "error": "",
                }
                progress.advance(1, f"{name}: done ({result.seconds:.0f} s)")
            ckpt = _checkpoint_dir(chunk, cfg, output_dir, names, checkpoints)
            if ckpt and all(records.get(m[0], {}).get("status") == "ok" for m in chunk):
                shutil.rmtree(ckpt, ignore_errors=True)
    ordered = [records[p] for p in paths]
    write_summary(output_dir, ordered, config)
    return ordered


def _checkpoint_dir(chunk, cfg, output_dir, names, checkpoints) -> str | None:
    if checkpoints and cfg.checkpoint_every > 0:
        return os.path.join(output_dir, ".checkpoints", "+".join(names[m[0]] for m in chunk))
    return None


def _train(chunk, cfg, output_dir, names, checkpoints, progress=None) -> list[api.DeblurResult]:
    ckpt = _checkpoint_dir(chunk, cfg, output_dir, names, checkpoints)
    label = ", ".join(names[m[0]] for m in chunk)
    start = time.perf_counter()

    def report(step, metrics):
        if progress is not None:
            elapsed = time.perf_counter() - start
            eta = elapsed / step * (cfg.num_steps - step)
            progress.line(
                f"    {label}: step {step}/{cfg.num_steps} loss {metrics['loss']:.2e}"
                f" elapsed {progress.fmt(elapsed)} ETA {progress.fmt(eta)}"
            )

    if len(chunk) == 1:
        return [
            api.deblur(
                chunk[0][2], cfg, key=jax.random.key(cfg.seed), checkpoint_dir=ckpt, callback=report
            )
        ]
    return api.deblur_batch([m[2] for m in chunk], cfg, checkpoint_dir=ckpt, callback=report)


def write_summary(output_dir: str, records: list[dict], config) -> None:
    """``summary.json`` (records plus the config) and ``summary.csv``."""
    image_io.write_json(
        os.path.join(output_dir, "summary.json"), {"config": config.to_dict(), "images": records}
    )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({f: r.get(f, "") for f in SUMMARY_FIELDS})
    image_io.write_text(os.path.join(output_dir, "summary.csv"), buf.getvalue())
