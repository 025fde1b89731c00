"""jaxdeconv.classical.evidence: the marginal likelihood of a blurry image under a kernel."""

import numpy as np
import pytest

from jaxdeconv.bench import synthetic
from jaxdeconv.classical import evidence
from jaxdeconv.core import blur


def _blurred(kernel, seed=0, noise=0.002):
    x = synthetic.scene(96 + kernel.shape[0] - 1, 96 + kernel.shape[1] - 1, seed=seed)
    y = blur.valid_correlate_numpy(x, kernel)
    return y + noise * np.random.default_rng(seed).standard_normal(y.shape)


def _line(size, horizontal=True):
    k = np.zeros((size, size))
    if horizontal:
        k[size // 2, 1:-1] = 1.0
    else:
        k[1:-1, size // 2] = 1.0
    return k / k.sum()


def test_the_true_kernel_beats_no_blur_and_the_wrong_direction():
    k = _line(11)
    y = _blurred(k)
    delta = np.zeros((11, 11))
    delta[5, 5] = 1.0
    true = evidence.log_evidence(y, k)
    assert true > evidence.log_evidence(y, delta) + 0.1  # no blur does not explain the image
    assert true > evidence.log_evidence(y, _line(11, horizontal=False)) + 0.1
    assert true > evidence.log_evidence(y, _line(7)) > evidence.log_evidence(y, delta)


def test_a_motion_kernel_is_preferred_to_its_neighbours():
    k = synthetic.motion_kernel(13, seed=3)
    y = _blurred(k, seed=1)
    true = evidence.log_evidence(y, k)
    for other_seed in (4, 5, 6):
        assert true > evidence.log_evidence(y, synthetic.motion_kernel(13, seed=other_seed))


def test_power_only_a_mirrored_or_shifted_kernel_scores_alike():
    k = synthetic.motion_kernel(9, seed=2)
    y = _blurred(k)
    assert evidence.log_evidence(y, k[::-1, ::-1]) == pytest.approx(
        evidence.log_evidence(y, k), abs=1e-5
    )
    shifted = np.zeros((11, 11))
    shifted[2:, :9] = k
    assert evidence.log_evidence(y, shifted) == pytest.approx(evidence.log_evidence(y, k), abs=1e-5)


def test_periodic_component_removes_a_harmonic_part_that_carries_the_border_jumps():
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.0, 1.0, 48), (32, 1)) + 0.05 * rng.standard_normal((32, 48))
    p = np.asarray(evidence.periodic_component(ramp), np.float64)
    smooth = ramp - p
    lap = (
        np.roll(smooth, 1, 0)
        + np.roll(smooth, -1, 0)
        + np.roll(smooth, 1, 1)
        + np.roll(smooth, -1, 1)
        - 4 * smooth
    )
    assert abs(lap[1:-1, 1:-1]).max() < 1e-4  # the removed part is harmonic inside
    assert abs(p.mean() - ramp.mean()) < 1e-5  # and has zero mean
    assert abs(p[:, -1] - p[:, 0]).mean() < 0.2 * abs(ramp[:, -1] - ramp[:, 0]).mean()
    flat = np.full((16, 16), 0.3)
    np.testing.assert_allclose(evidence.periodic_component(flat), flat, atol=1e-6)


def test_bad_kernels_are_refused():
    y = np.random.default_rng(0).random((20, 20))
    with pytest.raises(ValueError, match="fit"):
        evidence.log_evidence(y, np.ones((25, 25)))
    with pytest.raises(ValueError, match="mass"):
        evidence.log_evidence(y, np.zeros((5, 5)))
    with pytest.raises(ValueError, match="image"):
        evidence.periodic_component(np.ones((4, 4, 3, 2)))


def test_with_camera_blur_is_the_full_convolution_with_a_normalised_gaussian():
    from scipy.ndimage import gaussian_filter

    k = synthetic.motion_kernel(9, seed=2)
    np.testing.assert_array_equal(evidence.with_camera_blur(k, 0.0), k)
    out = evidence.with_camera_blur(k, 0.75)  # radius round(4 * 0.75) = 3
    assert out.shape == (15, 15)
    np.testing.assert_allclose(out, gaussian_filter(np.pad(k, 3), 0.75), atol=1e-12)
    assert out.sum() == pytest.approx(k.sum())
    with pytest.raises(ValueError, match="sigma"):
        evidence.with_camera_blur(k, -1.0)


def test_camera_blur_lets_the_right_shape_beat_a_wrong_smoother_one():
    # The photo: an 11 px line, then 1 px of the camera's own blur. Plain, the evidence ranks a
    # wrong kernel (a 9 px line, smoothed by 1.5 px) above the right motion kernel: it favours
    # smoothness. With every candidate given the same 1 px first, the right shape wins.
    k = _line(11)
    y = _blurred(evidence.with_camera_blur(k, 1.0), seed=3)
    wrong = evidence.with_camera_blur(_line(9), 1.5)
    assert evidence.log_evidence(y, wrong) > evidence.log_evidence(y, k) + 0.1
    score = evidence.kernel_scorer(y, camera_blur=1.0)
    assert score(k) > score(wrong) + 0.05
    assert score(k) > score(_line(9)) and score(k) > score(_line(13))
    assert score(k) == pytest.approx(
        evidence.log_evidence(y, evidence.with_camera_blur(k, 1.0)), abs=1e-5
    )
