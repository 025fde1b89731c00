r"""The ``jaxdeconv`` command: blind deblurring of files, folders and globs.

  jaxdeconv --input=photos/ --output_dir=out/ --kernel_size=31
  jaxdeconv --input='shots/*.jpg' --output_dir=out/ --manifest=sizes.csv --resume
  jaxdeconv --input=a.png --input='name, with comma.png' --config=tiny --config.num_steps=50
  jaxdeconv --input=photos/ --output_dir=out/ --num_shards=8 --shard_index=3   # 1 of 8 processes

For each image NAME it writes NAME_deblurred.png (kernel estimated on the luminance, then
non-blind deconvolution of every channel), NAME_network.png, NAME_kernel.png/.npy and
NAME_uncertainty.png/.npy; for the run, summary.json and summary.csv (rewritten as images
finish). --config is an ml_collections config_flags flag (a preset name or a config file);
--config.FIELD=VALUE, or --set=FIELD=VALUE, overrides any field. Exit code: 0 when every image
was deblurred (or skipped), 1 if any failed, 2 for a usage error refused before any work
(unknown flag or config field, wrong type, bad flag value, missing --input, stray argument,
output folder that holds inputs, or one in use by another run), in one line without the help
text.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from jaxdeconv import config as config_lib
from jaxdeconv.app import batch, folder_lock, inputs, launch, shards
from jaxdeconv.app import records as records_lib
from jaxdeconv.app import summary as summary_lib
from jaxdeconv.run import runtime

_INPUT = flags.DEFINE_multi_string(
    "input",
    None,
    "Image files, folders (their files, not sub-folders) and glob patterns; repeat the flag "
    "or separate with commas. A value naming an existing file is taken whole, commas and all; "
    "otherwise write a comma in a name as \\, (backslash comma).",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    "deblurred",
    "Folder for the outputs; not a folder holding inputs. Files in it that jaxdeconv did not "
    "write are never replaced.",
)
_KERNEL_SIZE = flags.DEFINE_string(
    "kernel_size",
    None,
    "Odd blur kernel size K for every image, or 'auto' (default: the preset's).",
)
_MANIFEST = flags.DEFINE_string(
    "manifest",
    None,
    "CSV with columns name,kernel_size giving a kernel size per image "
    "(name: the file name or its stem); overrides --kernel_size for those images. Rows "
    "naming no input are reported.",
)
_CONFIG = launch.define_config_flag(
    "fast",
    "Preset name (fast, quality, paper, tiny) or a configs/*.py file (FILE.py:ARG passes ARG to "
    "its get_config). Unknown fields and values of the wrong type are refused.",
)
_SEED = flags.DEFINE_integer("seed", None, "Random seed (default: the preset's).")
_SEEDS = flags.DEFINE_integer(
    "seeds",
    None,
    "Estimate each image N times, with seeds seed, seed+1, ..., and keep one kernel "
    "(recover.seeds; N times the time): the one the runs agree on best, or with "
    "--config.recover.seed_select=evidence (the quality preset) the one under which the "
    "blurry photo is most probable. The summary records the seed kept.",
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    None,
    "Images trained together with vmap, at least 1 (default: 8 on GPU/TPU; on a CPU the "
    "number of CPU devices, one per core: see JAXDECONV_CPU_DEVICES in the README).",
)
_RESUME = flags.DEFINE_bool(
    "resume",
    False,
    "Skip images whose outputs are complete and were made from the same input, config and seed.",
)
_QUIET = flags.DEFINE_bool("quiet", False, "No progress output.")
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every",
    None,
    "Save an Orbax checkpoint every N steps (0: never; default: every 500 steps), so an "
    "interrupted run continues where it stopped; a checkpoint is only used by the run it "
    "belongs to (same input, config and seed).",
)
_TAKE_OVER_LOCK = flags.DEFINE_bool(
    "take_over_lock",
    False,
    "Take over the output folder's lock left by a run on another host (a lock of a process "
    "that is gone on this host is taken over anyway; a running one is never overruled).",
)

_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards",
    None,
    "Split the inputs over this many processes sharing --output_dir, each writing "
    "summary.shard-I-of-N.json (default: jax.process_count(); 1 without --distributed).",
)
_SHARD_INDEX = flags.DEFINE_integer(
    "shard_index", None, "This process's share, 0..num_shards-1 (default: jax.process_index())."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() first: cluster auto-detection (SLURM, Open MPI, "
    "Kubernetes, Cloud TPU), or --coordinator_address, --num_processes and --process_id.",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "With --distributed: host:port of process 0."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed.")


def _shard() -> shards.Shard:
    """This process's share: --distributed first, then the flags or the process index."""
    if _DISTRIBUTED.value:
        given = {
            "coordinator_address": _COORDINATOR.value,
            "num_processes": _NUM_PROCESSES.value,
            "process_id": _PROCESS_ID.value,
        }
        shards.initialize_distributed(**{k: v for k, v in given.items() if v is not None})
        return shards.resolve(_NUM_SHARDS.value, _SHARD_INDEX.value)
    # Without a cluster runtime there is one JAX process: no need to start JAX to know it
    # (JAX's backends must not start before runtime.split_host_cpu).
    count = 1 if _NUM_SHARDS.value is None else _NUM_SHARDS.value
    return shards.resolve(count, 0 if _SHARD_INDEX.value is None else _SHARD_INDEX.value)


def parse_kernel_size(text: str | None) -> int | str | None:
    """``--kernel_size``: an odd positive integer, ``auto`` or unset."""
    if text is None:
        return None
    if text.strip().lower() == "auto":
        return "auto"
    try:
        k = int(text)
    except ValueError:
        k = text
    return config_lib.check_kernel_size(k, where=f"--kernel_size={text}:")


def _prepare():
    """Everything checked before any work (the config's overrides were, by
    ``launch.parse_flags``); raises ``ValueError`` / ``OSError``."""
    cfg = launch.prepare_config(_CONFIG.value)  # a copy: the flag's value stays as parsed
    if _SEED.value is not None:
        cfg.seed = _SEED.value
    if _SEEDS.value is not None:
        if _SEEDS.value < 1:
            raise ValueError(f"--seeds={_SEEDS.value}: must be at least 1")
        cfg.recover.seeds = _SEEDS.value
    if _BATCH_SIZE.value is not None and _BATCH_SIZE.value < 1:
        raise ValueError(f"--batch_size={_BATCH_SIZE.value}: must be at least 1")
    if _CHECKPOINT_EVERY.value is not None and _CHECKPOINT_EVERY.value < 0:
        raise ValueError(f"--checkpoint_every={_CHECKPOINT_EVERY.value}: must be 0 or more")
    cfg.checkpoint_every = 500 if _CHECKPOINT_EVERY.value is None else _CHECKPOINT_EVERY.value
    kernel_size = parse_kernel_size(_KERNEL_SIZE.value)
    manifest = inputs.read_manifest(_MANIFEST.value) if _MANIFEST.value else None
    specs = inputs.split_specs(_INPUT.value)
    paths, earlier = inputs.collect_inputs(specs)
    problem = inputs.output_dir_problem(_OUTPUT_DIR.value, specs, paths)
    if problem:
        raise ValueError(problem)
    records_lib.check_output_dir(_OUTPUT_DIR.value)
    blocked = records_lib.foreign_files(_OUTPUT_DIR.value, summary_lib.summary_files())
    if blocked:
        raise ValueError(
            f"{', '.join(blocked)} exists and was not written by jaxdeconv; move it or give "
            "another --output_dir"
        )
    return cfg, kernel_size, manifest, paths, earlier


def main(argv):
    if len(argv) > 1:
        return _usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _INPUT.value:
        return _usage_error("--input is required (files, folders or globs)")
    logging.set_verbosity(logging.WARNING)
    try:
        shard = _shard()  # jax.distributed.initialize must come before any JAX work
        cfg, kernel_size, manifest, paths, earlier = _prepare()
        # Before JAX starts: one CPU device per core for this process's images (runtime).
        runtime.split_host_cpu(len(shards.select(paths, shard)))
    except (ValueError, OSError) as e:
        print(f"jaxdeconv: {e}", file=sys.stderr)
        return 2
    runtime.enable_compilation_cache()
    if shard.index:  # input specs matching nothing: reported once, by shard 0
        earlier = []
    for line in [r["error"] for r in earlier if r["status"] == "failed"] + inputs.skip_lines(
        earlier
    ):
        print(f"jaxdeconv: {line}", file=sys.stderr)
    try:
        records = _process(paths, cfg, kernel_size, manifest, earlier, shard)
    except folder_lock.FolderBusy as e:
        print(f"jaxdeconv: {e}", file=sys.stderr)
        return 2
    if shard.count > 1:
        merged = shards.try_merge(_OUTPUT_DIR.value, shard, order=paths)
        print(
            f"jaxdeconv: shard {shard.index} of {shard.count}: "
            + ("all shards done, merged into summary.json" if merged else "summary shard written")
        )
    failed = [r for r in records if r["status"] == "failed"]
    ok = sum(r["status"] == "ok" for r in records)
    skipped = [r for r in records if r["status"].startswith("skipped")]
    print(
        f"jaxdeconv: {ok} deblurred, {len(skipped)} skipped, {len(failed)} failed; outputs in "
        f"{os.path.abspath(_OUTPUT_DIR.value)}"
    )
    unmatched = inputs.unmatched_manifest_rows(manifest or {}, paths)
    if unmatched:
        print(f"  manifest rows naming no input: {', '.join(unmatched)}", file=sys.stderr)
    for line in inputs.skip_lines(skipped):
        print(f"  {line}", file=sys.stderr)
    for r in records:
        if r.get("warning"):
            print(f"  warning: {r['input']}: {r['warning']}", file=sys.stderr)
    for r in failed:
        print(f"  failed: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def _usage_error(text: str) -> int:
    print(f"jaxdeconv: {text} (see --help)", file=sys.stderr)
    return 2


def _process(paths, cfg, kernel_size, manifest, earlier, shard) -> list[dict]:
    return batch.process(
        paths,
        cfg,
        _OUTPUT_DIR.value,
        kernel_size=kernel_size,
        manifest=manifest,
        batch_size=_BATCH_SIZE.value,
        resume=_RESUME.value,
        quiet=_QUIET.value,
        earlier=earlier,
        summary_name=shards.summary_name(shard, ""),
        num_shards=shard.count,
        shard_index=shard.index,
        take_over_lock=_TAKE_OVER_LOCK.value,
    )


def run():
    """Console-script entry point."""
    # --help lists the key flags of the main module, which for a console script is the
    # wrapper file; make this module's flags key flags of it.
    for flag in flags.FLAGS.get_key_flags_for_module(sys.modules[__name__]):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=launch.parse_flags)


if __name__ == "__main__":
    run()
