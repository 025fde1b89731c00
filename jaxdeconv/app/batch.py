"""Deblurring many files: input discovery, grouping, batching, resume and fault isolation.

Every image is handled on its own terms: a file that cannot be read, an image smaller than
its kernel or a bad kernel size is reported in one line naming the file, and the others go
on. Images are grouped by (estimation shape, kernel size) from their headers; a group is
trained ``batch_size`` images at a time with ``jax.vmap``, sharded over the local devices (on
a CPU: one image per device, the command splitting the host into one device per core, see
``runtime.split_host_cpu``; vmapped batches on one CPU device measured slower); each image
always gets the key ``jax.random.key(seed)``. Pixels are decoded one batch ahead and the
previous batch is finished while a batch trains (``jaxdeconv.app.overlap``).

The pieces it uses: the inputs (``jaxdeconv.app.inputs``), the records of what this tool wrote
and the checkpoints (``jaxdeconv.app.records``: outputs are written only over files this tool
wrote, a checkpoint is resumed only by its own run), progress lines (``jaxdeconv.app.progress``)
and the summary, rewritten as every image finishes (``jaxdeconv.app.summary``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline
from jaxdeconv.app import folder_lock, image_io, overlap, shards
from jaxdeconv.app.inputs import _failure, output_names, unmatched_manifest_rows
from jaxdeconv.app.progress import Progress, _log, _StepTracker
from jaxdeconv.app.records import (
    RECORD_DIR,
    _checkpoint_dir,
    _checkpoint_fingerprint,
    _remove_checkpoint,
    file_sha256,
    foreign_files,
    output_files,
    outputs_complete,
    prepare_checkpoint,
    record_path,
    written_here,
)
from jaxdeconv.app.summary import _Run, summary_files, write_overview
from jaxdeconv.run import api, progressive


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
    problem = config_lib.kernel_size_problem(k, allow_auto=True, where="kernel size")
    if problem:
        return problem
    if min(shape[:2]) < k:
        return f"image {shape[0]}x{shape[1]} is smaller than the {k}x{k} kernel"
    return None


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

    The run owns ``output_dir`` while it works (``jaxdeconv.app.folder_lock``, one member
    lock per ``summary_name``): only the other shards of this very run (the same
    :func:`run_identity`) may work in the folder at the same time; any other run raises
    ``folder_lock.FolderBusy`` naming the holder; a lock left by a process that is gone is
    taken over (``take_over_lock`` for one from another host).
    """
    blocked = foreign_files(output_dir, summary_files(summary_name))
    if blocked:  # refused before the folder is touched
        raise ValueError(
            f"{', '.join(blocked)} exists and was not written by jaxdeconv; move it or choose "
            "another --output_dir"
        )
    command = " ".join(sys.argv)
    identity = run_identity(paths, config, kernel_size, manifest, num_shards)
    with folder_lock.owned(
        output_dir,
        summary_name,
        run_id=identity,
        take_over=take_over_lock,
        log=_log,
        command=command,
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


def run_identity(paths, config, kernel_size, manifest, num_shards: int) -> str:
    """What the shards of one run agree on, as 16 hex digits: the full input list (as given,
    so hosts that mount the inputs elsewhere but are given the same list agree), the config
    (seed included), the kernel size, the manifest and the shard count."""
    text = json.dumps(
        {
            "inputs": list(paths),
            "config": config_lib.fingerprint(config, ignore=()),
            "kernel_size": kernel_size,
            "manifest": sorted((str(k), str(v)) for k, v in (manifest or {}).items()),
            "num_shards": int(num_shards),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    # Temporary files a killed run left while writing (this run owns the folder now).
    stale = [
        name
        for folder in (output_dir, os.path.join(output_dir, RECORD_DIR, "images"))
        for name in image_io.remove_stale_tmp_files(folder)
    ]
    if stale:
        progress.line(f"removed {len(stale)} temporary file(s) left by an interrupted run")
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
        fingerprint = hashlib.sha256(f"{sha} {config_lib.fingerprint(cfg)}".encode()).hexdigest()
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
        # One plan per image, made here and passed along (region, network stage, final stage).
        p = pipeline.plan(shape, cfg)
        member = {
            "path": path,
            "shape": shape,
            "cfg": cfg,
            "sha": sha,
            "fingerprint": fingerprint,
            "plan": p,
        }
        # A batch holds same-shaped regions and one kernel size ('auto': by shape only), and
        # one network kernel size (pipeline.network_config: the size at the working scale).
        key = (pipeline.region_shape(shape, p), k, p.net_kernel_size)
        groups.setdefault(key, []).append(member)
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

    def write_chunk_results(chunk, results):
        for member, result in zip(chunk, results, strict=True):
            _write_image_outputs(member, result, output_dir, names, run, progress)
        ckpt = _checkpoint_dir(chunk, output_dir, names, checkpoints) if chunk else None
        if ckpt and all(run.records[m["path"]]["status"] == "ok" for m in chunk):
            _remove_checkpoint(ckpt)

    # Decoding the next batch and finishing the previous one overlap with training.
    overlap.run_overlapped(chunks, load, train, write_chunk_results, overlap=overlapped)
    run.write(finished=True)
    if run.folder_error is None:
        write_overview(output_dir, run.ordered(), summary_name, progress.line)
    return run.closing_records()


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
    blurry, gain = pipeline.brightened(blurry)
    if gain != 1.0:
        notes.append(
            f"dark image (brightest value {1 / gain:.4g} of 1): worked on {gain:.3g} times "
            "brighter, outputs scaled back"
        )
    lum = image_io.luminance(blurry)
    for note in notes:
        progress.line(f"warning: {path}: {note}")
    region, box = _estimation_region(lum, cfg, member["plan"])
    return {
        **member,
        "blurry": blurry,
        "region": region,
        "box": box,
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


def _write_image_outputs(member, result, output_dir, names, run, progress) -> None:
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
        image_io.save_outputs(output_dir, name, outputs, bits=member["bits"], blurry=original)
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
    if seeds := outputs.facts.get("seeds"):  # recover.seeds: the kept seed, and the agreement
        extra.update(seed=seeds["kept"], seeds=seeds["seeds"], seed_agreement=seeds["agreement"])
        if "kept_candidate" in seeds:  # recover.variants: which estimate of the pool was kept
            extra.update(kept_candidate=seeds["kept_candidate"])
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
    # The first report comes after compilation (a minute on a CPU when nothing is cached):
    # say so, so the first minute is not silent.
    tracker.progress.status(f"    {label}: compiling the training step (cached for later runs)...")
    try:
        return _network_stage(chunk, cfg, ckpt, tracker.report)
    finally:
        tracker.close()


# ------------------------------------------------------- the method's three calls, in one place


def _estimation_region(
    luminance: np.ndarray, cfg: ml_collections.ConfigDict, p: pipeline.Plan
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What the networks train on for one image (``[h, w, 1]``) and its box ``(top, left, h,
    w)``, made once and kept with the image; images are grouped by the region's shape (and
    kernel size), so a batch holds same-shaped regions."""
    return pipeline.estimation_region(luminance, cfg, p=p)


def _network_stage(chunk, cfg, ckpt, report) -> list[api.DeblurResult]:
    """Trains the networks of one batch (``chunk``: same-shaped regions, one config)."""
    return progressive.network_runs(
        [image_io.luminance(m["blurry"]) for m in chunk],
        cfg,
        plans=[m["plan"] for m in chunk],
        regions=[m["region"] for m in chunk],
        boxes=[m["box"] for m in chunk],
        checkpoint_dir=ckpt,
        callback=report,
    )


def _final_stage(member: dict, result: api.DeblurResult) -> pipeline.Outputs:
    """Final kernel and non-blind deconvolution of every channel of one image."""
    return pipeline.two_stage_from_run(
        member["blurry"],
        result,
        member["region"],
        member["cfg"],
        p=member["plan"],
        box=member["box"],
    )
