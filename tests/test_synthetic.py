"""Tests for the development suite's generator (jaxdeconv.bench.synthetic): kernels, specs,
cases."""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
import pytest
import scipy.signal
from PIL import Image

from jaxdeconv.bench import synthetic


def _support(k: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(k.any(axis=1))[0], np.nonzero(k.any(axis=0))[0]
    return rows[0], rows[-1], cols[0], cols[-1]


@pytest.mark.parametrize("size", [9, 23, 51, 75])
def test_shake_kernel_tight_is_normalised_and_touches_the_border(size):
    for seed in range(4):
        k = synthetic.shake_kernel(size, seed=seed)
        assert k.shape == (size, size) and k.dtype == np.float32
        assert (k >= 0).all() and k.sum() == pytest.approx(1.0, abs=1e-5)
        top, bottom, left, right = _support(k)
        # The blur spans the whole window along its longer side.
        assert (top == 0 and bottom == size - 1) or (left == 0 and right == size - 1)
        assert k.max() < 0.5  # a trajectory, not a delta


@pytest.mark.parametrize(("size", "blur"), [(9, 5), (31, 17), (75, 39)])
def test_shake_kernel_loose_leaves_an_empty_margin(size, blur):
    k = synthetic.shake_kernel(size, blur, seed=3)
    assert k.sum() == pytest.approx(1.0, abs=1e-5) and (k >= 0).all()
    top, bottom, left, right = _support(k)
    assert max(bottom - top, right - left) + 1 == blur  # the blur's extent is as asked
    margin = (size - blur) // 2
    assert min(top, left, size - 1 - bottom, size - 1 - right) >= margin


def test_shake_kernel_is_deterministic_per_seed_and_checks_sizes():
    np.testing.assert_array_equal(
        synthetic.shake_kernel(21, seed=5), synthetic.shake_kernel(21, seed=5)
    )
    assert not np.array_equal(
        synthetic.shake_kernel(21, seed=5), synthetic.shake_kernel(21, seed=6)
    )
    with pytest.raises(ValueError, match="odd"):
        synthetic.shake_kernel(20)
    with pytest.raises(ValueError, match="blur_size"):
        synthetic.shake_kernel(21, 23)


def test_suite_is_deterministic_and_covers_every_bucket():
    dev = synthetic.suite(seed=0, size="dev")
    assert dev == synthetic.suite(seed=0, size="dev")
    assert dev != synthetic.suite(seed=1, size="dev")
    assert len(dev) == 24 and len({s.name for s in dev}) == 24
    quick = synthetic.suite(seed=0, size="quick")
    assert len(quick) == 8 and set(quick) <= set(dev)
    for specs in (dev, quick):
        assert {s.kernel_bucket for s in specs} == set(synthetic.KERNEL_BUCKETS)
        assert {s.support for s in specs} == {"tight", "loose"}
        assert {s.noise for s in specs} == set(synthetic.NOISE_LEVELS)
        assert {s.jpeg_quality > 0 for s in specs} == {True, False}
        assert {s.smooth for s in specs} == {True, False}
        assert {s.size_bucket for s in specs} == set(synthetic.SIZE_BUCKETS)
    assert {s.source.split("/")[0] for s in dev} == {"lai", "levin"}
    for s in dev:
        lo, hi = synthetic.KERNEL_BUCKETS[s.kernel_bucket]
        assert lo <= s.kernel_size <= hi and s.kernel_size % 2 == 1 and s.blur_size % 2 == 1
        if s.support == "tight":
            assert s.blur_size == s.kernel_size
        else:  # K is 30-100% larger than the blur (up to the rounding to odd sizes)
            assert 1.2 * s.blur_size <= s.kernel_size <= 2.5 * s.blur_size
        assert 0 == s.jpeg_quality or 75 <= s.jpeg_quality <= 90
        sh, sw = synthetic.SOURCES[s.source]
        assert sh >= s.height + s.kernel_size - 1 and sw >= s.width + s.kernel_size - 1
        assert 128 <= max(s.height, s.width) <= 1024
    with pytest.raises(ValueError, match="unknown suite"):
        synthetic.suite(size="huge")


def _fake_root(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "data"
    (root / "levin" / "sharp").mkdir(parents=True)
    img = np.round(synthetic.scene(120, 120, seed=4) * 255).astype(np.uint8)
    Image.fromarray(img).save(root / "levin" / "sharp" / "im1.png")
    return root


def _spec(**kw) -> synthetic.CaseSpec:
    base = dict(
        name="t",
        seed=11,
        kernel_size=9,
        blur_size=9,
        support="tight",
        noise=0.0,
        jpeg_quality=0,
        smooth=False,
        height=64,
        width=72,
        source="levin/im1",
        kernel_bucket="k09-19",
        size_bucket="128",
    )
    base.update(kw)
    return synthetic.CaseSpec(**base)


def test_make_case_follows_the_forward_model(tmp_path):
    root = _fake_root(tmp_path)
    spec = _spec()
    case = synthetic.make_case(spec, str(root))
    again = synthetic.make_case(spec, str(root))
    for a, b in zip(case[:3], again[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert case.blurry.shape == case.sharp.shape == (64, 72, 1)
    assert case.blurry.dtype == case.sharp.dtype == np.float32
    np.testing.assert_array_equal(case.kernel, synthetic.shake_kernel(9, 9, seed=11))
    # Valid correlation of the larger crop; the sharp image is that crop's centre.
    src = synthetic.read_source(str(root), "levin/im1")
    top, left, hb, wb = case.box
    big = src[top : top + hb, left : left + wb]
    want = scipy.signal.correlate(big, case.kernel.astype(np.float64), mode="valid")
    np.testing.assert_allclose(case.blurry[..., 0], want, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(case.sharp[..., 0], big[4:-4, 4:-4], atol=1e-6)


def test_make_case_noise_jpeg_and_small_sources(tmp_path):
    root = str(_fake_root(tmp_path))
    clean = synthetic.make_case(_spec(), root)
    for level in (0.01, 0.02):
        noisy = synthetic.make_case(_spec(noise=level), root)
        residual = (noisy.blurry - clean.blurry)[..., 0]
        assert np.std(residual) == pytest.approx(level, rel=0.15)
    jpeg = synthetic.make_case(_spec(jpeg_quality=80), root)
    diff = np.abs(jpeg.blurry - clean.blurry)
    assert 0 < diff.mean() < 0.02  # compressed, yet the same picture
    with pytest.raises(ValueError, match="smaller than"):
        synthetic.make_case(_spec(height=120), root)
    with pytest.raises(FileNotFoundError, match="levin/im9"):
        synthetic.make_case(_spec(source="levin/im9"), root)


def test_smooth_crop_has_less_texture(tmp_path):
    root = str(_fake_root(tmp_path))

    def texture(case):
        x = case.sharp[..., 0].astype(np.float64)
        return np.mean(np.hypot(np.diff(x, axis=0)[:, :-1], np.diff(x, axis=1)[:-1]))

    spec = _spec(height=48, width=48)
    smooth = [
        texture(synthetic.make_case(dataclasses.replace(spec, seed=s, smooth=True), root))
        for s in range(3)
    ]
    busy = [texture(synthetic.make_case(dataclasses.replace(spec, seed=s), root)) for s in range(3)]
    assert max(smooth) < min(busy)


def _real_root() -> pathlib.Path | None:
    for candidate in (pathlib.Path("/work/shared/data"), pathlib.Path("../shared/data")):
        if (candidate / "lai" / "sharp").is_dir() and (candidate / "levin" / "sharp").is_dir():
            return candidate
    return None


@pytest.mark.skipif(_real_root() is None, reason="benchmark data not available")
def test_sources_table_matches_the_files():
    for name, (h, w) in synthetic.SOURCES.items():
        path = synthetic.source_path(str(_real_root()), name)
        assert os.path.isfile(path), path
        with Image.open(path) as im:
            assert im.size == (w, h), name
