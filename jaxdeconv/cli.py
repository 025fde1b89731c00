r"""The ``jaxdeconv`` command: blind deblurring of files, folders and globs.

  jaxdeconv --input=photos/ --output_dir=out/ --kernel_size=31
  jaxdeconv --input='shots/*.jpg' --output_dir=out/ --manifest=sizes.csv --resume

For each image NAME it writes NAME_deblurred.png (kernel estimated on the luminance, then
non-blind deconvolution of every channel), NAME_network.png, NAME_kernel.png/.npy and
NAME_uncertainty.png/.npy; for the run, summary.json and summary.csv. The exit code is 1 if
any image failed.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from jaxdeconv import batch, runtime
from jaxdeconv import config as config_lib

_INPUT = flags.DEFINE_list(
    "input", None, "Image files, folders (their image files) and glob patterns, comma-separated."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "deblurred", "Folder for the outputs.")
_KERNEL_SIZE = flags.DEFINE_integer(
    "kernel_size", None, "Odd blur kernel size K for every image (default: the preset's)."
)
_MANIFEST = flags.DEFINE_string(
    "manifest",
    None,
    "CSV with columns name,kernel_size giving a kernel size per image "
    "(name: the file name or its stem); overrides --kernel_size for those images.",
)
_CONFIG = flags.DEFINE_string(
    "config", "fast", "Preset name (fast, paper, tiny) or a path to a configs/*.py file."
)
_SET = flags.DEFINE_multi_string(
    "set", [], "Override a config field, e.g. --set=num_steps=2000 (repeatable)."
)
_SEED = flags.DEFINE_integer("seed", None, "Random seed (default: the preset's).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    None,
    "Images trained together with vmap (default: 8 on GPU/TPU, 1 on CPU).",
)
_RESUME = flags.DEFINE_bool("resume", False, "Skip images whose outputs are all present.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress output.")
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every",
    None,
    "Save an Orbax checkpoint every N steps (0: never; default: "
    "every 500 steps), so an interrupted run resumes where it stopped.",
)


def load_config(spec: str, overrides: list[str]):
    """A preset by name or a config file's ``get_config()``, with ``key=value`` overrides."""
    if spec in config_lib.PRESETS:
        cfg = config_lib.PRESETS[spec]()
    elif os.path.isfile(spec):
        import importlib.util

        module_spec = importlib.util.spec_from_file_location("_jaxdeconv_config", spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        cfg = module.get_config()
    else:
        raise ValueError(
            f"--config={spec}: not a preset ({', '.join(config_lib.PRESETS)}) and no such file"
        )
    for item in overrides:
        field, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set={item}: expected FIELD=VALUE")
        import ast

        node = cfg
        parts = field.split(".")
        for p in parts[:-1]:
            node = node[p]
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        node[parts[-1]] = parsed
    return cfg


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _INPUT.value:
        raise app.UsageError("--input is required (files, folders or globs)")
    logging.set_verbosity(logging.WARNING)
    runtime.enable_compilation_cache()
    try:
        cfg = load_config(_CONFIG.value, _SET.value)
        manifest = batch.read_manifest(_MANIFEST.value) if _MANIFEST.value else None
        batch.check_output_dir(_OUTPUT_DIR.value)
    except (ValueError, OSError) as e:
        print(f"jaxdeconv: {e}", file=sys.stderr)
        return 2
    if _SEED.value is not None:
        cfg.seed = _SEED.value
    cfg.checkpoint_every = 500 if _CHECKPOINT_EVERY.value is None else _CHECKPOINT_EVERY.value
    paths, failures = batch.collect_inputs(_INPUT.value)
    for f in failures:
        print(f"jaxdeconv: {f['input']}: {f['error']}", file=sys.stderr)
    records = batch.process(
        paths,
        cfg,
        _OUTPUT_DIR.value,
        kernel_size=_KERNEL_SIZE.value,
        manifest=manifest,
        batch_size=_BATCH_SIZE.value,
        resume=_RESUME.value,
        quiet=_QUIET.value,
    )
    records = failures + records
    if failures:
        batch.write_summary(_OUTPUT_DIR.value, records, cfg)
    failed = [r for r in records if r["status"] == "failed"]
    ok = sum(r["status"] == "ok" for r in records)
    skipped = sum(r["status"].startswith("skipped") for r in records)
    print(
        f"jaxdeconv: {ok} deblurred, {skipped} skipped, {len(failed)} failed; outputs in "
        f"{os.path.abspath(_OUTPUT_DIR.value)}"
    )
    for r in failed:
        print(f"  failed: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def run():
    """Console-script entry point."""
    # --help lists the key flags of the main module, which for a console script is the
    # wrapper file; make this module's flags key flags of it.
    for flag in flags.FLAGS.get_key_flags_for_module(sys.modules[__name__]):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)


if __name__ == "__main__":
    run()
