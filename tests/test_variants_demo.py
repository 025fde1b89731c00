import jax
import numpy as np
import pytest
from script_loader import load_script

from jaxdeconv.bench import synthetic

demo = load_script("experiments/variants_demo.py", "variants_demo")


@pytest.fixture
def small(tiny_config):
    tiny_config.num_steps = 3
    tiny_config.num_draws = 1
    return tiny_config, synthetic.make_example(20, 20, 5, seed=0).blurry


def test_seed_ensemble_is_a_vmap_of_independent_runs(small):
    cfg, blurry = small
    kernels = np.asarray(demo.seed_ensemble(blurry, cfg, seeds=(0, 1)))
    assert kernels.shape == (2, 5, 5)
    assert not np.allclose(kernels[0], kernels[1])  # seeds differ
    # Each member is independent of the others: seed 1 alone gives the same kernel.
    again = np.asarray(demo.seed_ensemble(blurry, cfg, seeds=(1,)))
    np.testing.assert_allclose(again[0], kernels[1], rtol=1e-4, atol=1e-6)


def test_mu_sweep_vmaps_over_mu(small):
    cfg, blurry = small
    kernels = np.asarray(demo.mu_sweep(blurry, cfg, (0.0, 100.0), jax.random.key(0)))
    assert kernels.shape == (2, 5, 5)
    # A huge mu penalises ||k||^2, which pushes the kernel towards spreading out.
    assert (kernels[1] ** 2).sum() < (kernels[0] ** 2).sum()


def test_grad_wrt_zx(small):
    cfg, blurry = small
    g = np.asarray(demo.zx_gradient(blurry, cfg, jax.random.key(0)))
    assert g.shape == (24, 24, cfg.image_net.input_channels)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0
