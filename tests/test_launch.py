import json
import os

import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io, launch
from jaxdeconv.core import train


def test_builtin_example_writes_all_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    cfg = config_lib.tiny()
    cfg.num_steps = 10
    facts = launch.deblur_one(cfg, None, 5, str(tmp_path), example_steps=None)
    for path in facts["files"].values():
        assert os.path.getsize(path) > 0
    with open(tmp_path / "example_run.json") as f:
        saved = json.load(f)
    assert saved["kernel_size"] == 5 and saved["num_steps"] == 10
    assert set(saved["psnr_vs_sharp"]) == {"blurry", "network", "deblurred"}
    assert 0.0 <= saved["kernel_similarity"] <= 1.0 and saved["seconds_total"] > 0
    assert os.path.isfile(tmp_path / "example_comparison.png")
    kernel = np.load(tmp_path / "example_kernel.npy")
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-5


def test_example_steps_replace_the_configs_for_the_example_only(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "EXAMPLE_SIZE", 32)
    cfg = config_lib.tiny()
    cfg.num_steps = 10
    launch.deblur_one(cfg, None, 5, str(tmp_path / "ex"), example_steps=4)
    with open(tmp_path / "ex" / "example_run.json") as f:
        assert json.load(f)["num_steps"] == 4
    assert cfg.num_steps == 10  # the caller's config is not changed
    path = tmp_path / "in.png"
    Image.fromarray(np.full((24, 24), 128, np.uint8)).save(path)
    launch.deblur_one(cfg, str(path), 5, str(tmp_path / "out"), example_steps=4)
    with open(tmp_path / "out" / "in_run.json") as f:
        assert json.load(f)["num_steps"] == 10  # a photo keeps the config's steps


def test_sets_field_reads_both_override_spellings():
    assert launch.sets_field(["num_steps=100", "seed=1"], "num_steps")
    assert launch.sets_field([" num_steps = 100"], "num_steps")
    assert not launch.sets_field(["optim.num_steps=1", "num_stepsx=2"], "num_steps")


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


def test_the_example_scene_and_its_blur():
    from jaxdeconv.app import example
    from jaxdeconv.bench import synthetic

    ex = example.make(64, 9, noise=0.01, seed=3)
    assert ex.blurry.shape == ex.sharp.shape == (64, 64, 1)
    assert ex.kernel.shape == (9, 9) and abs(float(ex.kernel.sum()) - 1) < 1e-5
    # The forward model: valid correlation of the scene plus about 1% noise.
    residual = ex.blurry[..., 0] - synthetic.correlate_valid(ex.sharp_big[..., 0], ex.kernel)
    assert 0.007 < float(np.std(residual)) < 0.013
    # Edges in both directions (buildings, windows, lettering): strong gradients along x and y.
    gy, gx = np.gradient(ex.sharp[..., 0])
    assert (np.abs(gx) > 0.1).mean() > 0.02 and (np.abs(gy) > 0.1).mean() > 0.02
    assert not np.array_equal(example.make(64, 9, seed=4).sharp, ex.sharp)


def test_the_launcher_passes_the_research_hooks_on(tmp_path):
    """``deblur_one(..., spec=, step=)``: the user's spec builder and step train the image."""
    path = tmp_path / "grey.png"
    Image.fromarray((np.random.default_rng(1).uniform(size=(24, 24)) * 255).astype(np.uint8)).save(
        path
    )
    cfg = config_lib.tiny()
    cfg.num_steps = 3
    built = []

    def builder(config, shape):
        built.append(shape)
        return train.build_spec(config, shape)

    def reported_step(spec, state, y, key):
        state, metrics = train.train_step(spec, state, y, key)
        return state, {**metrics, "loss": jnp.full((), 123.0)}

    facts = launch.deblur_one(
        cfg, str(path), 5, str(tmp_path / "out"), spec=builder, step=reported_step
    )
    assert built == [(24, 24, 1)]
    assert facts["final_loss"] == 123.0  # the loss the user's step reported
