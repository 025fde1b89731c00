import numpy as np
import pytest

from jaxdeconv.classical import crops


def test_most_textured_crop_finds_the_textured_patch():
    img = np.full((60, 80, 1), 0.5, np.float32)
    rng = np.random.default_rng(0)
    img[30:50, 45:65, 0] = rng.uniform(size=(20, 20))
    top, left, h, w = crops.most_textured_crop(img, 24, stride=2)
    assert (h, w) == (24, 24)
    assert top <= 30 and top + h >= 50 and left <= 45 and left + w >= 65
    assert crops.crop(img, (top, left, h, w)).shape == (24, 24, 1)


def test_crop_larger_than_image_is_clipped():
    img = np.zeros((20, 30))
    assert crops.most_textured_crop(img, 64) == (0, 0, 20, 30)


def test_textured_window_keeps_the_whole_image_when_size_is_off_or_too_large():
    img = np.random.default_rng(1).uniform(size=(20, 30, 1)).astype(np.float32)
    for size in (0, 30, 64):
        window, box = crops.textured_window(img, size)
        assert box == (0, 0, 20, 30)
        np.testing.assert_array_equal(window, img)
    window, box = crops.textured_window(img, 16)
    assert window.shape == (16, 16, 1) and box == crops.most_textured_crop(img, 16)


def test_structure_selection_prefers_edges_in_every_direction_to_a_fence():
    """Parallel bars carry the most gradient but tell nothing about the blur along them; the
    'structure' score (smaller eigenvalue of the structure tensor) picks the window with edges
    in both directions, which 'gradient' passes over."""
    img = np.full((64, 160), 0.5)
    img[:, :64] = 0.5 + 0.4 * (np.arange(64) % 4 < 2)  # a fence: vertical bars 2 px wide
    img[16:48, 112:144] = 0.9  # one bright square on the right: edges both ways
    assert crops.most_textured_crop(img, 48, stride=4)[1] < 32  # the fence
    top, left, h, w = crops.most_textured_crop(img, 48, stride=4, select="structure", sigma=1.0)
    assert left <= 112 and left + w >= 144 and top <= 16 and top + h >= 48  # the square
    with pytest.raises(ValueError, match="select"):
        crops.most_textured_crop(img, 48, select="nonsense")


def test_textured_windows_rank_by_texture_and_bound_their_overlap():
    rng = np.random.default_rng(1)
    img = np.full((64, 96), 0.5)
    img[4:28, 6:30] = rng.uniform(size=(24, 24))  # the most textured patch
    img[36:60, 60:84] = 0.5 + 0.5 * rng.uniform(size=(24, 24))  # a weaker one
    for select in crops.SELECTIONS:
        boxes = crops.textured_windows(img, 24, 5, stride=2, select=select)
        assert boxes[0] == crops.most_textured_crop(img, 24, stride=2, select=select)
        assert len(boxes) == 5
        for i, a in enumerate(boxes):
            for b in boxes[:i]:
                rows = max(0, min(a[0] + 24, b[0] + 24) - max(a[0], b[0]))
                cols = max(0, min(a[1] + 24, b[1] + 24) - max(a[1], b[1]))
                assert rows * cols <= 0.25 * 24 * 24
    gradient = crops.textured_windows(img, 24, 2, stride=2)
    assert abs(gradient[1][0] - 36) <= 2 and abs(gradient[1][1] - 60) <= 2  # the second patch
    disjoint = crops.textured_windows(img, 24, 50, stride=2, max_overlap=0.0)
    assert 2 <= len(disjoint) <= 8  # at most 2 x 4 disjoint 24 px windows fit in 64 x 96
    cover = np.zeros(img.shape, int)
    for top, left, h, w in disjoint:
        cover[top : top + h, left : left + w] += 1
    assert cover.max() == 1  # disjoint
