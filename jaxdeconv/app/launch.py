"""Launcher bodies: what ``experiments/*.py`` and the ``jaxdeconv`` command call.

One override syntax for all of them: ``--config.FIELD=VALUE`` (or ``--set=FIELD=VALUE``),
applied by ``config.apply_overrides``, which refuses unknown fields and wrong types before any
work. ``parse_flags`` is the absl flags parser that turns the first form into the second.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import time
from collections.abc import Callable

import jax
import ml_collections
from absl import flags, logging

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline
from jaxdeconv.app import batch, image_io, inputs
from jaxdeconv.app import example as example_lib
from jaxdeconv.app import records as records_lib
from jaxdeconv.run import runtime

EXAMPLE_SIZE = 112
EXAMPLE_KERNEL_SIZE = 15
EXAMPLE_NOISE = 0.01
# The example's training steps (photos get the preset's own): on 3 seeds the fast preset
# gained +6.9 dB or more at 1000 steps on this 112 px scene, in under half the time of a
# 128 px, 2500-step run (README).
EXAMPLE_STEPS = 1000


class InputError(ValueError):
    """A bad input for ``deblur_one`` (the message names it); nothing was written."""


def parse_flags(argv: list[str]) -> list[str]:
    """``app.run(main, flags_parser=parse_flags)``: ``--config.FIELD=VALUE`` becomes
    ``--set=FIELD=VALUE`` (the program defines ``--set``), then absl parses as usual."""
    rewritten = [
        f"--set={arg.split('config.', 1)[1]}" if arg.startswith(("--config.", "-config.")) else arg
        for arg in argv[1:]
    ]
    try:
        return flags.FLAGS([argv[0], *rewritten])
    except SystemExit as e:
        # absl's help flags print the usage and exit 1; asked-for help is a success (0), and
        # 1 stays the command's "an image failed".
        asked = {"--help", "-help", "--helpfull", "-helpfull", "--helpshort", "-helpshort", "-?"}
        if e.code == 1 and asked & set(rewritten):
            sys.exit(0)
        raise
    except flags.Error as e:  # a usage error: one line, exit code 2, no help dump
        program = os.path.basename(argv[0])
        print(f"{program}: {e} (see --help)", file=sys.stderr)
        sys.exit(2)


def load_config(spec: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """A preset by name (``fast``, ``paper``, ``tiny``) or a config file's ``get_config()``
    (``FILE.py:ARG`` passes ``ARG``), with ``FIELD=VALUE`` overrides; raises ``ValueError``
    for an unknown preset, a missing file, an unknown field, a wrong type or a bad value."""
    path, _, arg = spec.partition(":") if not os.path.isfile(spec) else (spec, "", "")
    path, arg = _variant_file(path, arg)
    if spec in config_lib.PRESETS:
        cfg = config_lib.PRESETS[spec]()
    elif os.path.isfile(path):
        module_spec = importlib.util.spec_from_file_location("_jaxdeconv_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        cfg = module.get_config(arg) if arg else module.get_config()
    else:
        raise ValueError(
            f"--config={spec}: not a preset ({', '.join(config_lib.PRESETS)}) and no such file"
        )
    return prepare_config(cfg, overrides)


def _variant_file(path: str, arg: str) -> tuple[str, str]:
    """``configs/NAME.py[:BASE]`` for a variant NAME that has no file of its own (the variants
    are one file, ``configs/variant.py:NAME[:BASE]``): that file and its argument."""
    stem = os.path.splitext(os.path.basename(path))[0]
    shared = os.path.join(os.path.dirname(path), "variant.py")
    if not os.path.isfile(path) and path.endswith(".py") and os.path.isfile(shared):
        from jaxdeconv import variants

        if stem in variants.VARIANTS:
            return shared, f"{stem}:{arg}" if arg else stem
    return path, arg


def prepare_config(
    cfg: ml_collections.ConfigDict, overrides: list[str] = ()
) -> ml_collections.ConfigDict:
    """An unlocked copy of ``cfg`` with ``overrides`` applied and its values checked."""
    cfg = copy.deepcopy(cfg)  # keeps the types of unset fields, which to_dict() loses
    cfg.unlock()
    config_lib.apply_overrides(cfg, overrides)
    config_lib.check_values(cfg)
    return cfg


def sets_field(overrides: list[str], field: str) -> bool:
    """Whether ``FIELD=VALUE`` items (``--set``/``--config.FIELD``) set ``field``."""
    return any(str(item).partition("=")[0].strip() == field for item in overrides)


def deblur_one(
    config: ml_collections.ConfigDict,
    input_path: str | None,
    kernel_size: int | None,
    workdir: str,
    *,
    example_steps: int | None = None,
    spec=None,
    step: Callable | None = None,
) -> dict:
    """Deblurs ``input_path`` (or the built-in example) and writes outputs into ``workdir``.

    The built-in example trains ``example_steps`` steps (``None``: ``config.num_steps``;
    launchers pass ``None`` when the user set ``num_steps``). ``spec``, ``step``: the research
    hooks of ``pipeline.deblur_image`` (a run-spec builder ``spec(config, shape)`` or a
    ``RunSpec``, and a train step), for every network run."""
    start = time.perf_counter()
    runtime.enable_compilation_cache()
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy
    logging.info("JAX backend: %s, devices: %s", jax.default_backend(), jax.devices())
    if kernel_size is not None and (problem := batch.kernel_size_problem(kernel_size, (1e9, 1e9))):
        raise InputError(f"--kernel_size: {problem}")
    example = None
    if input_path is None:
        # The example's blur is --kernel_size when that is a number; with "auto" (flag or
        # config) the example keeps its own blur size and the estimate searches for it.
        k = kernel_size if isinstance(kernel_size, int) else EXAMPLE_KERNEL_SIZE
        example = example_lib.make(EXAMPLE_SIZE, k, noise=EXAMPLE_NOISE, seed=config.seed)
        blurry, name = example.blurry, "example"
        if example_steps is not None:
            config.num_steps = int(example_steps)
        if kernel_size is None and config.kernel_size != "auto":
            kernel_size = k
    else:
        problem = inputs.output_dir_problem(workdir, [], [input_path])
        if problem:
            raise InputError(problem.replace("--output_dir", "--workdir"))
        try:
            blurry = image_io.read_image(input_path)
        except image_io.ImageReadError as e:
            raise InputError(str(e)) from None
        name = os.path.splitext(os.path.basename(input_path))[0]
    if kernel_size is not None:
        config = pipeline.with_kernel_size(config, kernel_size)
    problem = batch.kernel_size_problem(config.kernel_size, blurry.shape)
    if problem:
        raise InputError(f"{input_path or 'example'}: {problem}")
    files = records_lib.output_files(name) + [f"{name}_run.json"]
    if example is not None:
        files += [f"{name}_blurry.png", f"{name}_sharp.png"]
    blocked = records_lib.foreign_files(workdir, files, [input_path] if input_path else [])
    if blocked:
        raise InputError(
            f"would replace {', '.join(blocked)}, which jaxdeconv did not write; move it or "
            "choose another --workdir"
        )
    # Recorded first, so these files are never taken for inputs or for the user's own.
    image_io.write_json(
        records_lib.record_path(workdir, name), {"input": input_path, "files": files}
    )
    print(
        f"Deblurring {input_path or 'the built-in example'}: compiling the training step first "
        "(up to a minute on a CPU; cached on disk for later runs)...",
        flush=True,
    )
    # key None: jax.random.key(config.seed), and recover.seeds' runs are those of seed + i.
    outputs = pipeline.deblur_image(blurry, config, key=None, spec=spec, step=step)
    paths = pipeline.save_outputs(
        workdir,
        name,
        outputs,
        blurry=blurry,
        true_kernel=None if example is None else example.kernel,
    )
    extra = {
        "input": input_path or "the built-in example (a street scene, camera shake, 1% noise)",
        "files": paths,
    }
    if example is not None:
        image_io.write_image(os.path.join(workdir, f"{name}_blurry.png"), example.blurry)
        image_io.write_image(os.path.join(workdir, f"{name}_sharp.png"), example.sharp)
        # Scored as the benchmarks are: after the best shift (blind deconvolution recovers the
        # scene up to a translation), borders excluded (metrics.aligned_psnr_ssim).
        from jaxdeconv.bench import metrics

        def scored(image):
            if min(example.sharp.shape[:2]) < 41:  # too small for the protocol's 15 px border
                return metrics.psnr(image, example.sharp)
            return metrics.aligned_psnr_ssim(image, example.sharp)["psnr"]

        extra["psnr_vs_sharp"] = {
            "blurry": scored(example.blurry),
            "network": scored(outputs.network),
            "deblurred": scored(outputs.deblurred),
        }
        extra["psnr_vs_sharp_unaligned"] = {
            "blurry": metrics.psnr(example.blurry, example.sharp),
            "deblurred": metrics.psnr(outputs.deblurred, example.sharp),
        }
        extra["kernel_similarity"] = metrics.kernel_similarity(outputs.kernel, example.kernel)
    facts = pipeline.run_facts(config, outputs, **extra)
    facts["seconds_total"] = round(time.perf_counter() - start, 1)
    image_io.write_json(os.path.join(workdir, f"{name}_run.json"), facts)
    print(
        f"Deblurred {extra['input']} in {facts['seconds_total']:.1f} s, compilation included "
        f"({config.num_steps} steps, K={config.kernel_size}, backend {facts['jax_backend']})."
    )
    if example is not None:
        p = extra["psnr_vs_sharp"]
        print(
            f"PSNR vs the sharp scene (after the best shift, as benchmarks score): blurry "
            f"{p['blurry']:.2f} dB, two-stage {p['deblurred']:.2f} dB "
            f"({p['deblurred'] - p['blurry']:+.2f} dB), network {p['network']:.2f} dB; kernel "
            f"similarity {extra['kernel_similarity']:.2f} (1: the true kernel)"
        )
        print(f"Look at {os.path.join(workdir, name + '_comparison.png')}")
    print(f"Outputs in {os.path.abspath(workdir)}:")
    for path in paths.values():
        print(f"  {path}")
    return facts
