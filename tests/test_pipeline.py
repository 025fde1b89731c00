import numpy as np

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline, synthetic


def test_polished_two_stage_result_covers_every_channel():
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    cfg = config_lib.tiny()
    cfg.num_steps = 20
    cfg.refine.enabled = True
    cfg.polish.enabled = True
    cfg.polish.iters = 2
    blurry = np.repeat(ex.blurry, 3, axis=-1).astype(np.float32)
    out = pipeline.deblur_image(blurry, cfg)
    assert out.deblurred.shape == (40, 40, 3)
    assert out.kernel.shape == (5, 5) and out.kernel.min() >= 0
    np.testing.assert_allclose(out.kernel.sum(), 1.0, atol=1e-5)


def test_polish_changes_the_kernel_only_when_enabled():
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    cfg = config_lib.tiny()
    cfg.num_steps = 20
    lum = ex.blurry.astype(np.float32)
    result, _, plain = pipeline.estimate(lum, cfg)
    np.testing.assert_array_equal(plain, result.kernel)
    cfg.polish.enabled = True
    polished = pipeline.final_kernel(result, lum, cfg, lum)
    assert np.abs(polished - plain).sum() > 1e-3


def test_polish_is_skipped_on_an_image_too_small_for_it():
    ex = synthetic.make_example(9, 9, 5, noise=0.002, seed=1)
    cfg = config_lib.tiny()
    cfg.num_steps = 5
    cfg.polish.enabled = True
    lum = ex.blurry.astype(np.float32)
    result, _, kernel = pipeline.estimate(lum, cfg)
    np.testing.assert_array_equal(kernel, result.kernel)
