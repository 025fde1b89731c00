import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxdeconv import cli, synthetic

EXE = shutil.which("jaxdeconv") or os.path.join(os.path.dirname(sys.executable), "jaxdeconv")


def _cmd(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


def test_help_explains_every_flag():
    out = _cmd("--help").stdout
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
    Image.fromarray(np.round(ex.blurry[..., 0] * 255).astype(np.uint8)).save(src / "good.png")
    (src / "bad.jpg").write_bytes(b"garbage")
    out = tmp_path / "out"
    r = _cmd(
        f"--input={src}",
        f"--output_dir={out}",
        "--kernel_size=5",
        "--config=tiny",
        "--set=num_steps=6",
        "--set=log_every=3",
    )
    assert r.returncode == 1, r.stderr
    assert "1 deblurred, 0 skipped, 1 failed" in r.stdout
    assert "bad.jpg: not an image file" in r.stderr
    assert "JAX backend" in r.stderr  # progress names the device
    assert "good: step 6/6" in r.stderr and "ETA" in r.stderr  # per-batch and overall
    assert os.path.isfile(out / "good_deblurred.png")
    summary = json.load(open(out / "summary.json"))
    assert [i["status"] for i in summary["images"]] == ["failed", "ok"]


def test_missing_input_and_bad_config():
    r = _cmd("--input=/no/such/file.png", "--output_dir=/tmp/jaxdeconv-test-out", "--quiet")
    assert r.returncode == 1 and "/no/such/file.png: no such file or folder" in r.stderr
    with pytest.raises(ValueError, match="not a preset"):
        cli.load_config("nonsense", [])
    cfg = cli.load_config("tiny", ["num_steps=7", "optim.lr_x=0.5", "scheme=joint"])
    assert (cfg.num_steps, cfg.optim.lr_x, cfg.scheme) == (7, 0.5, "joint")
