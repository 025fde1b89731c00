"""Launcher bodies: what ``experiments/*.py`` and the ``jaxdeconv`` command call.

The run configuration is an ``ml_collections.config_flags`` flag, as in Flax's examples and
big_vision: ``define_config_flag`` defines ``--config`` (a preset name such as ``fast``, or a
config file ``FILE.py`` / ``FILE.py:ARG`` whose ``get_config`` returns the ConfigDict) and
config_flags turns every ``--config.FIELD=VALUE`` into a typed flag of that field.
``--set=FIELD=VALUE`` is the same override under another spelling (the benchmark scripts use
it). ``parse_flags``, the launchers' absl flags parser, turns config_flags' errors into one
line and exit status 2 before any work: an unknown field names the closest ones, a value of the
wrong type names the type the field takes.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Sequence

import jax
import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline
from jaxdeconv.app import batch, image_io, inputs
from jaxdeconv.app import example as example_lib
from jaxdeconv.app import records as records_lib
from jaxdeconv.run import runtime

# The flags defined here belong to the program that calls define_config_flag (its --help lists
# them), not to this module.
flags.disclaim_key_flags()

EXAMPLE_SIZE = 112
EXAMPLE_KERNEL_SIZE = 15
EXAMPLE_NOISE = 0.01
# The example's training steps (photos get the preset's own): on 3 seeds the fast preset
# gained +6.9 dB or more at 1000 steps on this 112 px scene, in under half the time of a
# 128 px, 2500-step run (README).
EXAMPLE_STEPS = 1000

CONFIG_FLAG = "config"
# The command line parse_flags hands to absl; config_flags reads the --config.FIELD overrides
# from it (not from sys.argv, which holds the --set spelling).
_COMMAND_LINE: list[str] = []
_OVERRIDE = re.compile(rf"^--?(no)?{CONFIG_FLAG}\.([^=]+)(?:=(.*))?$", re.DOTALL)
_HELP = ("--help", "-help", "--helpfull", "-helpfull", "--helpshort", "-helpshort", "-?")


class InputError(ValueError):
    """A bad input for ``deblur_one`` (the message names it); nothing was written."""


class ConfigError(flags.Error):
    """A ``--config`` value or override no run can use (``parse_flags`` exits with status 2)."""


class _ConfigSource(flags.ArgumentParser):
    """Parses ``--config``'s value with :func:`read_config` and keeps a copy of what it read,
    before config_flags applies the overrides, for the checks after parsing."""

    def __init__(self, default: str):
        self.default = default
        self.loaded: ml_collections.ConfigDict | None = None
        self.unset: list[str] = []  # fields set to None (FIELD=None), applied after parsing

    def parse(self, argument):
        if isinstance(argument, ml_collections.ConfigDict):
            return argument
        try:
            cfg = read_config(argument)
        except ValueError as e:  # not absl's ValueError wrapping: the message is enough
            raise ConfigError(str(e)) from None
        cfg.unlock()  # as load_config's: a launcher may add a field for its run
        self.loaded = copy.deepcopy(cfg)
        return cfg

    def flag_type(self) -> str:
        return "config"


def define_config_flag(default: str, help_string: str) -> flags.FlagHolder:
    """Defines ``--config`` (``config_flags.DEFINE_config_file``, read by :func:`read_config`:
    a preset name or ``FILE.py[:ARG]``; ``default`` when not given) and ``--set``, and returns
    the holder whose ``.value`` is the run's ConfigDict once ``parse_flags`` has run. Overrides:
    ``--config.FIELD=VALUE`` or ``--set=FIELD=VALUE``."""
    holder = config_flags.DEFINE_config_file(
        CONFIG_FLAG,
        None,  # the default is added to the command line by parse_flags, so it parses late
        f"{help_string} Override any field with --config.FIELD=VALUE.",
        lock_config=False,
        sys_argv=_COMMAND_LINE,
    )
    flag = flags.FLAGS[CONFIG_FLAG]
    flag.parser = _ConfigSource(default)
    flag.default_as_str = repr(default)
    flags.DEFINE_multi_string(
        "set", [], "--set=FIELD=VALUE is --config.FIELD=VALUE under another name"
    )
    return holder


def parse_flags(argv: Sequence[str]) -> list[str]:
    """``app.run(main, flags_parser=parse_flags)``: absl's parser, with the config flag of
    :func:`define_config_flag` and a usage error as one line and exit status 2."""
    program = os.path.basename(argv[0])
    source = _config_source()
    try:
        args = list(argv[1:]) if source is None else _config_first(argv[1:], source)
    except ConfigError as e:
        _usage_exit(program, e)
    if source is not None:
        for name in [n for n in flags.FLAGS if n.startswith(f"{CONFIG_FLAG}.")]:
            delattr(flags.FLAGS, name)  # a field flag of an earlier parse (tests parse again)
        source.loaded = None
    _COMMAND_LINE[:] = [argv[0], *args]
    try:
        rest = flags.FLAGS([argv[0], *args])
        if source is not None:
            _finish_config(source)
    except SystemExit as e:
        # absl's help flags print the usage and exit 1; asked-for help is a success (0), and
        # 1 stays the command's "an image failed".
        if e.code == 1 and set(_HELP) & set(argv[1:]):
            sys.exit(0)
        raise
    except (flags.Error, ValueError, TypeError, KeyError, AttributeError) as e:
        problem = _config_problem(e, source)
        if problem is None and not isinstance(e, flags.Error):
            raise
        _usage_exit(program, problem or e)
    return rest


def _usage_exit(program: str, problem) -> None:
    print(f"{program}: {problem} (see --help)", file=sys.stderr)
    sys.exit(2)


def _config_source() -> _ConfigSource | None:
    """The parser of the program's config flag, if it has one (``define_config_flag``)."""
    flag = flags.FLAGS[CONFIG_FLAG] if CONFIG_FLAG in flags.FLAGS else None
    return flag.parser if flag is not None and isinstance(flag.parser, _ConfigSource) else None


def _config_first(args: Sequence[str], source: _ConfigSource) -> list[str]:
    """``args`` with ``--set=FIELD=VALUE`` spelled ``--config.FIELD=VALUE``, ``FIELD=None``
    held back (config_flags has no None for a typed field; ``_finish_config`` applies it) and
    the ``--config`` value first (config_flags reads only the overrides after it), the default
    one when none is given."""
    specs, rest, source.unset = [], [], []
    items = iter(args)
    for arg in items:
        if arg == "--":
            rest += [arg, *items]
            break
        name, eq, value = arg.lstrip("-").partition("=") if arg.startswith("-") else ("", "", "")
        if name in ("set", CONFIG_FLAG) and not eq:
            value, eq = next(items, ""), "="
        if name == CONFIG_FLAG:
            specs.append(f"--{CONFIG_FLAG}={value}")
            continue
        if name == "set":
            if "=" not in value:
                raise ConfigError(f"--set={value}: expected FIELD=VALUE, e.g. num_steps=2000")
            arg = f"--{CONFIG_FLAG}.{value}"
        match = _OVERRIDE.match(arg)
        if match and match.group(3) is not None and match.group(3).strip() == "None":
            source.unset.append(match.group(2))
            continue
        rest.append(arg)
    return (specs or [f"--{CONFIG_FLAG}={source.default}"]) + rest


def _overrides() -> list[tuple[str, str | None]]:
    """``(FIELD, VALUE text or None)`` of every ``--config.FIELD`` on the command line."""
    out, args = [], _COMMAND_LINE[1:]
    for i, arg in enumerate(args):
        if match := _OVERRIDE.match(arg):
            text = match.group(3)
            following = args[i + 1] if i + 1 < len(args) else "-"
            if text is None:  # --config.FIELD VALUE, or a bare boolean (--[no]config.FIELD)
                bare = match.group(1) or following.startswith("-")
                text = str(not match.group(1)) if bare else following
            out.append((match.group(2), text))
    return out


def _finish_config(source: _ConfigSource) -> None:
    """After config_flags: no group replaced whole, fields set to None, tuples held to the
    entry types the field had (an integer in a tuple of numbers becomes a float, so a config's
    fingerprint does not depend on the spelling), and the values every run needs
    (``config.check_values``); ``ConfigError`` naming the first problem."""
    cfg = flags.FLAGS[CONFIG_FLAG].value
    try:
        for field, value in config_flags.get_override_values(flags.FLAGS[CONFIG_FLAG]).items():
            before = _get(source.loaded, field)
            if isinstance(before, ml_collections.ConfigDict):
                raise ValueError(_group_problem(f"{field}={value}", field, before))
            if isinstance(before, tuple):
                checked = config_lib.apply_overrides(
                    copy.deepcopy(source.loaded), [f"{field}={tuple(value)!r}"]
                )
                _set(cfg, field, _get(checked, field))
        config_lib.apply_overrides(cfg, [f"{field}=None" for field in source.unset])
        config_lib.check_values(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _group_problem(item: str, field: str, group: ml_collections.ConfigDict) -> str:
    return (
        f"{item}: '{field}' is a group of fields; set one of them, e.g. "
        f"{field}.{sorted(group.keys())[0]}=..."
    )


def _get(cfg, field: str):
    for part in field.split("."):
        cfg = cfg.get(part) if isinstance(cfg, ml_collections.ConfigDict) else None
    return cfg


def _set(cfg: ml_collections.ConfigDict, field: str, value) -> None:
    *parents, leaf = field.split(".")
    for part in parents:
        cfg = cfg[part]
    cfg[leaf] = value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "True or False"}


def _config_problem(error: Exception, source: _ConfigSource | None) -> str | None:
    """config_flags' error about an override, in the words of ``config.apply_overrides``:
    an unknown field with the closest names, a group, or the type a field takes. None when
    ``error`` is about something else."""
    if source is None or source.loaded is None:
        return None
    loaded = source.loaded
    known = config_lib.field_names(loaded)
    for field, text in _overrides():
        item = f"{field}={text}"
        value = _get(loaded, field)
        if value is None and field not in known:
            close = difflib.get_close_matches(field, known, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            return f"{item}: unknown config field '{field}'{hint}"
        if isinstance(value, ml_collections.ConfigDict):
            return _group_problem(item, field, value)
        if str(error).startswith(f"flag --{CONFIG_FLAG}.{field}="):
            parent, _, leaf = field.rpartition(".")
            kind = (_get(loaded, parent) if parent else loaded).get_type(leaf)
            want = _TYPE_NAMES.get(kind, kind.__name__)
            return f"{item}: expects {want}, got {text!r}"
    return None


def read_config(spec: str) -> ml_collections.ConfigDict:
    """The config ``spec`` names, unchecked: a preset by name (``fast``, ``paper``, ``tiny``)
    or a config file's ``get_config()`` (``FILE.py:ARG`` passes ``ARG``); ``ValueError`` for
    an unknown preset or a missing file."""
    path, _, arg = spec.partition(":") if not os.path.isfile(spec) else (spec, "", "")
    if spec in config_lib.PRESETS:
        return config_lib.PRESETS[spec]()
    if not os.path.isfile(path):
        raise ValueError(
            f"--config={spec}: not a preset ({', '.join(config_lib.PRESETS)}) and no such file"
        )
    module_spec = importlib.util.spec_from_file_location("_jaxdeconv_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """:func:`read_config` with ``FIELD=VALUE`` overrides (``config.apply_overrides``), for
    code that builds a run's config without a command line; raises ``ValueError`` for an
    unknown preset, a missing file, an unknown field, a wrong type or a bad value."""
    return prepare_config(read_config(spec), overrides)


def prepare_config(
    cfg: ml_collections.ConfigDict, overrides: Sequence[str] = ()
) -> ml_collections.ConfigDict:
    """An unlocked copy of ``cfg`` with ``overrides`` applied and its values checked."""
    cfg = copy.deepcopy(cfg)  # keeps the types of unset fields, which to_dict() loses
    cfg.unlock()
    config_lib.apply_overrides(cfg, overrides)
    config_lib.check_values(cfg)
    return cfg


def overridden() -> set[str]:
    """The fields the command line set (``--config.FIELD`` / ``--set``), after ``parse_flags``."""
    fields = set(config_flags.get_override_values(flags.FLAGS[CONFIG_FLAG]))
    return fields | set(flags.FLAGS[CONFIG_FLAG].parser.unset)


def config_spec() -> str:
    """The ``--config`` value the run's config was read from (a preset name or a file)."""
    return config_flags.get_config_filename(flags.FLAGS[CONFIG_FLAG])


def config_name() -> str:
    """The run config's short name: the preset's, or the config file's without ``.py``."""
    return os.path.splitext(os.path.basename(config_spec().partition(":")[0]))[0]


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
    paths = image_io.save_outputs(
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
        from jaxdeconv.classical import metrics

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
