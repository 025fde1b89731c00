import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import cli, launch
from jaxdeconv.bench import synthetic

# The command as its console script runs it (`jaxdeconv = "jaxdeconv.app.cli:run"`), through
# the interpreter running the tests, so it is this checkout's package whatever is installed.
EXE = [sys.executable, "-m", "jaxdeconv.app.cli"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(*args, env=None):
    env = None if env is None else {**os.environ, **env}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=300, env=env)


def test_help_explains_every_flag():
    r = _cmd("--help")
    assert r.returncode == 0, r.stderr  # help asked for is a success; 1 means an image failed
    out = r.stdout
    for flag in (
        "input",
        "output_dir",
        "kernel_size",
        "manifest",
        "config",
        "seed",
        "batch_size",
        "[no]resume",
        "[no]quiet",
        "checkpoint_every",
        "set",
    ):
        assert f"--{flag}:" in out


def test_folder_run_reports_failures_and_exits_non_zero(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    ex = synthetic.make_example(24, 24, 5, seed=0)
    for name in ("good", "good2"):
        Image.fromarray(np.round(ex.blurry[..., 0] * 255).astype(np.uint8)).save(
            src / f"{name}.png"
        )
    (src / "bad.jpg").write_bytes(b"garbage")
    out = tmp_path / "out"
    r = _cmd(
        f"--input={src}",
        f"--output_dir={out}",
        "--kernel_size=5",
        "--config=tiny",
        "--set=num_steps=6",
        "--set=log_every=3",
        # No device count in XLA_FLAGS, so the command splits the host; the tests' quick
        # compiles (conftest).
        env={"JAXDECONV_CPU_DEVICES": "2", "XLA_FLAGS": os.environ["XLA_FLAGS"]},
    )
    assert r.returncode == 1, r.stderr
    assert "2 deblurred, 0 skipped, 1 failed" in r.stdout
    assert "bad.jpg: not an image file" in r.stderr
    # Progress names the backend; the host was split before JAX started (runtime), and the
    # two images trained side by side, one per CPU device.
    assert "JAX backend: cpu (cpu, 2 local device(s))" in r.stderr
    assert "good, good2: step 6/6" in r.stderr and "ETA" in r.stderr  # per-batch and overall
    assert "good, good2: compiling the training step" in r.stderr  # the first minute is said
    assert os.path.isfile(out / "good_deblurred.png")
    summary = json.load(open(out / "summary.json"))
    assert [i["status"] for i in summary["images"]] == ["failed", "ok", "ok"]


def test_missing_input_and_bad_config():
    r = _cmd("--input=/no/such/file.png", "--output_dir=/tmp/jaxdeconv-test-out", "--quiet")
    assert r.returncode == 1 and "/no/such/file.png: no such file or folder" in r.stderr
    assert "failed: /no/such/file.png: no such file or folder" in r.stderr  # path kept
    with pytest.raises(ValueError, match="not a preset"):
        launch.load_config("nonsense", [])
    cfg = launch.load_config("tiny", ["num_steps=7", "optim.lr_x=0.5", "scheme=joint"])
    assert (cfg.num_steps, cfg.optim.lr_x, cfg.scheme) == (7, 0.5, "joint")
    cfg = launch.load_config(os.path.join(ROOT, "experiments/configs/variant.py:mle:tiny"), [])
    assert cfg.kernel_size == config_lib.tiny().kernel_size


@pytest.mark.parametrize(
    "item,words",
    [
        ("num_step=2000", "unknown config field 'num_step'; did you mean num_steps?"),
        ("optim.lr=0.1", "did you mean optim.lr_x or optim.lr_k"),
        ("nonsense_field=1", "unknown config field 'nonsense_field'"),
        ("num_steps=abc", "num_steps=abc: expects an integer"),
        ("num_steps=2.5", "expects an integer"),
        ("seed=True", "expects an integer"),
        ("optim.lr_x=fast", "expects a number"),
        ("refine.enabled=1", "expects True or False"),
        ("image_net.channels=8", "expects a tuple"),
        ("image_net.channels=(8.5,)", "every entry must be an integer"),
        ("num_steps=None", "cannot be None"),
        ("optim=1", "is a group of fields"),
        ("num_steps", "expected FIELD=VALUE"),
    ],
)
def test_overrides_refuse_unknown_fields_and_wrong_types(item, words):
    cfg = config_lib.tiny()
    before = cfg.to_dict()
    with pytest.raises(ValueError, match=re.escape(words)):
        config_lib.apply_overrides(cfg, ["num_steps=3", item])
    assert cfg.to_dict() == before  # nothing applied when one item is bad


def test_overrides_accept_what_the_field_takes():
    cfg = config_lib.apply_overrides(
        config_lib.tiny(),
        [
            "optim.lr_x=1",  # an integer for a float
            "image_net.channels=(4, 8)",
            "optim.decay_boundaries=[1]",
            "noise.init=0.02",  # unset by default: typed float
            "sample.noise_std=None",
            "scheme='joint'",
            "blur_method=fft",
            "refine.enabled=true",
        ],
    )
    assert cfg.optim.lr_x == 1.0 and isinstance(cfg.optim.lr_x, float)
    assert cfg.image_net.channels == (4, 8) and cfg.optim.decay_boundaries == (1.0,)
    assert cfg.noise.init == 0.02 and cfg.sample.noise_std is None
    assert (cfg.scheme, cfg.blur_method, cfg.refine.enabled) == ("joint", "fft", True)
    auto = config_lib.apply_overrides(config_lib.tiny(), ["kernel_size=auto"])
    assert auto.kernel_size == "auto" and cli.parse_kernel_size("auto") == "auto"
    assert cli.parse_kernel_size("31") == 31
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        config_lib.check_values(config_lib.apply_overrides(config_lib.tiny(), ["num_steps=0"]))
    with pytest.raises(ValueError, match="support_margin must be 1 or more"):
        config_lib.check_values(
            config_lib.apply_overrides(config_lib.tiny(), ["support_margin=0.5"])
        )


@pytest.mark.parametrize(
    "args,words",
    [
        (["--set=num_step=2000"], "unknown config field 'num_step'; did you mean num_steps?"),
        (["--config.num_step=2000"], "unknown config field 'num_step'; did you mean num_steps?"),
        (["--set=num_steps=abc"], "num_steps=abc: expects an integer"),
        (["--config.num_steps=-3"], "num_steps must be a positive integer"),
        (["--batch_size=-1"], "--batch_size=-1: must be at least 1"),
        (["--batch_size=0"], "--batch_size=0: must be at least 1"),
        (["--seeds=0"], "--seeds=0: must be at least 1"),
        (["--set=recover.seeds=0"], "recover.seeds must be a positive integer"),
        (["--checkpoint_every=-5"], "--checkpoint_every=-5: must be 0 or more"),
        (["--kernel_size=4"], "--kernel_size=4: must be a positive odd integer or 'auto'"),
        (["--kernel_size=big"], "must be a positive odd integer or 'auto'"),
        (["--config=nonsense"], "not a preset"),
    ],
)
def test_bad_command_lines_exit_2_before_any_work(tmp_path, jaxdeconv_main, capsys, args, words):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(image)
    out = tmp_path / "out"
    try:
        code, _, err = jaxdeconv_main(f"--input={image}", f"--output_dir={out}", *args)
    except SystemExit as e:  # refused while parsing the flags (launch.parse_flags)
        code, err = e.code, capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "script,item,words",
    [
        (
            "experiments/deblur.py",
            "--config.num_step=3",
            "unknown config field 'num_step'; did you mean num_steps?",
        ),
        ("experiments/ablation.py", "--set=num_steps=abc", "num_steps=abc: expects an integer"),
    ],
)
def test_launchers_share_the_override_syntax(script, item, words):
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, script), item, "--workdir=/nonexistent/x"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["--input=x.png", "--outputdir=out"], "Unknown command line flag 'outputdir'"),
        (["--output_dir=out"], "--input is required"),
        (["--input=x.png", "stray"], "unexpected arguments: stray"),
    ],
)
def test_usage_errors_exit_2_in_one_line(args, says, tmp_path):
    r = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "see --help" in lines[0], r.stderr
    assert not os.path.exists(tmp_path / "out")


def test_output_folder_in_use_is_refused_with_exit_2(tmp_path, lock_holder):
    from jaxdeconv.app import folder_lock

    src = tmp_path / "in"
    src.mkdir()
    image = synthetic.make_example(24, 24, 5, seed=0).blurry[..., 0]
    Image.fromarray((image * 255).astype(np.uint8)).save(src / "a.png")
    out = tmp_path / "out"
    # Another live process owns the folder (a child that holds the lock until told to stop).
    holder = lock_holder(out)
    try:
        r = _cmd(f"--input={src}", f"--output_dir={out}", "--config=tiny", "--quiet")
        assert r.returncode == 2, r.stderr
        assert f"in use by process {holder.pid}" in r.stderr
        assert not os.path.exists(out / "a_deblurred.png")
    finally:
        holder.communicate("")
    # The holder exited without releasing: its lock is stale and is taken over.
    assert os.path.exists(folder_lock.lock_path(str(out)))
    r = _cmd(
        f"--input={src}", f"--output_dir={out}", "--config=tiny", "--set=num_steps=4", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    assert f"process {holder.pid}" in r.stderr and "no longer running; taken over" in r.stderr
    assert os.path.isfile(out / "a_deblurred.png")
    assert not os.path.exists(folder_lock.lock_path(str(out)))  # released at the end
