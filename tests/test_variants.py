import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdeconv import synthetic, train, variants

ROOT = os.path.join(os.path.dirname(__file__), "..")
VARIANT_FILES = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py"))
    if os.path.splitext(os.path.basename(p))[0] in variants.VARIANTS
)


def _load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_variant_has_a_config_file():
    names = {os.path.splitext(os.path.basename(p))[0] for p in VARIANT_FILES}
    assert names == set(variants.VARIANTS)


@pytest.mark.parametrize("path", VARIANT_FILES, ids=lambda p: os.path.basename(p)[:-3])
def test_variant_builds_and_trains_two_steps(path):
    module = _load(path)
    paper = module.get_config()  # the faithful base builds too
    train.build_model(paper, (64, 64, 1))
    cfg = module.get_config("tiny")
    y = jnp.asarray(synthetic.make_example(20, 20, cfg.kernel_size, seed=0).blurry)
    model = train.build_model(cfg, tuple(y.shape))
    state = train.init_state(model, jax.random.key(0))
    step = jax.jit(lambda s, y, k: train.train_step(model, s, y, k))
    losses = []
    for _ in range(2):
        state, m = step(state, y, jax.random.key(1))
        losses.append(float(m["loss"]))
    assert np.all(np.isfinite(losses))
    kernel = train.kernel_estimate(model, state)
    assert abs(float(kernel.sum()) - 1) < 1e-5


def test_variants_change_what_they_say():
    base = variants.apply("table5_both", __import__("jaxdeconv").config.paper())
    none = train.build_model(variants.apply("table5_none", base), (32, 32, 1))
    assert float(none.noise(0)) == 0 and float(none.dropout(0)) == 0
    s6 = train.build_model(variants.apply("s6", base), (32, 32, 1))
    assert float(s6.noise(3499)) == pytest.approx(0.01)
    assert float(s6.noise(3500)) == pytest.approx(0.0001)
    assert variants.apply("mle_tv", base).tv_weight > 0
    assert variants.apply("ren_fc_no_mc", base).kernel_net.type == "mlp"
    assert base.dropout.init == 0.3  # apply() never edits its input
    with pytest.raises(ValueError, match="unknown variant"):
        variants.apply("s7", base)


def test_randomized_kernel_draws_differ(tiny_config):
    cfg = variants.apply("randomize_kernel", tiny_config)
    y = jnp.asarray(synthetic.make_example(20, 20, 5, seed=0).blurry)
    model = train.build_model(cfg, tuple(y.shape))
    state = train.init_state(model, jax.random.key(0))
    from jaxdeconv import loss

    kernels = loss.sample_kernels(
        model.kernel_net, state.params_k, state.zk, jax.random.key(2), 3, 0.05, 0.3
    )
    assert kernels.shape == (3, 5, 5)
    assert float(jnp.abs(kernels[0] - kernels[1]).max()) > 1e-6
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
