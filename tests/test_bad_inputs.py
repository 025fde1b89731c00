"""A tiny generated corpus of bad inputs beside good ones, run through the ``jaxdeconv`` command.

For every kind of bad input: the message names it, the exit code says so, the good images in the
same folder are done, and no input file changes (hashed before and after).
"""

import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

import jaxdeconv
from jaxdeconv.app import batch, image_io, inputs, launch
from jaxdeconv.app import records as records_lib
from jaxdeconv.bench import synthetic

SIZE = 24


def _grey(seed):
    return image_io.to_uint8(synthetic.make_example(SIZE, SIZE, 5, seed=seed).blurry[..., 0])


def _corpus(root):
    """``root/in`` with good images, bad ones and things that are not images, and a manifest."""
    src = root / "in"
    (src / "raw").mkdir(parents=True)
    Image.fromarray(_grey(0)).save(src / "photo.png")
    Image.fromarray(_grey(1)).save(src / "photo_network.png")  # an input that looks like an output
    rgb = np.stack([_grey(2), _grey(3), _grey(4)], axis=-1)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=32).save(src / "palette.png")
    Image.fromarray(_grey(5).astype(np.float32), "F").save(src / "float255.tif")
    Image.fromarray(_grey(5).astype(np.float32) * 4, "F").save(src / "float1000.tif")
    Image.fromarray(_grey(5).astype(np.float32) / 255 - 0.5, "F").save(src / "negative.tif")
    nan = _grey(6).astype(np.float32) / 255
    nan[3, 3] = np.nan
    Image.fromarray(nan, "F").save(src / "nan.tif")
    Image.fromarray(np.full((SIZE, SIZE), 128, np.uint8)).save(src / "constant.png")
    Image.fromarray(_grey(7)).save(src / "with, comma.png")
    Image.fromarray(_grey(8)[:3, :3]).save(src / "small.png")
    whole = (src / "photo.png").read_bytes()
    (src / "broken.png").write_bytes(whole[: len(whole) // 2])
    (src / "notes.txt").write_text("not an image")
    Image.fromarray(_grey(9)).save(src / "raw" / "inside.png")  # sub-folders are not searched
    (src / "dangling.png").symlink_to("nowhere.png")
    (src / "loop.png").symlink_to("loop.png")
    (root / "sizes.csv").write_text("name,kernel_size\nphoto,5\nghost.png,7\n")
    return src


def _snapshot(folder):
    """Every entry under ``folder``: content hash for files, target for links."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for f in dirnames + filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                state[p] = "link -> " + os.readlink(p)
            elif os.path.isfile(p):
                state[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
            else:
                state[p] = "folder"
    return state


def test_bad_input_corpus(tmp_path, jaxdeconv_main, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _corpus(tmp_path)
    before = _snapshot(src)
    tiny = ["--config=tiny", "--set=num_steps=3", "--kernel_size=5", "--quiet"]

    # The output folder is the input folder: refused before any work, nothing written.
    code, _, err = jaxdeconv_main("--input=in", "--output_dir=in", *tiny)
    assert code == 2 and "--output_dir=in is the folder of the input in" in err
    assert _snapshot(src) == before

    code, out, err = jaxdeconv_main(
        "--input=in",
        "--input=in/with, comma.png",  # a name with a comma, given on its own
        "--input=missing.png",
        "--output_dir=out",
        "--manifest=sizes.csv",
        *tiny,
    )
    assert code == 1
    assert "6 deblurred, 4 skipped, 6 failed" in out
    for words in [
        "failed: missing.png: no such file or folder",
        "failed: in/float1000.tif: floating-point image has values 164..708: neither in [0, 1] "
        "nor clearly 0..255",
        "failed: in/negative.tif: floating-point image has negative values",
        "failed: in/nan.tif: floating-point image holds 1 NaN or infinite value(s)",
        "failed: in/broken.png: cannot decode image",
        "skipped (not an image file type (sidecar or other file)): in/notes.txt",
        "failed: in/small.png: image 3x3 is smaller than the 5x5 kernel",
        "skipped (dangling symbolic link (to nowhere.png)): in/dangling.png",
        "skipped (symbolic link loop): in/loop.png",
        "skipped (sub-folder; folders are not searched recursively): in/raw",
        "manifest rows naming no input: ghost.png",
        "warning: in/constant.png: the image is constant (no detail)",
        "warning: in/float255.tif: floating-point values 41..177 read as 0..255",
    ]:
        assert words in err, words
    assert "Traceback" not in err
    summary = json.load(open(tmp_path / "out" / "summary.json"))
    status = {r["input"]: r["status"] for r in summary["images"]}
    assert summary["finished"] and summary["unmatched_manifest_rows"] == ["ghost.png"]
    for good in ("photo", "photo_network", "palette", "float255", "constant", "with, comma"):
        assert [s for i, s in status.items() if os.path.splitext(i)[0] == f"in/{good}"] == ["ok"]
        assert records_lib.outputs_complete("out", good)
    assert status["in/raw"].startswith("skipped") and status["in/loop.png"].startswith("skipped")
    records = {r["input"]: r for r in summary["images"]}
    assert "constant" in records["in/constant.png"]["warning"]
    # Colour palette -> colour result; the 0..255 float file is not white.
    assert image_io.read_image("out/palette_deblurred.png").shape == (SIZE, SIZE, 3)
    assert image_io.read_image("out/float255_deblurred.png").mean() < 0.9
    # Outputs have the permissions of a normally created file.
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat("out/photo_deblurred.png").st_mode & 0o777 == 0o666 & ~mask
    assert not os.path.exists(os.path.join("out", records_lib.CHECKPOINT_DIR))

    # The outputs are never taken as inputs by a later run, whatever their names.
    code, _, err = jaxdeconv_main("--input=out", "--output_dir=out2", *tiny)
    assert code == 1 and "out: folder has no files to deblur" in err
    assert "skipped (written by jaxdeconv in an earlier run): " in err
    assert _snapshot(src) == before  # no input changed, none added


@pytest.mark.parametrize(
    "image,words",
    [
        (np.zeros((16, 16), np.uint8), "dtype uint8"),
        (np.full((16, 16), -0.1, np.float32), "must lie in [0, 1]"),
        (np.full((16, 16), 255.0, np.float32), "must lie in [0, 1]"),
        (np.where(np.eye(16) > 0, np.nan, 0.5).astype(np.float32), "NaN"),
        (np.full((3, 16, 16), 0.5, np.float32), "looks channels-first"),
        (np.full((16, 16, 4), 0.5, np.float32), "1 or 3 channels, got 4"),
        (np.full((16, 16, 4), 0.5, np.float32), "RGBA: image[..., :3]"),
        (np.full((16, 16, 2), 0.5, np.float32), "1 or 3 channels, got 2"),
        (np.float32(0.5), "must be [H, W] or [H, W, C], got shape ()"),
        (np.zeros(16, np.float32), "must be [H, W] or [H, W, C], got shape (16,)"),
        (np.zeros((0, 0), np.float32), "has no pixels (shape (0, 0))"),
        (np.ones((16, 16), bool), "dtype bool"),
        (np.full((16, 16), 0.5, np.complex64), "complex dtype complex64"),
        (np.zeros((16, 16), np.uint8), "/ 255 for 8-bit data"),
        ([[0.5, 0.5], [0.5]], "not an array of numbers"),
    ],
)
@pytest.mark.parametrize("entry", ["deblur", "deblur_image"])
def test_library_refuses_arrays_it_cannot_use(tiny_config, image, words, entry):
    """deblur and deblur_image share one check (api.check_image): the same ValueError,
    before any work."""
    with pytest.raises(ValueError, match=re.escape(words)):
        getattr(jaxdeconv, entry)(image, tiny_config)


@pytest.mark.parametrize(
    "batch,words",
    [
        (np.full((16, 16), 0.5, np.float32), "got shape (16, 16); for one image use deblur"),
        (np.full((16, 16, 3), 0.5, np.float32), "is ambiguous"),
        (np.full((2, 16, 16, 4), 0.5, np.float32), "image 0 of the batch must have 1 or 3"),
        ([np.full((16, 16), 0.5, np.float32), np.full((8, 8), 0.5, np.float32)], "one shape"),
        ([np.full((16, 16), 0.5, np.float32), np.zeros((16, 16), np.uint8)], "image 1 of the"),
    ],
)
def test_deblur_batch_refuses_what_it_cannot_use(tiny_config, batch, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        jaxdeconv.deblur_batch(batch, tiny_config)


def test_library_says_what_a_config_and_a_batch_must_be(tiny_config):
    image = np.full((16, 16), 0.5, np.float32)
    for entry in (jaxdeconv.deblur, jaxdeconv.deblur_image):
        with pytest.raises(ValueError, match="must be an ml_collections.ConfigDict.*got dict"):
            entry(image, tiny_config.to_dict())
    with pytest.raises(ValueError, match="at least one image"):
        jaxdeconv.deblur_batch([], tiny_config)


def test_one_image_launcher_refuses_before_any_work(tmp_path, tiny_config):
    photo = tmp_path / "photo.png"
    Image.fromarray(_grey(0)).save(photo)
    with pytest.raises(launch.InputError, match="--workdir=.* is the folder of the input"):
        launch.deblur_one(tiny_config, str(photo), 5, str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    (work / "photo_kernel.png").write_bytes(b"the user's")
    with pytest.raises(launch.InputError, match="photo_kernel.png, which jaxdeconv did not write"):
        launch.deblur_one(tiny_config, str(photo), 5, str(work))
    assert (work / "photo_kernel.png").read_bytes() == b"the user's"
    with pytest.raises(launch.InputError, match="positive odd integer"):
        launch.deblur_one(tiny_config, str(photo), 4, str(work))
    with pytest.raises(launch.InputError, match="missing.png: no such file"):
        launch.deblur_one(tiny_config, str(tmp_path / "missing.png"), 5, str(work))
    assert os.listdir(work) == ["photo_kernel.png"]


def _png16(path, array):
    import png  # pypng

    mode = "L;16" if array.ndim == 2 else "RGB;16"
    png.from_array(array.reshape(array.shape[0], -1), mode).save(str(path))
    return str(path)


def test_dark_sixteen_bit_images_at_full_precision(tmp_path, tiny_config):
    # Issue 26: a dark 16-bit grey image (57 levels between 4 and 180 of 65535) was called
    # constant, and a dark 16-bit RGB image read as zeros (the high byte only).
    detail = synthetic.make_example(SIZE, SIZE, 5, seed=0).blurry[..., 0]
    grey = np.round(4 + detail * 176).astype(np.uint16)
    rgb = np.stack([np.round(10 + detail * 240).astype(np.uint16)] * 3, axis=-1)
    src = tmp_path / "in"
    src.mkdir()
    paths = [_png16(src / "grey16.png", grey), _png16(src / "rgb16.png", rgb)]
    for path, raw in zip(paths, (grey, rgb), strict=True):
        arr, notes, bits = image_io.read_image_full(path)
        assert bits == 16 and not notes
        np.testing.assert_allclose(arr.reshape(raw.shape), raw / 65535.0, rtol=1e-6)
    tiny_config.num_steps = 8
    out = tmp_path / "out"
    records = batch.process(paths, tiny_config, str(out), quiet=True)
    assert [r["status"] for r in records] == ["ok", "ok"]
    for r, raw in zip(records, (grey, rgb), strict=True):
        assert "constant" not in r.get("warning", "")
        assert "dark image" in r["warning"]
        result, _, bits = image_io.read_image_full(str(out / f"{r['name']}_deblurred.png"))
        assert bits == 16
        # Scaled back to the input's exposure, with many more than 2 levels.
        assert result.max() < 4 * raw.max() / 65535 and len(np.unique(result)) > 20


def test_alpha_and_frames_are_named(tmp_path):
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3] = _grey(0)[..., None]
    rgba[..., 3] = 255
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    frames = [Image.fromarray(_grey(i)) for i in range(3)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    _, notes = image_io.read_image_with_notes(str(tmp_path / "alpha.png"))
    assert any("alpha channel dropped" in n for n in notes)
    arr, notes = image_io.read_image_with_notes(str(tmp_path / "pages.tif"))
    assert any("3 frames" in n for n in notes)
    np.testing.assert_array_equal(image_io.to_uint8(arr[..., 0]), _grey(0))


def test_auto_size_on_a_sliver_fails_before_training(tmp_path, tiny_config, monkeypatch):
    Image.fromarray(_grey(0)[:1, :]).save(tmp_path / "sliver.png")

    def never(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(batch, "_train", never)
    (rec,) = batch.process(
        [str(tmp_path / "sliver.png")],
        tiny_config,
        str(tmp_path / "out"),
        kernel_size="auto",
        quiet=True,
    )
    assert rec["status"] == "failed"
    assert "1x24 is too small for an automatic kernel size" in rec["error"]


def test_sidecars_are_skipped_and_change_no_output_name(tmp_path, tiny_config):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_grey(0)).save(src / "a.PNG")  # any case
    (src / "a.xmp").write_text("<x:xmpmeta/>")
    (src / "a.txt").write_text("shot at f/2.8")
    paths, records = inputs.collect_inputs([str(src)])
    assert paths == [str(src / "a.PNG")]
    assert sorted(os.path.basename(r["input"]) for r in records) == ["a.txt", "a.xmp"]
    assert {r["status"] for r in records} == {
        "skipped (not an image file type (sidecar or other file))"
    }
    assert inputs.output_names(paths) == {str(src / "a.PNG"): "a"}


def test_manifest_from_a_spreadsheet(tmp_path):
    # Excel writes a byte-order mark; people type a space after the comma.
    path = tmp_path / "sizes.csv"
    path.write_bytes("\ufeffname, kernel_size\nphoto.png, 31\nother, auto\n".encode("utf-8"))
    assert inputs.read_manifest(str(path)) == {"photo.png": 31, "other": "auto"}


def _bomb_png(path, side=100000):
    """A PNG whose header declares ``side`` x ``side`` grey pixels (10^10 for the default),
    with almost no data after it: what a decompression bomb looks like to a reader."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_devices_and_bombs_fail_alone_at_once(tmp_path):
    """A FIFO, a link to /dev/zero (on the command line and in a folder) and a PNG declaring
    10^10 pixels: one line each, within seconds, and the valid image beside them is done."""
    import subprocess
    import sys

    folder, named = tmp_path / "in", tmp_path / "named"
    folder.mkdir()
    named.mkdir()
    Image.fromarray(_grey(0)).save(folder / "good.png")
    _bomb_png(folder / "bomb.png")
    for where in (folder, named):
        os.mkfifo(where / "pipe.png")
        (where / "zero.png").symlink_to("/dev/zero")
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable, "-m", "jaxdeconv.app.cli", f"--input={folder}",
            f"--input={named / 'pipe.png'}", f"--input={named / 'zero.png'}",
            f"--output_dir={out}", "--config=tiny", "--set=num_steps=3", "--quiet",
        ],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert "1 deblurred, 2 skipped, 3 failed" in r.stdout, r.stdout + r.stderr[-2000:]
    for words in (
        f"failed: {named / 'pipe.png'}: is a FIFO (named pipe), not a regular file",
        f"failed: {named / 'zero.png'}: is a character device, not a regular file",
        f"skipped (a FIFO (named pipe), not a regular file): {folder / 'pipe.png'}",
        f"skipped (a character device, not a regular file): {folder / 'zero.png'}",
        f"failed: {folder / 'bomb.png'}: declares more pixels than the decoder's safety limit",
    ):
        assert any(words in line for line in r.stderr.splitlines()), (words, r.stderr)
    summary = json.load(open(out / "summary.json"))
    status = {os.path.basename(x["input"]): x["status"] for x in summary["images"]}
    assert summary["finished"] and status["good.png"] == "ok" and status["bomb.png"] == "failed"
    assert records_lib.outputs_complete(str(out), "good")
    assert _snapshot(tmp_path / "in") == {k: v for k, v in before.items() if "/in/" in k}
