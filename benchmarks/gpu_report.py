r"""The faithful method (`paper` preset) at the paper's scale on one GPU in one prepared call:
first one question (issue 40: does `paper` do better with the options of the authors' code
base?), then where a step spends its time, then the other Levin images and the Lai photos with
the better config (issue 29; the precision and batch phases of issue 16 are still there, off
by default).

On the GPU machine, from the repository root (the wrapper installs what is missing there):

  bash benchmarks/gpu_report.sh          # writes into $OUT, else runs/gpu_report

On a CPU, end to end with tiny nets, 64 px crops and a few steps (what tests/test_gpu_report.py
runs, with a cheaper profile; a few minutes on a busy 2-core machine):

  python benchmarks/gpu_report.py --smoke --out=runs/gpu_smoke

Afterwards, on the CPU, score the returned arrays and write the docs-ready tables
(docs/levin_paper_gpu_results.csv, docs/lai_paper_gpu_results.csv and, with question files,
docs/levin_paper_gpu_question_results.csv):

  python benchmarks/score_gpu_results.py --results=<folder> --csv_dir=docs --out=<scores.md>

What travels: the device machine receives this repository only (not ../shared), and its
Python has jax, flax, optax, orbax, chex, numpy, scipy and pillow but not ml-collections. So
the images come from benchmarks/data (all 32 Levin images with their sharp images; 5 Lai
blurry_y images, one per category, without their sharp images: see the READMEs there) and
ml-collections from benchmarks/wheels/ml_collections-1.1.0-py3-none-any.whl (77 kB, pure
Python; its own needs, absl-py and PyYAML, are there). All are committed files, so the call
needs no ``carry``. gpu_report.sh installs the wheel with ``pip --no-index --target`` into
/tmp, the project with ``pip install --no-deps --no-build-isolation -e .`` (no index there)
and also puts both on PYTHONPATH, so a failed install does not stop the run.

Kernel sizes: with ``--levin_kernel_size`` 0 (the default), a Levin image's K follows
``--levin_convention`` (``jaxdeconv.bench.protocol.benchmark_kernel_size``): 'published' (the
default) estimates the published Levin sizes, kernels 1-8: 17, 15, 13, 27, 11, 19, 21, 21 px;
'full' the true kernel's grid, 19, 17, 15, 27, 13, 21, 23, 23. Lai's are always full (31 px).
Every npz's meta and the report record ``kernel_size_convention``.

Phases, in this order. Each runs inside try/except: an error is recorded in the report and
the next phase runs. report.json and report.md are rewritten after every phase, every profile
row and every batch of images, and each group's arrays are saved as soon as a batch of its
images is done, so a call cut off at its time limit still returns what it had.

1. environment: device, driver and CUDA (nvidia-smi), Python and package versions.
2. data: the question's Levin images, the levin phase's and the Lai images (centre crops in
   --smoke), grouped by (shape, K): by default the question's 8 Levin images with 23 px
   kernels in one group (K = 21, published), the other 24 Levin images in 6 groups of 4
   (K = 17, 15, 13, 27, 11, 19), Lai 5 groups of one image (31 px, smallest image first: text,
   saturated, natural, manmade, people).
3. question (issue 40; ``--question_images``, default the 8 K = 23 images, empty: skipped):
   the images whole, ``num_steps`` = 5000 steps, as one vmapped group, at
   ``--question_precision`` ('float32'), once per config: (a) the `paper` preset as is, (b)
   `paper` plus the code base's options (``LINEAGE``: 1 - SSIM after step 1000, both rates
   halved at 40/60/80 %, PyTorch's initialisation, the joint scheme; ``--question_b`` replaces
   them). Each config has its own specs and compiled steps and an even share of
   ``--question_budget_s`` (470 s): config i runs until start + (i + 1) * budget / n, planned
   like every group (below), so a config finishes the most images its share allows. Files
   ``levin_<precision>_<H>x<W>_k<K>_q<label>.npz`` (meta: ``question``, its overrides,
   ``kernel_size_convention``, ``precision``). Then the two-stage images computed on the way
   are scored against the sharp images (``metrics.aligned_psnr_ssim``, the crop box applied):
   the better config is the one with the higher mean two-stage PSNR over the images that
   every config finished (all steps); with nothing to compare, 'a'. Every later phase runs
   with the better config's overrides (``after_question`` in the report).
4. profile (``--profile_budget_s``, 60 s): the parts of one step for one ``--size``
   (255) image with K = ``--kernel_size`` (27), each jitted alone, warm-up excluded,
   ``--timed_steps`` (20) calls ended by block_until_ready: the blur and its kernel gradient
   (direct vs FFT), the input noise and dropout masks (threefry2x32 vs rbg vs unsafe_rbg),
   the kernel net, the Adam updates, the image net forward and forward + backward (per PRNG),
   the image net vmapped over ``--profile_batch`` (4) images, and, time allowing, whole steps
   (blur method, PRNG). Cheapest first; a part the time left cannot cover is recorded as
   skipped (benchmarks/gpu_profile.py). Its whole step, when measured, is the runs' latest
   estimate.
5. precision (issue 16; ``--precisions``, none by default): s/step, GFLOP/step and compile
   time per ``jax.default_matmul_precision`` setting. A setting that lowers to the same
   program as one measured before is recorded as such and not compiled again. 'float32'
   gives every convolution HIGHEST (true FP32), 'tensorfloat32' HIGH; 'bfloat16', the
   dot-algorithm names and no setting ('default') all give DEFAULT (TF32 on an H100/H200).
6. batch (issue 16; ``--batches``, none by default): B images in one vmapped step at the first
   Levin group's shape and K; the compiled steps are kept for the runs.
7. levin: ``--levin_images`` (default the 24 not in the question), ``num_steps`` steps, whole
   images, at ``--levin_precision`` ('default': what the library does on a GPU out of the
   box), group by group (one compile each, about 45-50 s on an H100), each group's images in
   vmapped batches of up to ``--max_batch`` (8), as ``jaxdeconv.deblur_batch`` trains them.
   The network's kernel and image are kept, and the two-stage image (the protocol's non-blind
   step with that kernel: ``evaluate.nonblind_deconv``, hyper-Laplacian; outlier-robust for
   Lai's 'saturated') is computed there too. Then, time allowing, the first finished group
   again at each ``--check_precisions`` (none by default).
8. lai: the same for the Lai images (luminance ``blurry_y``, 31 px kernels), until the
   deadline.

One compressed ``<dataset>_<precision>_<H>x<W>_k<K>[_q<label>].npz`` per group: names, kernels
[n, K, K], network images [n, H, W, 1], two-stage images, loss curves, crop boxes, steps done
and the run's facts (JSON string ``meta``: dataset, config, overrides, kernel size convention,
device, versions, batch times).

Time: ``--deadline_s`` (510 s after start) bounds the whole script: no measurement starts that
the times measured so far say cannot finish before it. Each group is planned
(``run_dataset``): the batch size (its own or a smaller power of two) that finishes the most
of its images in the time left; a group of which no image can finish is skipped and the next
is tried. Before this call measured anything, the question's first plan takes ``step_guess``
(an H100's B = 4 step, 34.9 ms at 255 px) as measured; without it (``step_guess={}``, as in
--smoke) a group runs until done or the deadline (it stops at a log point, saves what it has,
and ``steps_done`` records it). What runs out first: on an H100 one config of 8 images at
float32 takes roughly 5000 x ~50 ms + ~50 s compile, about 300 s, so the two configs do not
both finish 8 images in the 470 s of one call; the even split then gives each its largest
batch that fits (by the guess, 2 images at B = 2 for 'a' in its 235 s; 'b' plans with a's
measured step and has what 'a' left, so it may finish more; the answer compares the images
both finished). The profile gets what the question leaves (about 30 s), and the levin and lai
phases are recorded as skipped ("does not fit") unless the GPU is much faster than that.
Later calls continue with ``--question_images`` (the K = 23 images not yet compared) or, with
``--question_images=`` and the better config as ``--overrides``, ``--levin_images`` and
``--lai_images`` (the scorer adds files up). The wrapper's installs take a few seconds more;
give the device call ``timeout_s=590``: should something hang, what was saved still comes back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script, with or without the project installed
    sys.path.insert(0, REPO)
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the profile phase's module beside this file
    sys.path.insert(0, _HERE)

import gpu_profile  # noqa: E402

# The 8 images with 23 px kernels (issue 16: where `fast` fails most).
LEVIN_K23 = tuple(f"im{i}_kernel{j}" for i in (1, 2, 3, 4) for j in (7, 8))
# All 32, one group per kernel size; the K = 23 group (8 images, scored on an H100 before:
# docs/levin_paper_gpu_k23_results.csv) last, so that a cut-off call adds new images first.
LEVIN_32 = tuple(f"im{i}_kernel{j}" for j in (1, 2, 3, 4, 5, 6) for i in (1, 2, 3, 4)) + LEVIN_K23
# The other 24: the levin phase's default (the question phase runs LEVIN_K23).
LEVIN_24 = tuple(n for n in LEVIN_32 if n not in LEVIN_K23)
# The options of the authors' code base that are config values (jaxdeconv.variants 'lineage' at
# 5000 steps; docs/fidelity.md): 1 - SSIM as the data term after step 1000, both rates halved
# at 40, 60 and 80 % of the run, PyTorch's initialisation, both networks updated together.
LINEAGE = {
    "ssim_after": 1000,
    "optim.decay_boundaries": (0.4, 0.6, 0.8),
    "optim.decay_factor": 0.5,
    "param_init": "pytorch",
    "scheme": "joint",
}
# An H100's measured step (docs/gpu/h100_2026-11-27_call2.md: `paper`, B = 4 images of 255 px,
# K = 23, precision 'default': 34.9 ms): the question's first plan, before this call measured any.
H100_STEP = dict(batch=4, step_s=0.0349, pixels=(255 + 23 - 1) ** 2)
# One Lai image per category (benchmarks/data/lai), kernel_01 (31 px), smallest first.
LAI_5 = (
    "text_05_kernel_01",
    "saturated_03_kernel_01",
    "natural_03_kernel_01",
    "manmade_03_kernel_01",
    "people_03_kernel_01",
)
# Precision settings the precision phase can time (--precisions; none by default): 'bfloat16'
# lowers to the same convolutions as 'default' and costs no compile.
PRECISIONS = ("default", "float32", "tensorfloat32", "bfloat16")

# Nominal dense peaks in TFLOP/s from NVIDIA's datasheets (the "with sparsity" figures halved):
# FP32 on CUDA cores, TF32 and BF16 on tensor cores. First match on the device name wins.
NOMINAL_PEAKS = (
    ("H100 PCIe", {"float32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"float32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("H200", {"float32": 66.9, "tf32": 494.7, "bf16": 989.4}),
)
# The arithmetic a precision setting gets from a convolution on those GPUs (see the docstring).
_PEAK_CLASS = {"float32": "float32", "highest": "float32"}


@dataclasses.dataclass
class Settings:
    """Everything one report run does. ``smoke_settings()`` gives the tiny CPU variant."""

    preset: str = "paper"
    overrides: dict = dataclasses.field(default_factory=dict)  # 'a.b': value, on the preset
    num_steps: int = 5000  # steps per image (the runs; images/min extrapolation)
    size: int = 255  # profile and precision phases: image side
    kernel_size: int = 27  # profile and precision phases: K
    profile_batch: int = 4  # profile: the vmapped image net's batch (the Levin groups' B)
    profile_steps: int = 4  # profile: whole-step variants to try (each a full compile)
    profile_parts: tuple = ()  # profile: only these parts (gpu_profile.parts; () all)
    precisions: tuple = ()  # precision phase (issue 16): off by default
    timed_steps: int = 20
    batches: tuple = ()  # batch phase (issue 16): off by default; the runs compile their own
    max_batch: int = 8  # the runs' largest batch (one group's images, at most this many)
    levin_data: str = os.path.join(REPO, "benchmarks", "data")
    levin_images: tuple = LEVIN_24  # the question phase runs the other 8 (LEVIN_K23)
    levin_crop: int = 0  # centre crop side for the Levin images (0: whole image)
    levin_kernel_size: int = 0  # 0: by levin_convention
    levin_convention: str = "published"  # 'published' (21 px for 23 px kernels) or 'full'
    # The question phase (issue 40): each config (overrides on top of ``overrides``) on these
    # Levin images, one after the other, config i until start + (i + 1) * budget / n.
    question_images: tuple = LEVIN_K23
    question_precision: str = "float32"
    question_configs: dict = dataclasses.field(
        default_factory=lambda: {"a": {}, "b": dict(LINEAGE)}
    )
    question_budget_s: float = 470.0
    step_guess: dict = dataclasses.field(default_factory=lambda: dict(H100_STEP))  # {}: none
    lai_data: str = os.path.join(REPO, "benchmarks", "data")
    lai_images: tuple = LAI_5
    lai_crop: int = 0
    lai_kernel_size: int = 0
    levin_precision: str = "default"  # the runs' precision setting (Levin and Lai)
    prng_impl: str = ""  # the runs' PRNG ('': JAX's default, threefry2x32; or 'rbg', ...)
    check_precisions: tuple = ()  # Levin reruns of the first finished group, in time
    deadline_s: float = 510.0
    profile_budget_s: float = 60.0
    levin_budget_s: float = 510.0  # the rest of the deadline goes to Lai
    precision_budget_s: float = 120.0
    batch_budget_s: float = 100.0
    compile_guess_s: float = 60.0  # assumed compile time before one was measured
    save_reserve_s: float = 15.0  # kept free at the end of a run for saving
    seed: int = 0
    smoke: bool = False


def smoke_settings(**changes) -> Settings:
    """Tiny nets, 48-64 px crops, a few steps: the whole chain on a CPU in a minute."""
    s = Settings(
        preset="tiny",
        overrides={
            "num_draws": 1,
            "scheme": "joint",  # half the program of 'alternating': quicker compiles
            "image_net.channels": (8,),
            "image_net.skip_channels": (4,),
            "kernel_net.hidden": 32,
            "log_every": 4,
        },
        num_steps=12,
        size=48,
        kernel_size=5,
        profile_batch=2,
        profile_steps=1,
        precisions=("default", "float32", "bfloat16"),
        timed_steps=2,
        batches=(2,),
        max_batch=2,
        # The question: two 23 px kernels, estimated at 21 px (published), both configs.
        question_images=("im1_kernel7", "im1_kernel8"),
        question_configs={
            "a": {},
            "b": {
                "ssim_after": 6,
                "optim.decay_boundaries": (0.4, 0.6, 0.8),
                "param_init": "pytorch",
            },
        },
        question_precision="float32",
        question_budget_s=300.0,
        step_guess={},  # an H100's step time says nothing about a CPU
        # Then one group: K = 11 (kernel 5's published size), one image.
        levin_images=("im1_kernel5",),
        levin_crop=64,
        lai_images=LAI_5[:2],
        lai_crop=64,
        check_precisions=(),
        deadline_s=600.0,
        profile_budget_s=200.0,
        levin_budget_s=300.0,
        precision_budget_s=200.0,
        batch_budget_s=200.0,
        compile_guess_s=5.0,
        save_reserve_s=2.0,
        smoke=True,
    )
    return dataclasses.replace(s, **changes)


# ----------------------------------------------------------------------------------------------
# Bookkeeping: clock, report, phases.


class Clock:
    """Seconds since the start, and the time left before the deadline."""

    def __init__(self, deadline_s: float):
        self.t0 = time.perf_counter()
        self.deadline_s = deadline_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.deadline_s - self.elapsed()


def _log(msg: str) -> None:
    print(msg, flush=True)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return str(x)


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Report:
    """report.json (everything) and report.md (tables), rewritten on every ``save``."""

    def __init__(self, out_dir: str, settings: Settings):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.data = {
            "script": "benchmarks/gpu_report.py",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": dataclasses.asdict(settings),
            "phases": {},
        }

    def phase(self, name: str) -> dict:
        return self.data["phases"].setdefault(name, {"status": "pending"})

    def save(self) -> None:
        self.data["saved"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = json.dumps(_jsonable(self.data), indent=1)
        _atomic_write(os.path.join(self.out_dir, "report.json"), text.encode())
        try:
            md = markdown(self.data)
        except Exception as e:  # noqa: BLE001 - the JSON is what matters
            md = f"(markdown failed: {type(e).__name__}: {e})\n"
        _atomic_write(os.path.join(self.out_dir, "report.md"), md.encode())


@contextlib.contextmanager
def phase(report: Report, name: str, clock: Clock) -> Iterator[dict]:
    """Runs the body as one phase: status, error and seconds go into the report, which is saved
    before and after; an exception is recorded and swallowed so that the next phase runs."""
    entry = report.phase(name)
    entry.update(status="running", started_s=round(clock.elapsed(), 1))
    report.save()
    _log(f"== {name} (t = {clock.elapsed():.0f} s)")
    t0 = time.perf_counter()
    try:
        yield entry
    except Exception as e:  # noqa: BLE001 - one failing phase must not stop the others
        entry["status"] = "error"
        entry["error"] = f"{type(e).__name__}: {e}"[:2000]
        entry["traceback"] = traceback.format_exc()[-6000:]
        _log(f"!! {name} failed: {entry['error']}")
    else:
        if entry["status"] == "running":
            entry["status"] = "ok"
    finally:
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report.save()


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:2000]


# ----------------------------------------------------------------------------------------------
# JAX helpers.


@contextlib.contextmanager
def matmul_precision(name: str | None) -> Iterator[None]:
    """``jax.default_matmul_precision(name)``; None or 'default' leave JAX's default."""
    if name in (None, "", "default"):
        yield
        return
    import jax

    ctx = getattr(jax, "default_matmul_precision", None)
    if ctx is not None:
        with ctx(name):
            yield
        return
    old = jax.config.jax_default_matmul_precision  # older spelling kept as a fallback
    jax.config.update("jax_default_matmul_precision", name)
    try:
        yield
    finally:
        jax.config.update("jax_default_matmul_precision", old)


def _set_field(cfg, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        node = getattr(node, p)
    setattr(node, leaf, value)


def make_config(s: Settings, kernel_size: int):
    """The preset with the settings' overrides, ``num_steps`` and ``kernel_size``."""
    from jaxdeconv import config as config_lib

    cfg = config_lib.PRESETS[s.preset]()
    for key, value in s.overrides.items():
        _set_field(cfg, key, value)
    cfg.kernel_size = int(kernel_size)
    cfg.num_steps = int(s.num_steps)
    cfg.seed = int(s.seed)
    return cfg


def _gflop(program) -> float:
    """GFLOP of a lowered or compiled program by XLA's cost analysis (nan if unavailable).

    Count the lowered program: on a GPU the compiled program's cuDNN convolutions are custom
    calls that the cost analysis skips (an H100 reported 5.5 GFLOP for the `paper` step that
    the lowered program and the CPU's compiled one count at about 200)."""
    try:
        cost = program.cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        return float(cost.get("flops", float("nan"))) / 1e9
    except Exception:  # noqa: BLE001 - optional information
        return float("nan")


def _memory(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
        names = ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
        return {n.replace("_in_bytes", "_mb"): round(getattr(m, n) / 2**20, 1) for n in names}
    except Exception:  # noqa: BLE001 - optional information
        return {}


_PRECISION_ATTR = re.compile(r"#stablehlo<precision (\w+)>")


def _lower(jitted, *args) -> tuple:
    """Lowers; returns (lowered, seconds, fingerprint of the program, precision attributes)."""
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    text = lowered.as_text()
    seconds = time.perf_counter() - t0
    attrs: dict[str, int] = {}
    for a in _PRECISION_ATTR.findall(text):
        attrs[a] = attrs.get(a, 0) + 1
    return lowered, seconds, hashlib.sha1(text.encode()).hexdigest()[:16], attrs


def _time_steps(compiled, state, y, key, n: int) -> tuple:
    """Two warm-up calls, then ``n`` timed ones. Returns (state, first call s, s/step)."""
    import jax

    t0 = time.perf_counter()
    state, m = compiled(state, y, key)
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    state, m = compiled(state, y, key)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(n):
        state, m = compiled(state, y, key)
    jax.block_until_ready(m)
    return state, first, (time.perf_counter() - t0) / max(n, 1)


def _device_kind() -> str:
    import jax

    return jax.devices()[0].device_kind


def nominal_peak(device_kind: str, precision: str | None) -> float | None:
    """TFLOP/s a convolution at this precision setting can reach on this card, if known."""
    import jax

    if jax.default_backend() != "gpu":
        return None
    for name, peaks in NOMINAL_PEAKS:
        if name.lower() in device_kind.lower():
            return peaks[_PEAK_CLASS.get(str(precision).lower(), "tf32")]
    return None


# ----------------------------------------------------------------------------------------------
# Phases.


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in (
        "jax",
        "jaxlib",
        "jax-cuda13-plugin",
        "jax-cuda12-plugin",
        "flax",
        "optax",
        "chex",
        "orbax-checkpoint",
        "ml-collections",
        "numpy",
        "scipy",
        "jaxdeconv",
    ):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _run_cmd(cmd: Sequence[str], timeout: float = 30.0) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return _error(e)


def phase_environment(entry: dict) -> None:
    import jax

    entry["versions"] = _versions()
    entry["platform"] = platform.platform()
    entry["cpu_count"] = os.cpu_count()
    entry["backend"] = jax.default_backend()
    devs = jax.devices()
    entry["devices"] = [str(d) for d in devs]
    entry["device_kind"] = devs[0].device_kind
    try:
        entry["platform_version"] = devs[0].client.platform_version
    except Exception:  # noqa: BLE001 - optional information
        pass
    entry["nvidia_smi"] = _run_cmd(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
            "--format=csv",
        ]
    )
    entry["nvidia_smi_header"] = "\n".join(_run_cmd(["nvidia-smi"]).splitlines()[:4])
    entry["git_commit"] = _run_cmd(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], 10)
    entry["env"] = {
        k: v for k, v in os.environ.items() if k.startswith(("XLA_", "JAX_", "CUDA_VISIBLE"))
    }
    for k in ("versions", "device_kind", "backend", "nvidia_smi"):
        _log(f"{k}: {entry[k]}")


def _file_entry(dataset: str, name: str) -> tuple[str, str, str]:
    """(blurry file, kernel file, category) of a benchmark image, relative to its folder."""
    if dataset == "levin":
        m = re.fullmatch(r"im(\d+)_kernel(\d+)", name)
        if m:
            return f"blurry/{name}.png", f"kernels/kernel{m.group(2)}.npy", f"kernel{m.group(2)}"
    elif dataset == "lai":
        m = re.fullmatch(r"([A-Za-z]+)_(\d+)_kernel_(\d+)", name)
        if m:
            return f"blurry_y/{name}.png", f"kernels/kernel_{m.group(3)}.npy", m.group(1)
    raise ValueError(f"not a {dataset} image name: {name!r}")


def load_items(
    dataset: str,
    root: str,
    names: Sequence[str],
    crop: int,
    kernel_size: int,
    convention: str = "full",
):
    """The blurry images of ``dataset`` (``'levin'``/``'lai'``) under ``root``, as dicts (name,
    category, blurry [H, W, 1] float32, kernel_size, true_kernel_size, kernel_size_convention,
    crop box), in the order of ``names``.

    ``kernel_size`` is the size to estimate; 0: the benchmark's size for the true kernel under
    ``convention`` (``jaxdeconv.bench.protocol.benchmark_kernel_size``: ``'full'``, the true
    kernel's grid; ``'published'``, Levin's published sizes, 21 px for the 23 px kernels), and
    ``kernel_size_convention`` records which (``'explicit'`` for a size given here).

    Only the blurry file and the kernel's size are read (the sharp images do not travel to the
    device for Lai: benchmarks/data/lai/README.md); they load as ``jaxdeconv.bench.datasets`` loads
    them (``read_gray``: 8-bit / 255, luminance for colour)."""
    from jaxdeconv.bench import datasets, protocol

    folder = os.path.join(root, dataset)
    out = []
    for name in names:
        blurry_file, kernel_file, category = _file_entry(dataset, name)
        image = datasets.read_gray(os.path.join(folder, blurry_file))
        true_k = int(np.load(os.path.join(folder, kernel_file), mmap_mode="r").shape[0])
        kernel_name = os.path.splitext(os.path.basename(kernel_file))[0]
        size = protocol.benchmark_kernel_size(dataset, kernel_name, true_k, convention)
        h, w = image.shape[:2]
        if crop:
            ch, cw = min(crop, h), min(crop, w)
            box = ((h - ch) // 2, (w - cw) // 2, ch, cw)
        else:
            box = (0, 0, h, w)
        t, left, bh, bw = box
        out.append(
            dict(
                name=name,
                category=category,
                blurry=np.asarray(image[t : t + bh, left : left + bw], np.float32),
                kernel_size=int(kernel_size or size),
                true_kernel_size=true_k,
                kernel_size_convention="explicit" if kernel_size else convention,
                box=box,
            )
        )
    return out


def phase_data(entry: dict, s: Settings, ctx: dict) -> None:
    """Loads the question's, the levin phase's and the Lai images into ``ctx`` (keys
    'question', 'levin', 'lai'); Levin's kernel sizes by ``levin_convention``, Lai's full."""
    lev = (s.levin_data, s.levin_crop, s.levin_kernel_size, s.levin_convention)
    for key, dataset, names, (root, crop, k, convention) in (
        ("question", "levin", s.question_images, lev),
        ("levin", "levin", s.levin_images, lev),
        ("lai", "lai", s.lai_images, (s.lai_data, s.lai_crop, s.lai_kernel_size, "full")),
    ):
        try:
            items = load_items(dataset, root, names, crop, k, convention)
        except Exception as e:  # noqa: BLE001 - the other images may still load
            entry[key] = dict(error=_error(e))
            entry["error"] = f"{key}: {_error(e)}"
            continue
        ctx[key] = items
        groups = _groups(items)
        entry[key] = dict(
            names=[it["name"] for it in items],
            groups=[dict(shape=list(g[0]), kernel_size=g[1], n=len(m)) for g, m in groups],
            true_kernel_sizes={it["name"]: it["true_kernel_size"] for it in items},
            kernel_size_convention="explicit" if k else convention,
            crop=crop or None,
        )
        sizes = [g[1] for g, _ in groups]
        _log(f"{key}: {len(items)} images in {len(groups)} groups (shape, K = {sizes})")


def _groups(items: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """The items by (shape, kernel size), in the order of their first image: one compiled
    batched step per group."""
    out: dict[tuple, list[dict]] = {}
    for it in items:
        out.setdefault((tuple(it["blurry"].shape), it["kernel_size"]), []).append(it)
    return list(out.items())


def _model(s: Settings, ctx: dict, shape: tuple, k: int) -> dict:
    """The config, spec and jitted batched init for one (shape, kernel size), built once and
    shared by the batch phase and the runs (one spec object: jitted functions are reused)."""
    specs = ctx.setdefault("specs", {})
    if (shape, k) not in specs:
        import jax

        from jaxdeconv.core import train

        cfg = make_config(s, k)
        spec = train.build_spec(cfg, shape)
        # Parameter initialisation does not depend on the precision setting (only the
        # discarded forward pass of ``init`` does), so one compiled init serves every group.
        init = jax.jit(jax.vmap(functools.partial(train.init_state, spec)))
        specs[(shape, k)] = dict(cfg=cfg, spec=spec, init=init, shape=shape, kernel_size=k)
    return specs[(shape, k)]


def _first_shape(s: Settings, ctx: dict) -> tuple[tuple, int]:
    """(shape, K) of the first Levin group (the batch phase times that one)."""
    if ctx.get("levin"):
        return _groups(ctx["levin"])[0][0]
    side = s.levin_crop or 255
    return (side, side, 1), s.levin_kernel_size or 23


def _batched_step(spec):
    """``step(states, ys, keys)`` for a batch: the whole per-image step vmapped, jitted, the
    states donated (as ``jaxdeconv.deblur_batch`` trains)."""
    import jax

    from jaxdeconv.core import train

    return jax.jit(jax.vmap(functools.partial(train.train_step, spec)), donate_argnums=0)


def _key(s: Settings, seed: int):
    """``jax.random.key(seed)`` with the settings' PRNG implementation."""
    import jax

    return jax.random.key(seed, impl=s.prng_impl or None)


def phase_profile(entry: dict, s: Settings, clock: Clock, report: Report, ctx: dict) -> None:
    """The parts of one step (benchmarks/gpu_profile.py), within ``profile_budget_s``."""
    if s.profile_budget_s <= 0:
        entry["status"] = "skipped: no profile budget"
        return
    end = min(clock.elapsed() + s.profile_budget_s, s.deadline_s)
    cfg = make_config(s, s.kernel_size)
    shape = (s.size, s.size, 1)
    entry.update(
        preset=s.preset,
        overrides=s.overrides,
        shape=list(shape),
        kernel_size=s.kernel_size,
        timed=s.timed_steps,
        batch=s.profile_batch,
        end_s=round(end, 1),
        rows=[],
    )
    gpu_profile.run_profile(
        cfg,
        shape,
        s.profile_batch,
        s.timed_steps,
        lambda: end - clock.elapsed(),
        _log,
        on_row=lambda row: report.save(),
        compile_guess_s=s.compile_guess_s,
        steps=s.profile_steps,
        rows=entry["rows"],
        only=tuple(s.profile_parts),
    )
    # The whole step at JAX's default PRNG and the config's blur method: the runs' first
    # estimate (compile time and step time), until a run measures its own.
    base = next((r for r in entry["rows"] if r["part"] == "train_step"), None)
    if base and base.get("status") == "ok" and not s.prng_impl:
        ctx.setdefault("compile_times", []).append(base["compile_s"])
        ctx.setdefault("measured", []).append(
            dict(batch=1, step_s=base["ms"] / 1e3, pixels=_pixels(shape, s.kernel_size))
        )


def _skip_reason(clock: Clock, end: float, needed: float) -> str | None:
    left = end - clock.elapsed()
    if needed <= left:
        return None
    return f"skipped: about {needed:.0f} s needed, {max(left, 0):.0f} s left in the phase"


def phase_precision(entry: dict, s: Settings, clock: Clock, report: Report) -> None:
    import jax
    import jax.numpy as jnp

    from jaxdeconv.core import train

    rows = entry.setdefault("rows", [])
    if not s.precisions:
        entry["status"] = "skipped: no precision settings asked for"
        return
    end = min(clock.elapsed() + s.precision_budget_s, s.deadline_s)
    cfg = make_config(s, s.kernel_size)
    shape = (s.size, s.size, 1)
    entry.update(preset=s.preset, size=s.size, kernel_size=s.kernel_size)
    y = jnp.asarray(np.random.default_rng(0).uniform(size=shape), jnp.float32)
    key = jax.random.key(1)
    spec = train.build_spec(cfg, shape)
    t0 = time.perf_counter()
    state0 = jax.jit(functools.partial(train.init_state, spec))(jax.random.key(0))
    jax.block_until_ready(state0)
    entry["init_s"] = round(time.perf_counter() - t0, 2)
    kind = _device_kind()
    seen: dict[str, str] = {}
    lower_s, compile_s, step_s = 5.0, s.compile_guess_s, 0.0
    for name in s.precisions:
        row: dict = {"precision": name}
        rows.append(row)
        try:
            skip = _skip_reason(clock, end, lower_s + 2.0) if rows[:-1] else None
            if skip:
                row["status"] = skip
                continue
            with matmul_precision(name):
                step = jax.jit(functools.partial(train.train_step, spec), donate_argnums=0)
                lowered, lower_s, fingerprint, attrs = _lower(step, state0, y, key)
            row.update(lower_s=round(lower_s, 2), precision_attrs=attrs, program=fingerprint)
            if fingerprint in seen:
                row["status"] = f"same program as '{seen[fingerprint]}': not compiled again"
                _log(f"precision {name}: {row['status']}")
                continue
            needed = compile_s + (s.timed_steps + 2) * step_s + 2.0
            skip = _skip_reason(clock, end, needed) if len(seen) else None
            if skip:
                row["status"] = skip
                continue
            seen[fingerprint] = name
            t0 = time.perf_counter()
            compiled = lowered.compile()
            row["compile_s"] = round(time.perf_counter() - t0, 2)
            gflop = _gflop(lowered)
            state = jax.tree_util.tree_map(jnp.copy, state0)  # the step donates its state
            state, first, per_step = _time_steps(compiled, state, y, key, s.timed_steps)
            peak = nominal_peak(kind, name)
            row.update(
                status="ok",
                first_call_s=round(first, 3),
                step_s=per_step,
                gflop_per_step=gflop,
                gflop_compiled=_gflop(compiled),
                gflops=gflop / per_step,
                peak_tflops=peak,
                pct_of_peak=(100 * gflop / per_step / (1e3 * peak)) if peak else None,
                s_per_image=row["compile_s"] + s.num_steps * per_step,
                memory=_memory(compiled),
            )
            compile_s, step_s = row["compile_s"], per_step
            _log(
                f"precision {name}: compile {row['compile_s']:.1f} s, {per_step * 1e3:.2f} "
                f"ms/step, {gflop:.1f} GFLOP/step, {gflop / per_step:.0f} GFLOP/s, attrs {attrs}"
            )
            del compiled, state
        except Exception as e:  # noqa: BLE001 - one setting failing must not stop the others
            row.update(status="error", error=_error(e))
            _log(f"precision {name}: {row['error']}")
        finally:
            report.save()


def phase_batch(entry: dict, s: Settings, clock: Clock, report: Report, ctx: dict) -> None:
    import jax
    import jax.numpy as jnp

    end = min(clock.elapsed() + s.batch_budget_s, s.deadline_s)
    rows = entry.setdefault("rows", [])
    if not s.batches:
        entry["status"] = "skipped: no batch sizes asked for"
        return
    shape, k = _first_shape(s, ctx)
    lm = _model(s, ctx, shape, k)
    spec = lm["spec"]
    precision = s.levin_precision
    entry.update(preset=s.preset, shape=list(shape), kernel_size=k, precision=precision)
    rng = np.random.default_rng(0)
    done = report.phase("precision").get("rows", [])
    measured = [r["compile_s"] for r in done if "compile_s" in r]
    compile_s = max(measured, default=s.compile_guess_s)
    step_per_image = 0.0
    compiled_steps = ctx.setdefault("compiled", {})
    for b in s.batches:
        row: dict = {"batch": b, "precision": precision}
        rows.append(row)
        try:
            needed = compile_s + 10.0 + (s.timed_steps + 2) * step_per_image * b
            skip = _skip_reason(clock, end, needed) if rows[:-1] else None
            if skip:
                row["status"] = skip
                continue
            keys = jax.random.split(_key(s, 0), b)
            states = lm["init"](keys)
            ys = jnp.asarray(rng.uniform(size=(b, *shape)), jnp.float32)
            with matmul_precision(precision):
                lowered, lower_s, _, attrs = _lower(_batched_step(spec), states, ys, keys)
            t0 = time.perf_counter()
            compiled = lowered.compile()
            row["compile_s"] = round(time.perf_counter() - t0, 2)
            gflop = _gflop(lowered)
            states, first, per_step = _time_steps(compiled, states, ys, keys, s.timed_steps)
            row.update(
                status="ok",
                lower_s=round(lower_s, 2),
                precision_attrs=attrs,
                first_call_s=round(first, 3),
                step_s=per_step,
                s_per_image=s.num_steps * per_step / b,
                images_per_min=60.0 * b / (s.num_steps * per_step),
                gflop_per_step=gflop,
                gflops=gflop / per_step,
                memory=_memory(compiled),
            )
            compiled_steps[(shape, k, b, precision)] = dict(
                step=compiled, step_s=per_step, compile_s=row["compile_s"]
            )
            ctx.setdefault("compile_times", []).append(row["compile_s"])
            ctx.setdefault("measured", []).append(
                dict(batch=b, step_s=per_step, pixels=_pixels(shape, k))
            )
            compile_s, step_per_image = row["compile_s"], per_step / b
            _log(
                f"batch {b}: compile {row['compile_s']:.1f} s, {per_step * 1e3:.2f} ms/step, "
                f"{row['s_per_image']:.1f} s/image, {row['images_per_min']:.2f} images/min"
            )
            del states
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at one size
            row.update(status="error", error=_error(e))
            _log(f"batch {b}: {row['error']}")
        finally:
            report.save()


def plan_levin(
    n_images: int,
    num_steps: int,
    options: Sequence[dict],
    time_left: float,
    overhead_s: float = 10.0,
) -> dict | None:
    """The batch size that finishes the most images in ``time_left`` (ties: the least time).

    Args:
      n_images: images wanted.
      num_steps: steps per image.
      options: dicts with ``batch``, ``step_s`` (seconds per step of that batch) and
        ``compile_s`` (still to pay; 0 when compiled).
      time_left: seconds.
      overhead_s: per batch of images (initialisation, outputs, non-blind step, saving).

    Returns:
      ``dict(batch, images, chunks, estimate_s, complete=True)``; or, when not even one batch
      finishes in time, the option with the best images per second (``complete=False``: it
      will stop at the deadline); None without options.
    """
    best = None
    for o in options:
        b, per = int(o["batch"]), num_steps * float(o["step_s"]) + overhead_s
        chunks = int((time_left - float(o["compile_s"])) // per) if per > 0 else 0
        images = min(n_images, chunks * b)
        if images <= 0:
            continue
        chunks = math.ceil(images / b)
        est = float(o["compile_s"]) + chunks * per
        cand = dict(batch=b, images=images, chunks=chunks, estimate_s=est, complete=True)
        if best is None or (images, -est) > (best["images"], -best["estimate_s"]):
            best = cand
    if best is not None or not options:
        return best
    o = max(options, key=lambda o: o["batch"] / max(float(o["step_s"]), 1e-9))
    b = min(int(o["batch"]), n_images)
    est = float(o["compile_s"]) + num_steps * float(o["step_s"]) + overhead_s
    return dict(batch=int(o["batch"]), images=b, chunks=1, estimate_s=est, complete=False)


def _chunks(items: list, b: int) -> list[tuple[list, int]]:
    """Groups of exactly ``b`` (the last one padded with copies of its last item), each with
    its number of real items."""
    out = []
    for i in range(0, len(items), b):
        part = items[i : i + b]
        out.append((part + [part[-1]] * (b - len(part)), len(part)))
    return out


def save_group(path: str, results: list[dict], meta: dict) -> None:
    """One compressed npz: stacked arrays of the finished images and ``meta`` as JSON."""
    arrays = dict(
        names=np.array([r["name"] for r in results]),
        kernel=np.stack([r["kernel"] for r in results]).astype(np.float32),
        network=np.stack([r["network"] for r in results]).astype(np.float32),
        loss=np.stack([r["loss"] for r in results]).astype(np.float32),
        steps_done=np.array([r["steps_done"] for r in results], np.int32),
        box=np.array([r["box"] for r in results], np.int32),
        meta=np.array(json.dumps(_jsonable(meta))),
    )
    if all(r.get("two_stage") is not None for r in results):
        arrays["two_stage"] = np.stack([r["two_stage"] for r in results]).astype(np.float32)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def run_group(
    dataset: str,
    label: str,
    precision: str,
    batch: int,
    items: list[dict],
    s: Settings,
    clock: Clock,
    end_s: float,
    ctx: dict,
    out_dir: str,
    group: dict,
    save_report: Callable[[], None],
    meta_extra: dict | None = None,
) -> list[dict]:
    """Trains ``items`` (one shape and kernel size) in batches of ``batch`` at ``precision``
    until done or ``end_s`` (seconds on ``clock``); saves ``<dataset>_<label>.npz`` after every
    batch, its ``meta`` updated with ``meta_extra``. Returns the results."""
    import jax
    import jax.numpy as jnp

    from jaxdeconv.bench import evaluate
    from jaxdeconv.core import train

    shape, k = tuple(items[0]["blurry"].shape), items[0]["kernel_size"]
    lm = _model(s, ctx, shape, k)
    cfg, spec, init = lm["cfg"], lm["spec"], lm["init"]
    path = os.path.join(out_dir, f"{dataset}_{label}.npz")
    meta = dict(
        dataset=dataset,
        precision=precision,
        batch=batch,
        preset=s.preset,
        overrides=s.overrides,
        num_steps=s.num_steps,
        kernel_size=k,
        kernel_size_convention=items[0].get("kernel_size_convention", "full"),
        true_kernel_sizes={it["name"]: it.get("true_kernel_size") for it in items},
        shape=list(shape),
        seed=s.seed,
        prng_impl=s.prng_impl,
        keys=(
            "jax.random.key(seed) per image, split into (state, loop, sample) as in "
            "jaxdeconv.run.api"
        ),
        config=cfg.to_dict(),
        device_kind=_device_kind(),
        backend=jax.default_backend(),
        versions=_versions(),
        git_commit=ctx.get("git_commit", ""),
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        smoke=s.smoke,
        **(meta_extra or {}),
    )
    group.update(
        label=label,
        precision=precision,
        batch=batch,
        shape=list(shape),
        kernel_size=k,
        file=os.path.basename(path),
    )
    results: list[dict] = []
    with matmul_precision(precision):

        def outputs(state):
            return train.kernel_estimate(spec, state), train.image_estimate(spec, state)

        outputs_fn = jax.jit(jax.vmap(outputs))
        cached = ctx.get("compiled", {}).get((shape, k, batch, precision))
        step = cached["step"] if cached else None
        log_every = max(1, int(cfg.log_every))
        for chunk_i, (chunk, n_real) in enumerate(_chunks(items, batch)):
            if clock.elapsed() + s.save_reserve_s >= end_s:
                group.setdefault("not_run", []).extend(it["name"] for it in chunk[:n_real])
                continue
            t_chunk = time.perf_counter()
            keys = jnp.stack([_key(s, s.seed)] * batch)
            split = jax.vmap(lambda kk: jax.random.split(kk, 3))(keys)
            key_state, key_loop = split[:, 0], split[:, 1]
            ys = jnp.asarray(np.stack([it["blurry"] for it in chunk]), jnp.float32)
            state = init(key_state)
            if step is None:
                t0 = time.perf_counter()
                step = _batched_step(spec).lower(state, ys, key_loop).compile()
                group["compile_s"] = round(time.perf_counter() - t0, 2)
                ctx.setdefault("compile_times", []).append(group["compile_s"])
                _log(f"{dataset} {label}: compiled B={batch} in {group['compile_s']:.1f} s")
            losses = np.full((batch, s.num_steps), np.nan, np.float32)
            pending, done, t_loop = [], 0, time.perf_counter()
            for i in range(s.num_steps):
                state, metrics = step(state, ys, key_loop)
                pending.append(metrics["loss"])
                done = i + 1
                if done % log_every and done != s.num_steps:
                    continue
                pulled = np.stack(jax.device_get(pending)).reshape(len(pending), batch)
                losses[:, done - len(pending) : done] = pulled.T
                pending = []
                per_step = (time.perf_counter() - t_loop) / done
                nxt = min(log_every, s.num_steps - done)
                if nxt and clock.elapsed() + nxt * per_step + s.save_reserve_s > end_s:
                    _log(f"{dataset} {label}: stopping at step {done} (deadline)")
                    break
            train_s = time.perf_counter() - t_loop
            ctx.setdefault("measured", []).append(
                dict(batch=batch, step_s=train_s / max(done, 1), pixels=_pixels(shape, k))
            )
            kernels, images = jax.device_get(outputs_fn(state))
            del state
            two_stage: list = [None] * n_real
            try:
                for j in range(n_real):
                    method = evaluate.nonblind_method(chunk[j]["category"])
                    two_stage[j] = evaluate.nonblind_deconv(method, chunk[j]["blurry"], kernels[j])
            except Exception as e:  # noqa: BLE001 - the scorer recomputes it anyway
                group["two_stage_error"] = _error(e)
            for j in range(n_real):
                results.append(
                    dict(
                        name=chunk[j]["name"],
                        box=chunk[j]["box"],
                        kernel=np.asarray(kernels[j]),
                        network=np.asarray(images[j]),
                        two_stage=two_stage[j],
                        loss=losses[j],
                        steps_done=done,
                    )
                )
            group.setdefault("chunks", []).append(
                dict(
                    images=[it["name"] for it in chunk[:n_real]],
                    steps_done=done,
                    train_s=round(train_s, 2),
                    step_s=train_s / max(done, 1),
                    total_s=round(time.perf_counter() - t_chunk, 2),
                    final_loss=[float(v) for v in losses[:n_real, done - 1]],
                )
            )
            meta["chunks"] = group["chunks"]
            save_group(path, results, meta)
            group["images_done"] = [r["name"] for r in results]
            _log(
                f"{dataset} {label}: batch {chunk_i + 1}: {n_real} images, {done} steps in "
                f"{train_s:.1f} s ({train_s / max(done, 1) * 1e3:.2f} ms/step); saved {path}"
            )
            save_report()
    return results


def _pixels(shape: Sequence[int], k: int) -> int:
    """Pixels of the image net's output for a blurry ``shape`` and kernel size ``k``."""
    return (shape[0] + k - 1) * (shape[1] + k - 1)


def _estimate_step(ctx: dict, batch: int, pixels: int) -> float:
    """Seconds per step of a batch of ``batch`` images of ``pixels``, scaled from the latest
    measurement (a Levin batch, else the profile's one-image step) by pixels and images; a
    batch smaller than the measured one is taken as 1.7x less efficient per image (an H100:
    B = 1 took 1.65x the per-image time of B = 4). inf when nothing was measured."""
    measured = ctx.get("measured", [])
    if not measured:
        return float("inf")
    m = measured[-1]
    per_image = m["step_s"] / m["batch"] * pixels / m["pixels"]
    return per_image * batch * (1.7 if batch < m["batch"] else 1.0)


def run_dataset(
    entry: dict,
    dataset: str,
    items: list[dict],
    precision: str,
    s: Settings,
    clock: Clock,
    end: float,
    report: Report,
    ctx: dict,
    suffix: str = "",
    meta: dict | None = None,
) -> list[dict]:
    """Runs ``items`` group by group (shape, kernel size), in their order, each in batches of up
    to ``s.max_batch``. Each group's plan (:func:`plan_levin`) takes the batch size, among the
    group's and the smaller powers of two, that finishes the most of its images before ``end``
    by the times measured so far (:func:`_estimate_step`, compile: 1.2x the longest measured);
    a group of which no image can finish is skipped (the later, maybe smaller, ones are still
    tried). With nothing measured yet, a group runs at its batch until done or ``end`` (it
    stops at a log point and saves what it has). Group records go into ``entry['groups']``;
    files are ``<dataset>_<precision>_<H>x<W>_k<K><suffix>.npz`` with ``meta`` added to their
    meta; returns every result."""
    groups = entry.setdefault("groups", [])
    compiled = ctx.get("compiled", {})
    results: list[dict] = []
    for (shape, k), members in _groups(items):
        label = f"{precision}_{shape[0]}x{shape[1]}_k{k}{suffix}"
        group: dict = {"label": label, "precision": precision, "images": len(members)}
        groups.append(group)
        options = [
            dict(batch=b, step_s=c["step_s"], compile_s=0.0)
            for (sh, kk, b, p), c in compiled.items()
            if (sh, kk, p) == (shape, k, precision)
        ]
        # The group's batch and the smaller powers of two: when the whole group does not fit in
        # the time left, part of it at a smaller batch may.
        b = min(len(members), s.max_batch)
        compile_s = 1.2 * max(ctx.get("compile_times", []), default=s.compile_guess_s / 1.2)
        for size in [b] + [2**i for i in range(3, -1, -1) if 2**i < b]:
            if not any(o["batch"] == size for o in options):
                step_s = _estimate_step(ctx, size, _pixels(shape, k))
                options.append(dict(batch=size, step_s=step_s, compile_s=compile_s))
        plan = plan_levin(len(members), s.num_steps, options, end - clock.elapsed())
        group["plan"] = plan
        if plan is None or not plan["complete"]:
            if any(math.isfinite(o["step_s"]) for o in options):
                left = end - clock.elapsed()
                group["status"] = f"skipped: does not fit in the {left:.0f} s left"
                group["not_run"] = [it["name"] for it in members]
                _log(f"{dataset} {label}: {group['status']} (estimate {options})")
                report.save()
                continue
            plan = dict(batch=b, images=min(b, len(members)), complete=False)
            group["note"] = "nothing measured yet: one batch, run until the deadline"
        chosen = members[: plan["images"]]
        group["not_run"] = [it["name"] for it in members[plan["images"] :]]
        _log(f"{dataset} {label}: plan {plan} ({end - clock.elapsed():.0f} s left)")
        try:
            results += run_group(
                dataset,
                label,
                precision,
                plan["batch"],
                chosen,
                s,
                clock,
                end,
                ctx,
                report.out_dir,
                group,
                report.save,
                meta,
            )
            group["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - the next group may still run
            group.update(status="error", error=_error(e), traceback=traceback.format_exc()[-4000:])
            _log(f"{dataset} {label}: {group['error']}")
        report.save()
    return results


def phase_run(
    entry: dict, dataset: str, s: Settings, clock: Clock, report: Report, ctx: dict
) -> None:
    """The `levin` or `lai` phase: its images group by group (:func:`run_dataset`) at
    ``levin_precision``; Levin within ``levin_budget_s``, Lai until the deadline. Then, for
    Levin and time allowing, the first group's finished images again at each
    ``check_precisions``."""
    names = s.levin_images if dataset == "levin" else s.lai_images
    if not names:
        entry["status"] = "skipped: no images asked for"
        return
    items = ctx.get(dataset)
    if not items:
        raise RuntimeError(f"no {dataset} images loaded (see the data phase)")
    budget = s.levin_budget_s if dataset == "levin" else s.deadline_s
    end = min(clock.elapsed() + budget, s.deadline_s)
    p0 = s.levin_precision
    entry.update(end_s=round(end, 1), precision=p0, overrides=s.overrides)
    results = run_dataset(entry, dataset, items, p0, s, clock, end, report, ctx)
    errors = [g for g in entry["groups"] if g.get("status") == "error"]
    if errors and not results:
        entry["status"] = "error"
        entry["error"] = errors[0].get("error", "")
    if dataset != "levin":
        return
    finished = {r["name"] for r in results if r["steps_done"] == s.num_steps}
    first_group = _groups([it for it in items if it["name"] in finished])[:1]
    for p in s.check_precisions:
        if p == p0 or not first_group:
            entry["groups"].append(
                dict(precision=p, status="skipped: the main precision or no finished image")
            )
            continue
        run_dataset(entry, dataset, first_group[0][1], p, s, clock, end, report, ctx)


def _levin_sharp(root: str, name: str, box: Sequence[int]) -> np.ndarray | None:
    """The sharp Levin image of ``name`` (``imN_kernelM``) under ``root``/levin/sharp, cut to
    ``box``; None when the file is not there."""
    from jaxdeconv.bench import datasets

    path = os.path.join(root, "levin", "sharp", f"{name.split('_')[0]}.png")
    if not os.path.exists(path):
        return None
    t, left, h, w = (int(v) for v in box)
    return datasets.read_gray(path)[t : t + h, left : left + w]


def choose_better(labels: Sequence[str], scores: dict, finished: dict) -> dict:
    """Which config did better: the higher mean two-stage PSNR over the images that every config
    finished (all steps) and scored, like with like; the first label when there is nothing to
    compare (or on a tie).

    Args:
      labels: the configs, in order.
      scores: ``{label: {image name: two-stage PSNR}}``.
      finished: ``{label: image names run for all steps}``.

    Returns:
      ``dict(better, reason, compared=[names], means={label: dB})``.
    """
    labels = list(labels)
    if not labels:
        return dict(better=None, reason="no config", compared=[], means={})
    if len(labels) == 1:
        return dict(
            better=labels[0], reason="one config: nothing to compare", compared=[], means={}
        )
    sets = [set(finished.get(x, ())) & set(scores.get(x, {})) for x in labels]
    common = set.intersection(*sets)
    names = [n for n in scores.get(labels[0], {}) if n in common]
    if not names:
        return dict(
            better=labels[0],
            reason=f"nothing to compare (no image finished and scored by every config): "
            f"keeping '{labels[0]}'",
            compared=[],
            means={},
        )
    means = {x: float(np.mean([scores[x][n] for n in names])) for x in labels}
    best = labels[0]
    for x in labels[1:]:
        if means[x] > means[best]:
            best = x
    text = ", ".join(f"{x} {means[x]:.2f} dB" for x in labels)
    if any(means[x] == means[best] for x in labels if x != best):
        reason = f"equal means over the {len(names)} images ({text}): keeping '{best}'"
    else:
        reason = f"higher mean two-stage PSNR over the {len(names)} images every config finished"
        reason += f" ({text})"
    return dict(better=best, reason=reason, compared=names, means=means)


def phase_question(entry: dict, s: Settings, clock: Clock, report: Report, ctx: dict) -> None:
    """Issue 40: each of ``question_configs`` (overrides on top of ``s.overrides``) on the
    question images at ``question_precision`` (:func:`run_dataset`, files suffixed
    ``_q<label>``), config i until start + (i + 1) * ``question_budget_s`` / n; each config has
    its own specs and compiled steps, the measured times are shared. Before anything was
    measured the first plan takes ``step_guess`` as measured. Then the two-stage images computed
    on the way are scored against the sharp images, when there (``entry['scores']``), and
    ``entry['better']`` names the config with the higher mean two-stage PSNR over the images
    every config finished (:func:`choose_better`)."""
    from jaxdeconv.classical import metrics

    labels = list(s.question_configs)
    if not s.question_images or not labels:
        entry["status"] = "skipped: no images asked for"
        return
    items = ctx.get("question")
    if not items:
        raise RuntimeError("no question images loaded (see the data phase)")
    start = clock.elapsed()
    precision = s.question_precision
    entry.update(
        images=[it["name"] for it in items],
        precision=precision,
        kernel_size_convention=items[0]["kernel_size_convention"],
        kernel_sizes={it["name"]: it["kernel_size"] for it in items},
        true_kernel_sizes={it["name"]: it["true_kernel_size"] for it in items},
        budget_s=s.question_budget_s,
        configs={},
    )
    measured = ctx.setdefault("measured", [])
    compile_times = ctx.setdefault("compile_times", [])
    if not measured and s.step_guess:
        measured.append(dict(s.step_guess, guess=True))
        entry["step_guess"] = dict(s.step_guess)
    results: dict[str, list[dict]] = {}
    try:
        for i, label in enumerate(labels):
            extra = dict(s.question_configs[label])
            end = min(start + (i + 1) * s.question_budget_s / len(labels), s.deadline_s)
            sub = entry["configs"].setdefault(label, {})
            sub.update(overrides=extra, end_s=round(end, 1))
            qs = dataclasses.replace(s, overrides={**s.overrides, **extra})
            # Own specs and compiled steps (they depend on the config), shared measurements.
            qctx = dict(
                measured=measured, compile_times=compile_times, git_commit=ctx.get("git_commit", "")
            )
            meta = dict(question=label, question_overrides=extra)
            _log(f"question {label}: overrides {extra}, until t = {end:.0f} s")
            results[label] = run_dataset(
                sub, "levin", items, precision, qs, clock, end, report, qctx, f"_q{label}", meta
            )
            sub["finished"] = [r["name"] for r in results[label] if r["steps_done"] == s.num_steps]
            report.save()
    finally:
        measured[:] = [m for m in measured if not m.get("guess")]
    scores: dict[str, dict[str, float]] = {}
    missing = set()
    for label in labels:
        for r in results.get(label, []):
            sharp = _levin_sharp(s.levin_data, r["name"], r["box"])
            if sharp is None:
                missing.add(r["name"])
            elif r.get("two_stage") is not None:
                psnr = metrics.aligned_psnr_ssim(r["two_stage"], sharp)["psnr"]
                scores.setdefault(label, {})[r["name"]] = float(psnr)
    entry["scores"] = scores
    if missing:
        entry["no_sharp_image"] = sorted(missing)
    finished = {x: entry["configs"].get(x, {}).get("finished", []) for x in labels}
    entry.update(choose_better(labels, scores, finished))
    _log(f"question: better {entry['better']!r}: {entry['reason']}")
    errors = [
        g.get("error", "")
        for x in labels
        for g in entry["configs"].get(x, {}).get("groups", [])
        if g.get("status") == "error"
    ]
    if errors and not any(results.values()):
        entry["status"] = "error"
        entry["error"] = errors[0]


def parse_overrides(preset: str, text: str) -> dict:
    """``'FIELD=VALUE,...'`` as ``{field: value}``, each value read and type-checked as the
    config's own overrides are (``jaxdeconv.config.apply_overrides`` on ``preset``, then
    ``check_values``); a comma inside brackets or quotes belongs to its value:
    ``'ssim_after=1000,optim.decay_boundaries=(0.4,0.6,0.8)'``. Raises ``ValueError``."""
    from jaxdeconv import config as config_lib

    items, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        cur += ch
    items = [x.strip() for x in items + [cur] if x.strip()]
    cfg = config_lib.PRESETS[preset]()
    config_lib.apply_overrides(cfg, items)
    config_lib.check_values(cfg)
    out = {}
    for item in items:
        field = item.partition("=")[0].strip()
        node = cfg
        for part in field.split("."):
            node = node[part]
        out[field] = node
    return out


# ----------------------------------------------------------------------------------------------
# The report's tables.


def _f(x, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, int | float) and math.isfinite(x) else "-"


def _question_markdown(q: dict, data: dict) -> list[str]:
    """The question phase's table: per config, images finished, mean two-stage PSNR over the
    images compared and over all it scored, and which is better."""
    if not q.get("configs"):
        return []
    n = len(q.get("images", []))
    lines = [
        f"## Question: {n} Levin images, precision '{q.get('precision')}', kernel sizes "
        f"'{q.get('kernel_size_convention')}' ({sorted(set(q.get('kernel_sizes', {}).values()))}"
        f" px), {data['settings'].get('num_steps')} steps",
        "",
        f"- better: **{q.get('better', '-')}**: {q.get('reason', '-')}",
        f"- compared (finished by every config): {q.get('compared', [])}",
        f"- the later phases ran: {data.get('after_question', 'the settings as given')}",
        "",
        "| config | overrides | images done | mean two-stage PSNR (compared) | mean two-stage PSNR "
        "(all scored) | better |",
        "|---|---|---|---|---|---|",
    ]
    for label, c in q["configs"].items():
        scored = q.get("scores", {}).get(label, {})
        mean_all = float(np.mean(list(scored.values()))) if scored else float("nan")
        lines.append(
            f"| {label} | {c.get('overrides') or '(preset as is)'} | "
            f"{len(c.get('finished', []))} of {n} | {_f(q.get('means', {}).get(label), '.2f')} | "
            f"{_f(mean_all, '.2f')} ({len(scored)}) | {'yes' if q.get('better') == label else ''} |"
        )
    return lines + [""]


def markdown(data: dict) -> str:
    ph = data.get("phases", {})
    env = ph.get("environment", {})
    lines = [
        "# GPU report (benchmarks/gpu_report.py)",
        "",
        f"- started {data.get('started')}, saved {data.get('saved')}; commit "
        f"{env.get('git_commit', '?')}; smoke: {data['settings'].get('smoke')}",
        f"- device: {env.get('device_kind', '?')} ({env.get('backend', '?')}); "
        f"versions: {env.get('versions', {})}",
        f"- nvidia-smi: {env.get('nvidia_smi', '?')!r}",
        "- phases: "
        + ", ".join(f"{k} {v.get('status')} ({v.get('seconds', '?')} s)" for k, v in ph.items()),
        "",
    ]
    lines += _question_markdown(ph.get("question", {}), data)
    lines += gpu_profile.markdown(ph.get("profile", {}))
    prec = ph.get("precision", {})
    if prec.get("rows"):
        lines += [
            f"## One image: preset `{prec.get('preset')}`, {prec.get('size')}x{prec.get('size')},"
            f" K = {prec.get('kernel_size')}",
            "",
            "| precision setting | conv precision | compile s | s/step | GFLOP/step | GFLOP/s "
            "| % nominal peak | s/image |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in prec["rows"]:
            if r.get("status") == "ok":
                lines.append(
                    f"| {r['precision']} | {'/'.join(r.get('precision_attrs', {}))} | "
                    f"{_f(r.get('compile_s'), '.1f')} | {_f(r.get('step_s'), '.4f')} | "
                    f"{_f(r.get('gflop_per_step'), '.1f')} | {_f(r.get('gflops'), '.0f')} | "
                    f"{_f(r.get('pct_of_peak'), '.1f')} | {_f(r.get('s_per_image'), '.1f')} |"
                )
            else:
                lines.append(f"| {r['precision']} | {r.get('status')} {r.get('error', '')} |")
        lines.append("")
    bat = ph.get("batch", {})
    if bat.get("rows"):
        lines += [
            f"## Batches (vmap): shape {bat.get('shape')}, K = {bat.get('kernel_size')}, "
            f"precision {bat.get('precision')}, {data['settings'].get('num_steps')} steps/image",
            "",
            "| B | compile s | s/step | s/image | images/min | GFLOP/step | GFLOP/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in bat["rows"]:
            if r.get("status") == "ok":
                lines.append(
                    f"| {r['batch']} | {_f(r.get('compile_s'), '.1f')} | "
                    f"{_f(r.get('step_s'), '.4f')} | {_f(r.get('s_per_image'), '.1f')} | "
                    f"{_f(r.get('images_per_min'), '.2f')} | {_f(r.get('gflop_per_step'), '.1f')}"
                    f" | {_f(r.get('gflops'), '.0f')} |"
                )
            else:
                lines.append(f"| {r['batch']} | {r.get('status')} {r.get('error', '')} |")
        lines.append("")
    for name in ("question", "levin", "lai"):
        run = ph.get(name, {})
        groups = list(run.get("groups", []))
        groups += [g for c in run.get("configs", {}).values() for g in c.get("groups", [])]
        if not groups:
            continue
        lines += [f"## {name.capitalize()} runs ({data['settings'].get('num_steps')} steps)", ""]
        lines += ["| group | B | images done | steps | compile s | training s | s/step | status |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for g in groups:
            chunks = g.get("chunks", [])
            train_s = sum(c["train_s"] for c in chunks)
            steps = sorted({c["steps_done"] for c in chunks})
            step_s = np.mean([c["step_s"] for c in chunks]) if chunks else float("nan")
            lines.append(
                f"| {g.get('label', g.get('precision'))} | {g.get('batch', '-')} | "
                f"{len(g.get('images_done', []))} of {g.get('images', '-')} | {steps or '-'} | "
                f"{_f(g.get('compile_s'), '.1f')} | {_f(train_s, '.1f')} | "
                f"{_f(float(step_s), '.4f')} | {g.get('status')} {g.get('error', '')} |"
            )
        lines.append("")
    single = [r for r in prec.get("rows", []) if r.get("status") == "ok"]
    batched = [r for r in bat.get("rows", []) if r.get("status") == "ok"]
    if single or batched:
        steps = data["settings"].get("num_steps")
        lines += ["## Against the issue's targets (H100)", ""]
        if single:
            r = min(single, key=lambda r: r["step_s"])
            lines.append(
                f"- one image, {steps} steps: {_f(steps * r['step_s'], '.1f')} s "
                f"(+ {_f(r.get('compile_s'), '.1f')} s compile) at '{r['precision']}'; "
                "target <= 20 s"
            )
        if batched:
            r = max(batched, key=lambda r: r["images_per_min"])
            lines.append(
                f"- batched: {_f(r['images_per_min'], '.1f')} images/min at B = {r['batch']}; "
                "target >= 30"
            )
        lines.append("")
    errors = [f"- {k}: {v['error']}" for k, v in ph.items() if v.get("error")]
    if errors:
        lines += ["## Errors", ""] + errors + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Entry points.


def run(s: Settings, out_dir: str) -> dict:
    """Runs every phase; returns the report's data (also in ``out_dir``/report.json)."""
    clock = Clock(s.deadline_s)
    report = Report(out_dir, s)
    ctx: dict = {}
    with phase(report, "environment", clock) as entry:
        phase_environment(entry)
        ctx["git_commit"] = entry.get("git_commit", "")
    with phase(report, "data", clock) as entry:
        phase_data(entry, s, ctx)
    with phase(report, "question", clock) as entry:
        phase_question(entry, s, clock, report, ctx)
    better = report.data["phases"]["question"].get("better")
    if better is not None:  # every later phase runs the better config (one spec cache)
        s = dataclasses.replace(s, overrides={**s.overrides, **s.question_configs[better]})
        report.data["after_question"] = dict(config=better, overrides=s.overrides)
        report.save()
    with phase(report, "profile", clock) as entry:
        phase_profile(entry, s, clock, report, ctx)
    with phase(report, "precision", clock) as entry:
        phase_precision(entry, s, clock, report)
    with phase(report, "batch", clock) as entry:
        phase_batch(entry, s, clock, report, ctx)
    for dataset in ("levin", "lai"):
        with phase(report, dataset, clock) as entry:
            phase_run(entry, dataset, s, clock, report, ctx)
    report.data["total_s"] = round(clock.elapsed(), 1)
    report.save()
    _log(markdown(report.data))
    return report.data


def _main(argv) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    s = smoke_settings() if f.smoke else Settings()
    changes = {}
    for name in (
        "deadline_s",
        "levin_budget_s",
        "profile_budget_s",
        "num_steps",
        "timed_steps",
        "levin_precision",
        "prng_impl",
        "max_batch",
        "question_precision",
        "question_budget_s",
        "levin_convention",
    ):
        if f[name].present:
            changes[name] = f[name].value
    for name in ("precisions", "check_precisions", "levin_images", "lai_images", "question_images"):
        if f[name].present:
            changes[name] = tuple(v for v in f[name].value if v)
    if f["batches"].present:
        changes["batches"] = tuple(int(v) for v in f.batches)
    if f["overrides"].present:
        changes["overrides"] = {**s.overrides, **parse_overrides(s.preset, f.overrides)}
    if f["question_b"].present:
        b = parse_overrides(s.preset, f.question_b)
        changes["question_configs"] = {**s.question_configs, "b": b}
    s = dataclasses.replace(s, **changes)
    out = f.out or os.environ.get("OUT") or os.path.join(REPO, "runs", "gpu_report")
    run(s, out)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("out", None, "Output folder (default: $OUT, else runs/gpu_report).")
    flags.DEFINE_bool("smoke", False, "Tiny nets, 48-64 px crops, a few steps: a CPU check.")
    flags.DEFINE_float("deadline_s", None, "Seconds after start by which everything ends.")
    flags.DEFINE_float("levin_budget_s", None, "Most seconds for the Levin groups together.")
    flags.DEFINE_integer("num_steps", None, "Steps per image (default 5000; smoke 12).")
    flags.DEFINE_integer("timed_steps", None, "Timed steps per measurement.")
    flags.DEFINE_list("precisions", None, "jax.default_matmul_precision settings to time.")
    flags.DEFINE_list("batches", None, "Batch sizes to time (and to choose from).")
    flags.DEFINE_string("levin_precision", None, "Precision setting of the Levin and Lai runs.")
    flags.DEFINE_list("check_precisions", None, "Precisions to rerun the images with, in time.")
    flags.DEFINE_list(
        "levin_images", None, "Levin image names (default: the 24 not in the question)."
    )
    flags.DEFINE_enum(
        "levin_convention", None, ["published", "full"], "Levin kernel sizes (default published)."
    )
    flags.DEFINE_list(
        "question_images", None, "The question's Levin images (default the 8 K = 23; empty: none)."
    )
    flags.DEFINE_string("question_precision", None, "The question's precision (default float32).")
    flags.DEFINE_float("question_budget_s", None, "Seconds for the question's configs together.")
    flags.DEFINE_string(
        "overrides", None, "FIELD=VALUE,... on the preset, for every phase (e.g. a config b)."
    )
    flags.DEFINE_string(
        "question_b",
        None,
        "Config b's overrides, FIELD=VALUE,... (default: the lineage options; empty: none).",
    )
    flags.DEFINE_list("lai_images", None, "Lai image names (default: the 5 in benchmarks/data).")
    flags.DEFINE_float("profile_budget_s", None, "Most seconds for the profile (0: skip it).")
    flags.DEFINE_string("prng_impl", None, "The runs' PRNG: threefry2x32 (default), rbg, ...")
    flags.DEFINE_integer("max_batch", None, "Largest batch of one group's images (default 8).")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(_main)
