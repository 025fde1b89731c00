import numpy as np

from jaxdeconv import refine, synthetic


def test_refit_from_the_true_image_recovers_the_kernel():
    ex = synthetic.make_example(64, 64, 9, noise=0.0, seed=2)
    k = np.asarray(
        refine.refine_kernel(ex.sharp_big, ex.blurry, 9, reg=1e-6, threshold=0.0, iters=3000)
    )
    assert k.shape == (9, 9) and k.min() >= 0 and abs(k.sum() - 1) < 1e-5
    assert np.abs(k - ex.kernel).sum() < 0.1  # L1 distance; 2 is the worst possible


def test_refit_improves_a_spread_kernel_estimate():
    ex = synthetic.make_example(64, 64, 9, noise=0.002, seed=4)
    box = np.full((9, 9), 1 / 81)
    k = np.asarray(refine.refine_kernel(ex.sharp_big, ex.blurry, 9))
    assert np.abs(k - ex.kernel).sum() < 0.5 * np.abs(box - ex.kernel).sum()
