import numpy as np
import pytest
from PIL import Image

from jaxdeconv import image_io


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
