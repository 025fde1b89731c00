import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from script_loader import load_script

from jaxdeconv import config, variants
from jaxdeconv.app import launch
from jaxdeconv.bench import synthetic
from jaxdeconv.core import train

ROOT = os.path.join(os.path.dirname(__file__), "..")
VARIANT_FILE = os.path.join(ROOT, "experiments", "configs", "variant.py")


def _load(path):
    return load_script(os.path.relpath(path, ROOT), os.path.basename(path)[:-3])


def test_variants_are_one_file_and_take_a_base():
    configs = glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py"))
    assert not {os.path.basename(p)[:-3] for p in configs} & set(variants.VARIANTS)
    on_tiny = launch.load_config(f"{VARIANT_FILE}:s4:tiny")
    assert on_tiny.to_dict() == variants.apply("s4", config.tiny()).to_dict()
    assert launch.load_config(f"{VARIANT_FILE}:s4").to_dict() == (
        variants.apply("s4", config.paper()).to_dict()
    )
    # The per-variant file names (configs/NAME.py) are gone, not redirected.
    with pytest.raises(ValueError, match="no such file"):
        launch.load_config(os.path.join(ROOT, "experiments", "configs", "s4.py:tiny"))


@pytest.mark.parametrize("name", sorted(variants.VARIANTS))
def test_variant_builds_and_trains_two_steps(name):
    module = _load(VARIANT_FILE)
    paper = module.get_config(name)  # the faithful base builds too
    train.build_spec(paper, (64, 64, 1))
    cfg = module.get_config(f"{name}:tiny")
    # Keep the variant's depth but not its width (selfdeblur: 5 x 128 channels).
    cfg.image_net.channels = tuple(min(c, 16) for c in cfg.image_net.channels)
    cfg.kernel_net.hidden = min(cfg.kernel_net.hidden, 64)
    y = jnp.asarray(synthetic.make_example(20, 20, cfg.kernel_size, seed=0).blurry)
    spec = train.build_spec(cfg, tuple(y.shape))
    state = train.init_state(spec, jax.random.key(0))
    step = jax.jit(lambda s, y, k: train.train_step(spec, s, y, k))
    losses = []
    for _ in range(2):
        state, m = step(state, y, jax.random.key(1))
        losses.append(float(m["loss"]))
    assert np.all(np.isfinite(losses))
    kernel = train.kernel_estimate(spec, state)
    assert abs(float(kernel.sum()) - 1) < 1e-5


def test_variants_change_what_they_say():
    base = variants.apply("table5_both", __import__("jaxdeconv").config.paper())
    none = train.build_spec(variants.apply("table5_none", base), (32, 32, 1))
    assert float(none.noise(0)) == 0 and float(none.dropout(0)) == 0
    s6 = train.build_spec(variants.apply("s6", base), (32, 32, 1))
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
    spec = train.build_spec(cfg, tuple(y.shape))
    state = train.init_state(spec, jax.random.key(0))
    from jaxdeconv.core import loss

    kernels = loss.sample_kernels(
        spec.kernel_net, state.params_k, state.zk, jax.random.key(2), 3, 0.05, 0.3
    )
    assert kernels.shape == (3, 5, 5)
    assert float(jnp.abs(kernels[0] - kernels[1]).max()) > 1e-6
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)


def _sources(cfg):
    """(dropout at step 0, input noise at step 0) of the spec built from ``cfg``."""
    spec = train.build_spec(cfg, (32, 32, 1))
    return float(spec.dropout(0)), float(spec.noise(0))


@pytest.mark.parametrize("base", ["paper", "fast"])
def test_schedules_s1_to_s6_have_one_source_each(base):
    from jaxdeconv import config

    b = config.PRESETS[base]()
    want = {
        "s1": (0.5, 0.0),
        "s2": (0.001, 0.0),
        "s3": (0.3, 0.0),
        "s4": (0.0, 0.05),
        "s5": (0.0, 0.001),
        "s6": (0.0, 0.01),
    }
    for name, (drop, noise) in want.items():
        got = _sources(variants.apply(name, b))
        assert got == pytest.approx((drop, noise)), (base, name, got)
    s3 = train.build_spec(variants.apply("s3", b), (32, 32, 1))
    assert float(s3.dropout(1500 * b.num_steps // 5000)) == pytest.approx(0.001)


@pytest.mark.parametrize("base", ["paper", "fast", "tiny"])
def test_table5_variants_mean_the_same_on_every_base(base):
    from jaxdeconv import config

    b = config.PRESETS[base]()
    b.kernel_size = 13  # Levin-sized: "small kernel" input noise 0.01
    assert _sources(variants.apply("table5_none", b)) == (0.0, 0.0)
    assert _sources(variants.apply("table5_dropout", b)) == pytest.approx((0.3, 0.0))
    assert _sources(variants.apply("table5_noise", b)) == pytest.approx((0.0, 0.01))
    assert _sources(variants.apply("table5_both", b)) == pytest.approx((0.3, 0.01))
    b.kernel_size = 31  # Lai-sized: 0.05
    assert _sources(variants.apply("table5_both", b)) == pytest.approx((0.3, 0.05))


def test_randomized_kernel_net_has_its_own_dropout_schedule():
    from jaxdeconv import config

    for name in ("randomize_kernel", "randomize_both"):
        spec = train.build_spec(variants.apply(name, config.fast()), (32, 32, 1))
        steps = config.fast().num_steps
        assert float(spec.kernel_dropout(0)) == pytest.approx(0.1)
        assert float(spec.kernel_dropout(int(0.3 * steps))) == pytest.approx(0.001)
        assert float(spec.dropout(0)) == pytest.approx(0.3)  # the image net's, unchanged


def test_selfdeblur_is_not_the_paper_with_an_fc_kernel_net():
    from jaxdeconv import config

    sd = variants.apply("selfdeblur", config.paper())
    fc = variants.apply("ren_fc_mc", config.paper())
    assert sd.kernel_net.type == fc.kernel_net.type == "mlp"
    assert len(sd.image_net.channels) == 5 and len(fc.image_net.channels) == 6
    assert sd.image_net.decoder_1x1 and sd.scheme == "joint" and sd.mu == 0.0
    train.build_spec(sd, (32, 32, 1))
    assert _sources(sd) == pytest.approx((0.0, 0.001))
    bounds = train.schedules.fraction_boundaries(sd.optim.decay_boundaries, sd.num_steps)
    assert bounds == (2000, 3000, 4000)
    assert sd.ssim_after == 1000 and config.paper().ssim_after == 0  # MSE, then 1 - SSIM


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("coord_gk", ["kernel_net.type=coord", "optim.lr_k=1e-4"]),
        ("unet_gk", ["kernel_net.type=unet", "optim.lr_k=1e-4", "kernel_net.decoder_1x1=False"]),
        (
            "coord_progressive",
            ["kernel_net.type=coord", "optim.lr_k=1e-4", "progressive.levels=1"]
            + ["progressive.image_input=previous"],
        ),
        (
            "coord_progressive_whole",
            ["kernel_net.type=coord", "optim.lr_k=1e-4", "progressive.levels=1"]
            + ["progressive.image_input=previous", "progressive.crop_size=0"],
        ),
        ("mlp_progressive", ["progressive.levels=1", "progressive.image_input=previous"]),
    ],
)
def test_large_blur_estimators_are_the_measured_overrides(name, overrides):
    # docs/results.md's probes ran `fast` with these --set overrides; the named variant must be
    # the same configuration, or its committed rows would not describe it.
    fast = os.path.join(ROOT, "experiments", "configs", "fast.py")
    named = launch.load_config(f"{VARIANT_FILE}:{name}:fast")
    assert named.to_dict() == launch.load_config(fast, overrides).to_dict()
    assert named.to_dict() != config.fast().to_dict()
