import json
import os

import numpy as np
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv import image_io, launch


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
