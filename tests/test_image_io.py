import os
import re

import numpy as np
import pytest
from PIL import Image

from jaxdeconv.app import image_io


def test_8_and_16_bit_and_rgba(tmp_path):
    g8 = np.array([[0, 128, 255]], np.uint8)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    np.testing.assert_allclose(
        image_io.read_image(str(tmp_path / "g8.png"))[..., 0], g8 / 255, atol=1e-6
    )
    g16 = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    got = image_io.read_image(str(tmp_path / "g16.png"))
    np.testing.assert_allclose(got[..., 0], g16 / 65535, atol=1e-6)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    assert image_io.read_image(str(tmp_path / "c.png")).shape == (2, 3, 3)
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.tif")
    np.testing.assert_allclose(image_io.read_image(str(tmp_path / "c.tif")), rgb / 255, atol=1e-6)
    smooth = np.stack([*np.meshgrid(np.arange(16), np.arange(16)), np.full((16, 16), 8)], -1)
    smooth = (smooth * 15).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "c.jpg", quality=95)
    got = image_io.read_image(str(tmp_path / "c.jpg"))
    assert got.shape == (16, 16, 3) and np.abs(got - smooth / 255).mean() < 0.02


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((2, 4), np.uint8)
    img[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=100)
    assert image_io.read_image(str(tmp_path / "o.jpg")).shape == (4, 2, 1)
    assert image_io.probe_shape(str(tmp_path / "o.jpg")) == (4, 2)  # header only, same answer


def test_probe_reads_the_header_only(tmp_path):
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # pixels missing, header fine
    assert image_io.probe_shape(str(tmp_path / "a.png")) == (30, 50)
    assert image_io.probe_shape(str(tmp_path / "cut.png")) == (30, 50)
    with pytest.raises(image_io.ImageReadError, match="cut.png: cannot decode"):
        image_io.read_image(str(tmp_path / "cut.png"))
    (tmp_path / "x.png").write_bytes(b"nonsense")
    for name, why in (("x.png", "not an image"), ("none.png", "no such file")):
        with pytest.raises(image_io.ImageReadError, match=f"{name}: {why}"):
            image_io.probe_shape(str(tmp_path / name))


def test_errors_name_the_file(tmp_path):
    with pytest.raises(image_io.ImageReadError, match="missing.png: no such file"):
        image_io.read_image(str(tmp_path / "missing.png"))
    (tmp_path / "x.png").write_bytes(b"nonsense")
    with pytest.raises(image_io.ImageReadError, match="x.png: not an image"):
        image_io.read_image(str(tmp_path / "x.png"))


def test_colour_round_trip_and_atomic_write(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3)).astype(np.float32) / 255
    image_io.write_image(str(tmp_path / "r.png"), rgb)
    np.testing.assert_allclose(image_io.read_image(str(tmp_path / "r.png")), rgb, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]


def test_palette_cmyk_and_grey_alpha_modes(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3] = (200, 30, 10)
    rgb[:, 3:] = (10, 40, 220)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    got = image_io.read_image(str(tmp_path / "p.png"))
    assert got.shape == (4, 6, 3)  # a colour palette stays colour
    np.testing.assert_allclose(got, rgb / 255, atol=1 / 255)
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(grey).convert("P").save(tmp_path / "pg.png")
    np.testing.assert_allclose(
        image_io.read_image(str(tmp_path / "pg.png"))[..., 0], grey / 255, atol=1e-6
    )
    pt = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4)
    pt.save(tmp_path / "pt.png", transparency=0)  # palette with a transparent entry
    assert image_io.read_image(str(tmp_path / "pt.png")).shape == (4, 6, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.tif")
    np.testing.assert_allclose(image_io.read_image(str(tmp_path / "c.tif")), rgb / 255, atol=0.02)
    Image.fromarray(grey).convert("LA").save(tmp_path / "la.png")
    assert image_io.read_image(str(tmp_path / "la.png")).shape == (4, 6, 1)


def test_float_files_mapped_by_their_range_or_refused(tmp_path):
    data = np.linspace(0, 255, 24, dtype=np.float32).reshape(4, 6)
    Image.fromarray(data, "F").save(tmp_path / "f255.tif")
    got, notes = image_io.read_image_with_notes(str(tmp_path / "f255.tif"))
    np.testing.assert_allclose(got[..., 0], data / 255, atol=1e-6)  # not clipped to white
    assert "0..255" in notes[0]
    Image.fromarray(data / 255, "F").save(tmp_path / "f1.tif")
    assert image_io.read_image_with_notes(str(tmp_path / "f1.tif"))[1] == []
    for name, values, words in [
        ("big.tif", data * 4, "neither in [0, 1] nor clearly 0..255"),
        ("over.tif", data / 255 * 1.2, "neither in [0, 1] nor clearly 0..255"),
        ("neg.tif", data / 255 - 0.5, "negative values"),
        ("nan.tif", np.where(data > 100, np.nan, data / 255), "NaN"),
    ]:
        Image.fromarray(values.astype(np.float32), "F").save(tmp_path / name)
        with pytest.raises(
            image_io.ImageReadError, match=re.escape(name) + ": .*" + re.escape(words)
        ):
            image_io.read_image(str(tmp_path / name))
    Image.fromarray(np.full((4, 6), 100000, np.int32), "I").save(tmp_path / "i32.tif")
    with pytest.raises(image_io.ImageReadError, match="outside 0..65535"):
        image_io.read_image(str(tmp_path / "i32.tif"))


def test_links_name_their_problem(tmp_path):
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "dangling.png").symlink_to("nowhere.png")
    with pytest.raises(image_io.ImageReadError, match="loop.png: symbolic link loop"):
        image_io.read_image(str(tmp_path / "loop.png"))
    with pytest.raises(image_io.ImageReadError, match="dangling.png: dangling symbolic link"):
        image_io.read_image(str(tmp_path / "dangling.png"))


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_normal_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        image_io.write_image(str(tmp_path / "a.png"), np.zeros((2, 2)))
        image_io.write_json(str(tmp_path / "a.json"), {})
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    expected = os.stat(tmp_path / "plain").st_mode & 0o777
    assert expected == 0o666 & ~umask
    for name in ("a.png", "a.json"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == expected


def test_stale_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    import time

    folder = str(tmp_path)
    tag = image_io.tmp_prefix().split("-")[1]
    names = {
        "dead": f".tmp-{tag}-{2**30}-abc.png",  # this host, a pid that cannot run: removed
        "mine": image_io.tmp_prefix() + "def.png",  # this process, writing: kept
        "old": ".tmp-ffffffff-12-ghi.npy",  # another host, 20 minutes old: removed
        "fresh": ".tmp-ffffffff-13-jkl.npy",  # another host, just written: kept
        "legacy": ".tmp-mno.json",  # an older version's name, 20 minutes old: removed
        "user": "tmp-notes.png",  # not ours
    }
    for name in names.values():
        open(os.path.join(folder, name), "w").close()
    old = time.time() - 1200
    for key in ("old", "legacy"):
        os.utime(os.path.join(folder, names[key]), (old, old))
    removed = image_io.remove_stale_tmp_files(folder)
    assert sorted(removed) == sorted(names[k] for k in ("dead", "old", "legacy"))
    assert sorted(os.listdir(folder)) == sorted(names[k] for k in ("mine", "fresh", "user"))


def test_progress_lines_stay_one_line_whatever_the_name():
    import io

    from jaxdeconv.app.progress import Progress

    stream = io.StringIO()
    Progress(1, stream=stream).line("a\nb\rc\x1b[2Jd.png: done")
    assert stream.getvalue() == "a\\nb\\rc\\x1b[2Jd.png: done\n"


def test_save_outputs_writes_every_file_of_one_image(tmp_path):
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    kernel = np.full((5, 5), 1 / 25, np.float32)
    outputs = SimpleNamespace(
        deblurred=rng.random((20, 24, 3)).astype(np.float32),
        network=rng.random((16, 16, 1)).astype(np.float32),
        kernel=kernel,
        uncertainty=(0.1 * rng.random((16, 16, 1))).astype(np.float32),
    )
    paths = image_io.save_outputs(str(tmp_path), "x", outputs, bits=16)
    assert sorted(os.path.basename(p) for p in paths.values()) == [
        "x_deblurred.png",
        "x_kernel.npy",
        "x_kernel.png",
        "x_network.png",
        "x_uncertainty.npy",
        "x_uncertainty.png",
    ]
    np.testing.assert_array_equal(np.load(paths["kernel_npy"]), kernel)
    np.testing.assert_array_equal(np.load(paths["uncertainty_npy"]), outputs.uncertainty)
    deblurred, _, bits = image_io.read_image_full(paths["deblurred"])
    assert bits == 16 and deblurred.shape == (20, 24, 3)
    np.testing.assert_allclose(deblurred, outputs.deblurred, atol=1 / 65535)
    # The uncertainty picture is scaled so its largest deviation is white.
    assert image_io.read_image(paths["uncertainty_png"]).max() == 1.0
    blurry = rng.random((20, 24, 3)).astype(np.float32)
    paths = image_io.save_outputs(str(tmp_path), "y", outputs, blurry=blurry, true_kernel=kernel)
    assert os.path.isfile(paths["comparison"])
    assert image_io.read_image_full(paths["deblurred"])[2] == 8
