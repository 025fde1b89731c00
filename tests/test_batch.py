import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

import jaxdeconv
from jaxdeconv import batch, image_io, synthetic


@pytest.fixture
def cfg(tiny_config):
    tiny_config.num_steps = 8
    tiny_config.log_every = 4
    return tiny_config


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def _grey(seed, shape=(24, 24)):
    ex = synthetic.make_example(shape[0], shape[1], 5, seed=seed)
    return image_io.to_uint8(ex.blurry[..., 0])


def test_batch_result_equals_single_run(cfg):
    images = [synthetic.make_example(24, 24, 5, seed=s).blurry for s in (0, 1)]
    batched = jaxdeconv.deblur_batch(images, cfg)
    for image, got in zip(images, batched, strict=True):
        alone = jaxdeconv.deblur(image, cfg, key=jax.random.key(cfg.seed))
        np.testing.assert_allclose(got.kernel, alone.kernel, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(got.image, alone.image, atol=1e-4)
        # float32 summation order differs under vmap; see tests/test_train.py
        np.testing.assert_allclose(got.loss_history, alone.loss_history, rtol=1e-3)


def test_checkpoint_resume_reproduces_uninterrupted_run(cfg, tmp_path):
    blurry = synthetic.make_example(24, 24, 5, seed=0).blurry
    full = jaxdeconv.deblur(blurry, cfg)
    cfg.checkpoint_every = 4
    # An interrupted run: train 4 of 8 steps, checkpointing at step 4.
    short = cfg.copy_and_resolve_references()
    short.num_steps = 8
    ckpt = str(tmp_path / "ckpt")

    class Stop(Exception):
        pass

    def stop_after_checkpoint(step, _):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        jaxdeconv.deblur(blurry, short, checkpoint_dir=ckpt, callback=stop_after_checkpoint)
    assert os.listdir(ckpt)
    resumed = jaxdeconv.deblur(blurry, cfg, checkpoint_dir=ckpt)
    np.testing.assert_allclose(resumed.kernel, full.kernel, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(resumed.loss_history, full.loss_history, rtol=1e-5)


def test_folder_with_good_colour_and_broken_files(cfg, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    grey = _save(src / "grey.png", _grey(0))
    rgb = np.stack([_grey(1), _grey(2), _grey(3)], axis=-1)
    colour = _save(src / "colour.png", rgb)
    rgba = _save(
        src / "alpha.png",
        np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1),
    )
    whole = open(_save(tmp_path / "whole.png", _grey(5)), "rb").read()
    (src / "broken.png").write_bytes(whole[: len(whole) // 2])  # truncated: corrupt
    (src / "notes.txt").write_text("hello")
    _save(src / "small.png", _grey(4)[:3, :3])
    before = {p: open(p, "rb").read() for p in (grey, colour, rgba)}
    out = tmp_path / "out"
    records = batch.process(
        [str(src / f) for f in sorted(os.listdir(src))], cfg, str(out), quiet=True
    )
    status = {r["name"]: r for r in records}
    for name in ("grey", "colour", "alpha"):
        assert status[name]["status"] == "ok"
        assert batch.outputs_complete(str(out), name)
    for name, words in [
        ("broken", "cannot decode"),
        ("notes", "not an image"),
        ("small", "smaller than the 5x5 kernel"),
    ]:
        assert status[name]["status"] == "failed"
        assert words in status[name]["error"] and name in status[name]["error"]
    assert image_io.read_image(str(out / "colour_deblurred.png")).shape == (24, 24, 3)
    assert image_io.read_image(str(out / "grey_deblurred.png")).shape == (24, 24, 1)
    for p, data in before.items():
        assert open(p, "rb").read() == data  # inputs untouched
    summary = json.load(open(out / "summary.json"))
    assert len(summary["images"]) == 6
    assert open(out / "summary.csv").read().count("\n") == 7
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]


def test_resume_skips_complete_outputs(cfg, tmp_path, monkeypatch):
    src = _save(tmp_path / "a.png", _grey(0))
    out = str(tmp_path / "out")
    assert batch.process([src], cfg, out, quiet=True)[0]["status"] == "ok"

    def fail(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(batch, "_train", fail)
    assert batch.process([src], cfg, out, quiet=True, resume=True)[0]["status"].startswith(
        "skipped"
    )
    os.remove(os.path.join(out, "a_kernel.npy"))  # incomplete outputs: trained again
    rec = batch.process([src], cfg, out, quiet=True, resume=True)[0]
    assert rec["status"] == "failed" and "trained again" in rec["error"]


@pytest.mark.parametrize(
    "k,words", [(4, "positive odd"), (0, "positive odd"), (-3, "positive odd")]
)
def test_bad_kernel_sizes_fail_cleanly(cfg, tmp_path, k, words):
    src = _save(tmp_path / "a.png", _grey(0))
    rec = batch.process([src], cfg, str(tmp_path / "o"), kernel_size=k, quiet=True)[0]
    assert rec["status"] == "failed" and words in rec["error"] and "a.png" in rec["error"]


def test_collect_inputs_and_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    a = _save(tmp_path / "d" / "a.png", _grey(0))
    b = _save(tmp_path / "b.jpg", _grey(1))
    paths, failures = batch.collect_inputs(
        [
            str(tmp_path / "d"),
            str(tmp_path / "*.jpg"),
            a,
            str(tmp_path / "missing.png"),
            str(tmp_path / "*.tif"),
        ]
    )
    assert paths == [a, b]
    assert [f["error"] for f in failures] == [
        f"{tmp_path / 'missing.png'}: no such file or folder",
        f"{tmp_path / '*.tif'}: pattern matched no files",
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,kernel_size\na.png,7\nb,9\nc,auto\n")
    sizes = batch.read_manifest(str(manifest))
    assert sizes == {"a.png": 7, "b": 9, "c": "auto"}
    assert batch.unmatched_manifest_rows(sizes, paths) == ["c"]
    manifest.write_text("name,kernel_size\na.png,seven\n")
    with pytest.raises(ValueError, match="not an integer"):
        batch.read_manifest(str(manifest))


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot be written"):
        batch.check_output_dir(str(blocker / "sub"))
