import json
import os

import numpy as np
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io, launch


def test_builtin_example_writes_all_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    cfg = config_lib.tiny()
    cfg.num_steps = 10
    facts = launch.deblur_one(cfg, None, 5, str(tmp_path))
    for path in facts["files"].values():
        assert os.path.getsize(path) > 0
    with open(tmp_path / "example_run.json") as f:
        saved = json.load(f)
    assert saved["kernel_size"] == 5 and saved["num_steps"] == 10
    assert set(saved["psnr_vs_sharp"]) == {"blurry", "network", "deblurred"}
    kernel = np.load(tmp_path / "example_kernel.npy")
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-5


def test_builtin_example_with_automatic_kernel_size(tmp_path, monkeypatch):
    # config.kernel_size = "auto" and no --kernel_size: the example keeps its own blur and the
    # run reports the size it chose (this raised a TypeError before).
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    monkeypatch.setattr(launch, "EXAMPLE_KERNEL_SIZE", 5)
    cfg = config_lib.tiny()
    cfg.num_steps = 3
    cfg.kernel_size = "auto"
    launch.deblur_one(cfg, None, None, str(tmp_path))
    with open(tmp_path / "example_run.json") as f:
        saved = json.load(f)
    used = saved["kernel_size_used"]
    assert used % 2 == 1 and np.load(tmp_path / "example_kernel.npy").shape == (used, used)


def test_colour_input_keeps_colour_and_input_untouched(tmp_path):
    rgb = (np.random.default_rng(0).uniform(size=(24, 28, 3)) * 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    before = path.read_bytes()
    cfg = config_lib.tiny()
    cfg.num_steps = 5
    launch.deblur_one(cfg, str(path), 5, str(tmp_path / "out"))
    out = image_io.read_image(str(tmp_path / "out" / "photo_deblurred.png"))
    assert out.shape == (24, 28, 3)
    assert image_io.read_image(str(tmp_path / "out" / "photo_network.png")).shape == (24, 28, 1)
    assert path.read_bytes() == before
