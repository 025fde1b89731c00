"""A tiny generated corpus of bad inputs beside good ones, run through the ``jaxdeconv`` command.

For every kind of bad input: the message names it, the exit code says so, the good images in the
same folder are done, and no input file changes (hashed before and after).
"""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

import jaxdeconv
from jaxdeconv import batch, image_io, launch, synthetic

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
    assert "6 deblurred, 3 skipped, 7 failed" in out
    for words in [
        "failed: missing.png: no such file or folder",
        "failed: in/float1000.tif: floating-point image has values 164..708: neither in [0, 1] "
        "nor clearly 0..255",
        "failed: in/negative.tif: floating-point image has negative values",
        "failed: in/nan.tif: floating-point image holds 1 NaN or infinite value(s)",
        "failed: in/broken.png: cannot decode image",
        "failed: in/notes.txt: not an image file",
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
        assert batch.outputs_complete("out", good)
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
    assert not os.path.exists(os.path.join("out", batch.CHECKPOINT_DIR))

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
    ],
)
def test_library_refuses_arrays_it_cannot_use(tiny_config, image, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        jaxdeconv.deblur(image, tiny_config)


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
