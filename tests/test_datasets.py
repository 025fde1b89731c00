"""Tests for jaxdeconv.bench.datasets on tiny fake benchmark folders, plus one check of the real
data."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from jaxdeconv.bench import datasets


def _save_png(path: pathlib.Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _gray(seed: int, shape=(20, 24)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _kernel(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size)) * 3.0  # deliberately not normalised


@pytest.fixture
def fake_levin(tmp_path):
    root = tmp_path / "data"
    for i in (1, 2):
        _save_png(root / "levin" / "sharp" / f"im{i}.png", _gray(i))
        for j in (1, 3):
            _save_png(root / "levin" / "blurry" / f"im{i}_kernel{j}.png", _gray(10 * i + j))
    (root / "levin" / "kernels").mkdir(parents=True)
    for j, size in ((1, 5), (3, 3)):
        np.save(root / "levin" / "kernels" / f"kernel{j}.npy", _kernel(size, j))
    return root


@pytest.fixture
def fake_lai(tmp_path):
    root = tmp_path / "data"
    rgb = np.random.default_rng(0).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    _save_png(root / "lai" / "sharp" / "text_01.png", rgb)
    _save_png(root / "lai" / "sharp" / "natural_02.png", rgb[::-1])
    for name in ("text_01_kernel_01", "text_01_kernel_02", "natural_02_kernel_01"):
        _save_png(root / "lai" / "blurry_y" / f"{name}.png", _gray(len(name), (18, 22)))
    (root / "lai" / "kernels").mkdir(parents=True)
    np.save(root / "lai" / "kernels" / "kernel_01.npy", _kernel(7, 1))
    np.save(root / "lai" / "kernels" / "kernel_02.npy", _kernel(5, 2))
    return root, rgb


def test_load_levin_fake(fake_levin):
    images = datasets.load_levin(fake_levin)
    assert [im.name for im in images] == [
        "im1_kernel1",
        "im1_kernel3",
        "im2_kernel1",
        "im2_kernel3",
    ]
    for im in images:
        assert im.blurry.shape == im.sharp.shape == (20, 24, 1)
        assert im.blurry.dtype == im.sharp.dtype == im.kernel.dtype == np.float32
        assert 0.0 <= im.blurry.min() and im.blurry.max() <= 1.0
        assert im.kernel.shape == (im.kernel_size, im.kernel_size)
        assert im.kernel.sum() == pytest.approx(1.0, abs=1e-6)
        assert (im.kernel >= 0).all()
    im = images[2]
    assert (im.kernel_size, im.category, im.sharp_name, im.kernel_name) == (
        5,
        "kernel1",
        "im2",
        "kernel1",
    )
    np.testing.assert_array_equal(im.sharp[..., 0], _gray(2) / np.float32(255.0))
    np.testing.assert_array_equal(im.blurry[..., 0], _gray(21) / np.float32(255.0))
    want_kernel = _kernel(5, 1) / _kernel(5, 1).sum()
    np.testing.assert_allclose(im.kernel, want_kernel, rtol=1e-6)


def test_name_filter_and_dispatch(fake_levin):
    images = datasets.load_levin(fake_levin, names=["im2_kernel3", "im1_kernel1"])
    assert [im.name for im in images] == ["im1_kernel1", "im2_kernel3"]
    same = datasets.load_dataset("levin", fake_levin, names=["im2_kernel3"])
    assert [im.name for im in same] == ["im2_kernel3"]
    with pytest.raises(ValueError, match=r"im9_kernel1.*valid names.*im1_kernel1"):
        datasets.load_levin(fake_levin, names=["im9_kernel1"])
    with pytest.raises(ValueError, match="unknown dataset 'kohler'"):
        datasets.load_dataset("kohler", fake_levin)


def test_missing_folder_and_files_are_named(fake_levin, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing folder .*nowhere.levin"):
        datasets.load_levin(tmp_path / "nowhere")
    os.remove(fake_levin / "levin" / "sharp" / "im2.png")
    os.remove(fake_levin / "levin" / "kernels" / "kernel3.npy")
    with pytest.raises(FileNotFoundError, match="incomplete under .*levin: missing") as err:
        datasets.load_levin(fake_levin)
    assert "sharp/im2.png" in str(err.value) and "kernels/kernel3.npy" in str(err.value)
    # Images that do not need the missing files still load.
    assert len(datasets.load_levin(fake_levin, names=["im1_kernel1"])) == 1
    with pytest.raises(FileNotFoundError, match="Lai dataset not found: missing folder .*lai"):
        datasets.load_lai(fake_levin)  # no lai/ folder at all ...
    (fake_levin / "lai").mkdir()
    with pytest.raises(FileNotFoundError, match="missing blurry_y/"):
        datasets.load_lai(fake_levin)  # ... or an empty one


def test_load_lai_fake_converts_rgb_to_luma(fake_lai):
    root, rgb = fake_lai
    images = datasets.load_dataset("lai", root)
    assert [im.name for im in images] == [
        "natural_02_kernel_01",
        "text_01_kernel_01",
        "text_01_kernel_02",
    ]
    im = images[1]
    assert (im.category, im.sharp_name, im.kernel_name, im.kernel_size) == (
        "text",
        "text_01",
        "kernel_01",
        7,
    )
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    want = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
    assert im.sharp.shape == (18, 22, 1) and im.sharp.dtype == np.float32
    np.testing.assert_allclose(im.sharp[..., 0], want, atol=1e-6)
    assert not np.allclose(im.sharp[..., 0] * 255.0, np.round(want * 255.0))  # no rounding
    assert im.kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert images[0].sharp_name == "natural_02"
    np.testing.assert_allclose(images[0].sharp[..., 0], want[::-1], atol=1e-6)


def test_bad_kernel_is_rejected(fake_lai):
    root, _ = fake_lai
    np.save(root / "lai" / "kernels" / "kernel_02.npy", np.ones((4, 4)))
    with pytest.raises(ValueError, match="K odd"):
        datasets.load_lai(root, names=["text_01_kernel_02"])


def _real_root() -> pathlib.Path | None:
    for candidate in (pathlib.Path("/work/shared/data"), pathlib.Path("../shared/data")):
        if (candidate / "levin" / "blurry").is_dir():
            return candidate
    return None


@pytest.mark.skipif(_real_root() is None, reason="benchmark data not available")
def test_real_levin():
    images = datasets.load_levin(_real_root())
    assert len(images) == 32
    sizes = {im.category: im.kernel_size for im in images}
    assert sizes == {f"kernel{j}": k for j, k in enumerate((19, 17, 15, 27, 13, 21, 23, 23), 1)}
    for im in images:
        assert im.blurry.shape == im.sharp.shape == (255, 255, 1)
        assert im.kernel.sum() == pytest.approx(1.0, abs=1e-5)

    # blurry ~ correlate(sharp, kernel) up to a few pixels of shift, and the correlation model
    # fits better than convolution (the kernel rotated by 180 degrees).
    im = next(im for im in images if im.name == "im1_kernel4")
    sharp = im.sharp[..., 0].astype(np.float64)
    blurry = im.blurry[..., 0].astype(np.float64)

    def best_rms(kernel):
        model = scipy.ndimage.correlate(sharp, kernel.astype(np.float64), mode="nearest")
        inner = (slice(24, -24), slice(24, -24))
        return min(
            np.sqrt(np.mean((np.roll(model, (dy, dx), axis=(0, 1))[inner] - blurry[inner]) ** 2))
            for dy in range(-6, 7)
            for dx in range(-6, 7)
        )

    corr_rms = best_rms(im.kernel)
    assert corr_rms < 5.0 / 255.0
    assert corr_rms < 0.8 * best_rms(im.kernel[::-1, ::-1])


def test_lai20_subset_rule():
    names = datasets.lai_subset("lai20")
    assert len(names) == len(set(names)) == 20
    pairs = {(n.split("_")[0], n.split("_")[-1]) for n in names}
    assert pairs == {(c, f"{j:02d}") for c in datasets.LAI_CATEGORIES for j in range(1, 5)}
    for j in range(1, 5):  # every kernel meets all five image numbers
        assert {n.split("_")[1] for n in names if n.endswith(f"kernel_{j:02d}")} == {
            f"{i:02d}" for i in range(1, 6)
        }
    assert "saturated_04_kernel_01" in names  # c = 3, j = 0: nn = 4
    assert datasets.lai_subset("all") is None
    with pytest.raises(ValueError, match="unknown Lai subset"):
        datasets.lai_subset("lai10")


def test_lazy_dataset_loads_on_demand(fake_lai, fake_levin):
    root, _ = fake_lai
    lazy = datasets.lazy_dataset("lai", root)
    eager = datasets.load_lai(root)
    assert [x.name for x in lazy] == [im.name for im in eager]
    assert [x.category for x in lazy] == [im.category for im in eager]
    got = lazy[1].load()
    np.testing.assert_array_equal(got.sharp, eager[1].sharp)
    np.testing.assert_array_equal(got.kernel, eager[1].kernel)
    assert got.tags == {}
    assert [x.name for x in datasets.lazy_dataset("levin", fake_levin, ["im2_kernel3"])] == [
        "im2_kernel3"
    ]
    with pytest.raises(ValueError, match="not in the Lai subset"):
        datasets.lazy_dataset("lai", root, ["text_01_kernel_01"], subset="lai20")
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.lazy_dataset("kohler", root)
    # Missing files are reported before anything is loaded.
    os.remove(root / "lai" / "sharp" / "natural_02.png")
    with pytest.raises(FileNotFoundError, match="sharp/natural_02.png"):
        datasets.lazy_dataset("lai", root)


def test_lazy_synthetic_cases(tmp_path):
    from jaxdeconv.bench import synthetic

    root = tmp_path / "data"
    (root / "levin" / "sharp").mkdir(parents=True)
    img = np.round(synthetic.scene(100, 100, seed=1) * 255).astype(np.uint8)
    Image.fromarray(img).save(root / "levin" / "sharp" / "im1.png")
    spec = synthetic.CaseSpec(
        name="a",
        seed=3,
        kernel_size=7,
        blur_size=5,
        support="loose",
        noise=0.01,
        jpeg_quality=0,
        smooth=False,
        height=48,
        width=48,
        source="levin/im1",
        kernel_bucket="k09-19",
        size_bucket="128",
    )
    other = synthetic.CaseSpec(**{**spec.__dict__, "name": "b", "noise": 0.02})
    items = datasets.lazy_dataset("synthetic", root, suite=[other, spec])
    assert [x.name for x in items] == ["a", "b"] and items[0].key != items[1].key
    assert items[0].key == datasets.lazy_dataset("synthetic", root, ["a"], suite=[spec])[0].key
    im = items[0].load()
    assert im.kernel_size == 7 and im.kernel.shape == (7, 7) and im.category == "k09-19"
    assert im.blurry.shape == im.sharp.shape == (48, 48, 1)
    assert im.tags["support"] == "loose" and im.tags["blur_size"] == 5
    with pytest.raises(ValueError, match="unknown synthetic case"):
        datasets.lazy_dataset("synthetic", root, ["c"], suite=[spec])
    bad = synthetic.CaseSpec(**{**spec.__dict__, "source": "lai/text_01"})
    with pytest.raises(FileNotFoundError, match="lai/text_01"):
        datasets.lazy_dataset("synthetic", root, suite=[bad])


@pytest.mark.skipif(_real_root() is None, reason="benchmark data not available")
def test_real_lai20_subset_exists():
    items = datasets.lazy_dataset("lai", _real_root(), subset="lai20")
    assert sorted(x.name for x in items) == sorted(datasets.lai_subset("lai20"))
