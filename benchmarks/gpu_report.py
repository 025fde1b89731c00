r"""The `paper` preset on one GPU in one prepared call: speed per precision, batched throughput
and the 5000-step run on the 8 hard Levin images (issue 16).

On the GPU machine, from the repository root (the wrapper installs what is missing there):

  bash benchmarks/gpu_report.sh          # writes into $OUT, else runs/gpu_report

On a CPU, end to end with tiny nets, 48-64 px images and a few steps (what
tests/test_gpu_report.py runs; seconds):

  python benchmarks/gpu_report.py --smoke --out=runs/gpu_smoke

Afterwards, on the CPU, score the returned arrays against the ground truth:

  python benchmarks/score_gpu_results.py --results=<folder holding levin_*.npz>

What travels: the device machine receives this repository only (not ../shared), and its
Python has jax, flax, optax, orbax, chex, numpy, scipy and pillow but not ml-collections. So
the 8 images come from benchmarks/data/levin (a 400 kB copy, see its README) and
ml-collections from benchmarks/wheels/ml_collections-1.1.0-py3-none-any.whl (77 kB, pure
Python; its own needs, absl-py and PyYAML, are there). Both are committed files, so the call
needs no ``carry``. gpu_report.sh installs the wheel with ``pip --no-index --target`` into
/tmp, the project with ``pip install --no-deps --no-build-isolation -e .`` (no index there)
and also puts both on PYTHONPATH, so a failed install does not stop the run.

Phases. Each runs inside try/except: an error is recorded in the report and the next phase
runs. report.json and report.md are rewritten after every phase and every measured row, and
each Levin group's arrays are saved as soon as a batch of images is done, so a run killed at
its time limit still returns what it had measured.

1. environment: device, driver and CUDA (nvidia-smi), Python and package versions.
2. data: the Levin images (centre crops in --smoke).
3. precision: one ``--size`` image (255), K = ``--kernel_size`` (27), one image's step: for
   each setting of ``jax.default_matmul_precision`` in ``--precisions``: lowering and compile
   time, s/step, GFLOP/step (XLA's cost analysis of the lowered program), GFLOP/s, its share of
   the card's nominal peak, and the estimated s/image for ``num_steps`` steps. A setting that
   lowers to the same program as one measured before is recorded as such and not compiled again.
   What the settings mean for this conv net (checked on the lowered programs): 'float32' gives
   every convolution precision HIGHEST (true float32), 'tensorfloat32' HIGH, and 'bfloat16', the
   dot-algorithm names and no setting ('default') all give DEFAULT. On an H100/H200 both DEFAULT
   and HIGH use TF32 tensor cores (``jax.lax.Precision``'s docstring), so no setting here makes
   the convolutions run in bf16: that would need bf16 network dtypes.
4. batch: B = ``--batches`` (8, 4, 1) images in one step (``jax.vmap`` of the whole per-image
   step, as ``jaxdeconv.deblur_batch`` trains them), at the Levin run's shape, kernel size and
   precision: compile time, s/step, s/image and images/min for ``num_steps`` steps. The
   compiled steps are kept, so the Levin run below compiles nothing again.
5. levin: the `paper` preset, ``num_steps`` = 5000 steps, on the 8 Levin images with 23 px
   kernels (im1..im4 with kernels 7 and 8: where `fast` fails most), at ``--levin_precision``
   ('default': JAX's own choice, what the library does on a GPU out of the box; TF32 on an
   H100), with the measured batch size that fits the most images into the time left (ties: the
   quickest). A run that would pass the deadline stops at a log point and saves what it has
   (``steps_done`` records it). Then, time allowing, the same images again at each of
   ``--check_precisions``, to measure what a precision costs in PSNR. One compressed
   ``levin_<precision>.npz`` per group: names, kernels [n, K, K], network images
   [n, H, W, 1], two-stage images (hyper-Laplacian non-blind step, run there too), loss
   curves, steps done and the run's facts (JSON string ``meta``).

Time: ``--deadline_s`` (seconds after start) bounds the whole script: no measurement starts
that the times measured so far say cannot finish before it; the Levin groups get at most
``--levin_budget_s`` of what is left. With the defaults the script ends about 8.5 minutes after
it starts (a few seconds more for the wrapper's installs); give the device call
``timeout_s=590``: should something hang, what was saved still comes back.
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
# Interleaved, so that a run with fewer images still covers both kernels.
LEVIN_K23 = tuple(f"im{i}_kernel{j}" for i in (1, 2, 3, 4) for j in (7, 8))
# The Levin run's setting first (its step time plans that run), then the others; 'bfloat16'
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
    num_steps: int = 5000  # steps per image (Levin run; images/min extrapolation)
    size: int = 255  # precision phase: image side
    kernel_size: int = 27  # precision phase: K
    precisions: tuple = PRECISIONS
    timed_steps: int = 20
    batches: tuple = (8, 4, 1)  # the most useful first, should time run short
    levin_data: str = os.path.join(REPO, "benchmarks", "data")
    levin_images: tuple = LEVIN_K23
    levin_crop: int = 0  # centre crop side for the Levin images (0: whole image)
    levin_kernel_size: int = 0  # 0: the true kernel's size (23)
    levin_precision: str = "default"
    check_precisions: tuple = ("float32",)
    deadline_s: float = 510.0
    levin_budget_s: float = 420.0
    precision_budget_s: float = 120.0
    batch_budget_s: float = 100.0
    compile_guess_s: float = 60.0  # assumed compile time before one was measured
    save_reserve_s: float = 15.0  # kept free at the end of the Levin run for saving
    seed: int = 0
    smoke: bool = False


def smoke_settings(**changes) -> Settings:
    """Tiny nets, 48-64 px, a few steps: the whole chain on a CPU in seconds."""
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
        precisions=("default", "float32", "bfloat16"),
        timed_steps=2,
        batches=(2,),
        levin_images=LEVIN_K23[:3],
        levin_crop=64,
        levin_kernel_size=7,
        check_precisions=("float32",),
        deadline_s=600.0,
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


def load_levin(s: Settings) -> list[dict]:
    """The Levin images as dicts (name, blurry [H, W, 1], kernel_size, crop box)."""
    from jaxdeconv.bench import datasets

    items = {it.name: it for it in datasets.load_levin(s.levin_data, list(s.levin_images))}
    out = []
    for name in s.levin_images:
        it = items[name]
        h, w = it.blurry.shape[:2]
        if s.levin_crop:
            c = min(s.levin_crop, h, w)
            box = ((h - c) // 2, (w - c) // 2, c, c)
        else:
            box = (0, 0, h, w)
        t, left, bh, bw = box
        out.append(
            dict(
                name=name,
                blurry=np.asarray(it.blurry[t : t + bh, left : left + bw], np.float32),
                kernel_size=int(s.levin_kernel_size or it.kernel_size),
                box=box,
            )
        )
    return out


def phase_data(entry: dict, s: Settings, ctx: dict) -> None:
    items = load_levin(s)
    sizes = {it["kernel_size"] for it in items}
    shapes = {it["blurry"].shape for it in items}
    if len(sizes) != 1 or len(shapes) != 1:
        raise ValueError(f"the Levin images need one shape and kernel size, got {shapes} {sizes}")
    ctx["levin"] = items
    entry.update(
        names=[it["name"] for it in items],
        shape=list(shapes.pop()),
        kernel_size=sizes.pop(),
        crop=s.levin_crop or None,
    )
    _log(f"Levin: {entry['names']} shape {entry['shape']} K {entry['kernel_size']}")


def _levin_model(s: Settings, ctx: dict) -> dict:
    """The Levin run's config, model and jitted batched init, built once and shared by the batch
    phase and the Levin groups (one model object: jitted functions are reused, not retraced)."""
    if "model" not in ctx:
        from jaxdeconv.core import train

        if ctx.get("levin"):
            shape, k = tuple(ctx["levin"][0]["blurry"].shape), ctx["levin"][0]["kernel_size"]
        else:
            side = s.levin_crop or 255
            shape, k = (side, side, 1), s.levin_kernel_size or 23
        cfg = make_config(s, k)
        model = train.build_model(cfg, shape)
        # Parameter initialisation does not depend on the precision setting (only the
        # discarded forward pass of ``init`` does), so one compiled init serves every group.
        import jax

        init = jax.jit(jax.vmap(functools.partial(train.init_state, model)))
        ctx["model"] = dict(cfg=cfg, model=model, init=init, shape=shape, kernel_size=k)
    return ctx["model"]


def _batched_step(model):
    """``step(states, ys, keys)`` for a batch: the whole per-image step vmapped, jitted, the
    states donated (as ``jaxdeconv.deblur_batch`` trains)."""
    import jax

    from jaxdeconv.core import train

    return jax.jit(jax.vmap(functools.partial(train.train_step, model)), donate_argnums=0)


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
    model = train.build_model(cfg, shape)
    t0 = time.perf_counter()
    state0 = jax.jit(functools.partial(train.init_state, model))(jax.random.key(0))
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
                step = jax.jit(functools.partial(train.train_step, model), donate_argnums=0)
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

    rows = entry.setdefault("rows", [])
    end = min(clock.elapsed() + s.batch_budget_s, s.deadline_s)
    lm = _levin_model(s, ctx)
    model, shape, k = lm["model"], lm["shape"], lm["kernel_size"]
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
            keys = jax.random.split(jax.random.key(0), b)
            states = lm["init"](keys)
            ys = jnp.asarray(rng.uniform(size=(b, *shape)), jnp.float32)
            with matmul_precision(precision):
                lowered, lower_s, _, attrs = _lower(_batched_step(model), states, ys, keys)
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
            compiled_steps[(b, precision)] = dict(
                step=compiled, step_s=per_step, compile_s=row["compile_s"]
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
) -> list[dict]:
    """Trains ``items`` in batches of ``batch`` at ``precision`` until done or ``end_s``
    (seconds on ``clock``); saves ``levin_<label>.npz`` after every batch. Returns results."""
    import jax
    import jax.numpy as jnp

    from jaxdeconv.classical import nonblind
    from jaxdeconv.core import train

    lm = _levin_model(s, ctx)
    cfg, model, init, shape, k = (lm[n] for n in ("cfg", "model", "init", "shape", "kernel_size"))
    path = os.path.join(out_dir, f"levin_{label}.npz")
    meta = dict(
        precision=precision,
        batch=batch,
        preset=s.preset,
        overrides=s.overrides,
        num_steps=s.num_steps,
        kernel_size=k,
        shape=list(shape),
        seed=s.seed,
        keys="jax.random.key(seed) per image, split into (state, loop, sample) as in "
        "jaxdeconv.run.api",
        config=cfg.to_dict(),
        device_kind=_device_kind(),
        backend=jax.default_backend(),
        versions=_versions(),
        git_commit=ctx.get("git_commit", ""),
        date=time.strftime("%Y-%m-%d", time.gmtime()),
        smoke=s.smoke,
    )
    group.update(label=label, precision=precision, batch=batch, file=os.path.basename(path))
    results: list[dict] = []
    with matmul_precision(precision):

        def outputs(state):
            return train.kernel_estimate(model, state), train.image_estimate(model, state)

        outputs_fn = jax.jit(jax.vmap(outputs))
        cached = ctx.get("compiled", {}).get((batch, precision))
        step = cached["step"] if cached else None
        log_every = max(1, int(cfg.log_every))
        for chunk_i, (chunk, n_real) in enumerate(_chunks(items, batch)):
            if clock.elapsed() + s.save_reserve_s >= end_s:
                group.setdefault("not_run", []).extend(it["name"] for it in chunk[:n_real])
                continue
            t_chunk = time.perf_counter()
            keys = jnp.stack([jax.random.key(s.seed)] * batch)
            split = jax.vmap(lambda kk: jax.random.split(kk, 3))(keys)
            key_state, key_loop = split[:, 0], split[:, 1]
            ys = jnp.asarray(np.stack([it["blurry"] for it in chunk]), jnp.float32)
            state = init(key_state)
            if step is None:
                t0 = time.perf_counter()
                step = _batched_step(model).lower(state, ys, key_loop).compile()
                group["compile_s"] = round(time.perf_counter() - t0, 2)
                _log(f"levin {label}: compiled B={batch} in {group['compile_s']:.1f} s")
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
                    _log(f"levin {label}: stopping at step {done} (deadline)")
                    break
            train_s = time.perf_counter() - t_loop
            kernels, images = jax.device_get(outputs_fn(state))
            del state
            two_stage: list = [None] * n_real
            try:
                for j in range(n_real):
                    two_stage[j] = np.asarray(
                        nonblind.hyper_laplacian_deconv(chunk[j]["blurry"], kernels[j])
                    )
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
                f"levin {label}: batch {chunk_i + 1}: {n_real} images, {done} steps in "
                f"{train_s:.1f} s ({train_s / max(done, 1) * 1e3:.2f} ms/step); saved {path}"
            )
            save_report()
    return results


def _precision_rows(report: Report) -> dict:
    rows = report.data["phases"].get("precision", {}).get("rows", [])
    by_name = {r["precision"]: r for r in rows}
    out = {}
    for r in rows:  # a setting that lowered to another's program has that one's numbers
        status = str(r.get("status", ""))
        if status.startswith("same program as"):
            other = by_name.get(status.split("'")[1], {})
            if other.get("status") == "ok":
                out[r["precision"]] = other
        elif status == "ok":
            out[r["precision"]] = r
    return out


def phase_levin(entry: dict, s: Settings, clock: Clock, report: Report, ctx: dict) -> None:
    items = ctx.get("levin")
    if not items:
        raise RuntimeError("no Levin images loaded (see the data phase)")
    start = clock.elapsed()
    end = min(start + s.levin_budget_s, s.deadline_s)
    entry.update(end_s=round(end, 1), precision=s.levin_precision)
    batch_rows = report.data["phases"].get("batch", {}).get("rows", [])
    compiled = ctx.get("compiled", {})
    options = [
        dict(batch=r["batch"], step_s=r["step_s"], compile_s=0.0)
        for r in batch_rows
        if r.get("status") == "ok" and (r["batch"], s.levin_precision) in compiled
    ]
    if not options:  # no batch timings: run the largest batch that fits in memory, to the end
        b = min(max(s.batches), len(items))
        options = [dict(batch=b, step_s=float("inf"), compile_s=s.compile_guess_s)]
        entry["note"] = "no batch timings: one batch, compiled here, runs until the deadline"
    plan = plan_levin(len(items), s.num_steps, options, end - clock.elapsed())
    if plan is None:
        plan = dict(batch=options[0]["batch"], images=min(options[0]["batch"], len(items)))
        plan.update(chunks=1, estimate_s=float("nan"), complete=False)
    entry["plan"] = plan
    _log(f"levin plan: {plan} ({end - clock.elapsed():.0f} s left)")
    groups = entry.setdefault("groups", [])
    main = {"status": "running"}
    groups.append(main)
    chosen = items[: plan["images"]]
    try:
        results = run_group(
            s.levin_precision,
            s.levin_precision,
            plan["batch"],
            chosen,
            s,
            clock,
            end,
            ctx,
            report.out_dir,
            main,
            report.save,
        )
        main["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - the precision checks below may still run
        main.update(status="error", error=_error(e), traceback=traceback.format_exc()[-4000:])
        _log(f"levin {s.levin_precision}: {main['error']}")
        results = []
    report.save()
    full = [r["name"] for r in results if r["steps_done"] == s.num_steps]
    main_step = {r["batch"]: r["step_s"] for r in batch_rows if r.get("status") == "ok"}
    single = _precision_rows(report)
    base = single.get(s.levin_precision)
    for p in s.check_precisions:
        group: dict = {"precision": p}
        groups.append(group)
        other = single.get(p)
        if p == s.levin_precision:
            group["status"] = "skipped: the main run's precision"
        elif not full:
            group["status"] = "skipped: no finished image in the main run to compare with"
        elif not other:
            group["status"] = "skipped: no single-image step time for this precision"
        elif base and base.get("program") and base.get("program") == other.get("program"):
            group["status"] = "skipped: same program as the main run's precision"
        if "status" in group:
            report.save()
            continue
        # Batch step times at this precision, scaled from the main precision's by the
        # single-image ratio (1 when the main precision's single step was not measured).
        ratio = other["step_s"] / base["step_s"] if base else 1.0
        group["step_ratio"] = ratio
        compiles = [c["compile_s"] for c in compiled.values()] + [other.get("compile_s", 0.0)]
        compile_est = 1.2 * max(compiles)
        opts = [
            dict(batch=b, step_s=t * ratio, compile_s=compile_est) for b, t in main_step.items()
        ]
        sub = plan_levin(len(full), s.num_steps, opts, end - clock.elapsed())
        group["plan"] = sub
        if not sub or not sub["complete"]:
            group["status"] = f"skipped: does not fit in the {end - clock.elapsed():.0f} s left"
            report.save()
            continue
        names = set(full[: sub["images"]])
        try:
            run_group(
                p,
                p,
                sub["batch"],
                [it for it in chosen if it["name"] in names],
                s,
                clock,
                end,
                ctx,
                report.out_dir,
                group,
                report.save,
            )
            group["status"] = "ok"
        except Exception as e:  # noqa: BLE001
            group.update(status="error", error=_error(e), traceback=traceback.format_exc()[-4000:])
            _log(f"levin {p}: {group['error']}")
        report.save()
    if main["status"] != "ok":
        entry["status"] = "error"
        entry["error"] = main.get("error", "")


# ----------------------------------------------------------------------------------------------
# The report's tables.


def _f(x, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, int | float) and math.isfinite(x) else "-"


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
    lev = ph.get("levin", {})
    if lev:
        lines += [f"## Levin run: plan {lev.get('plan')}", ""]
        lines += ["| precision | B | images done | steps | training s | s/step | status |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for g in lev.get("groups", []):
            chunks = g.get("chunks", [])
            train_s = sum(c["train_s"] for c in chunks)
            steps = sorted({c["steps_done"] for c in chunks})
            step_s = np.mean([c["step_s"] for c in chunks]) if chunks else float("nan")
            lines.append(
                f"| {g.get('precision')} | {g.get('batch', '-')} | "
                f"{len(g.get('images_done', []))} | {steps or '-'} | {_f(train_s, '.1f')} | "
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
    with phase(report, "precision", clock) as entry:
        phase_precision(entry, s, clock, report)
    with phase(report, "batch", clock) as entry:
        phase_batch(entry, s, clock, report, ctx)
    with phase(report, "levin", clock) as entry:
        phase_levin(entry, s, clock, report, ctx)
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
    for name in ("deadline_s", "levin_budget_s", "num_steps", "timed_steps", "levin_precision"):
        if f[name].present:
            changes[name] = f[name].value
    for name in ("precisions", "check_precisions", "levin_images"):
        if f[name].present:
            changes[name] = tuple(v for v in f[name].value if v)
    if f["batches"].present:
        changes["batches"] = tuple(int(v) for v in f.batches)
    s = dataclasses.replace(s, **changes)
    out = f.out or os.environ.get("OUT") or os.path.join(REPO, "runs", "gpu_report")
    run(s, out)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("out", None, "Output folder (default: $OUT, else runs/gpu_report).")
    flags.DEFINE_bool("smoke", False, "Tiny nets, 48-64 px, a few steps: a CPU check.")
    flags.DEFINE_float("deadline_s", None, "Seconds after start by which everything ends.")
    flags.DEFINE_float("levin_budget_s", None, "Most seconds for the Levin groups together.")
    flags.DEFINE_integer("num_steps", None, "Steps per image (default 5000; smoke 12).")
    flags.DEFINE_integer("timed_steps", None, "Timed steps per measurement.")
    flags.DEFINE_list("precisions", None, "jax.default_matmul_precision settings to time.")
    flags.DEFINE_list("batches", None, "Batch sizes to time (and to choose from).")
    flags.DEFINE_string("levin_precision", None, "Precision setting of the main Levin run.")
    flags.DEFINE_list("check_precisions", None, "Precisions to rerun the images with, in time.")
    flags.DEFINE_list("levin_images", None, "Levin image names (default: the 8 with K = 23).")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(_main)
