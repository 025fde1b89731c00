import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdeconv
from jaxdeconv import planning
from jaxdeconv.bench import synthetic
from jaxdeconv.core import train
from jaxdeconv.run import progressive


@pytest.fixture
def cfg(tiny_config):
    tiny_config.kernel_size = 9
    tiny_config.num_steps = 10
    tiny_config.kernel_net.type = "coord"
    tiny_config.kernel_net.coord_hidden = 8
    tiny_config.kernel_net.coord_layers = 1
    tiny_config.progressive.min_kernel = 3
    return tiny_config


def _where(luminance, config):
    """The plan, the estimation region and its box of ``luminance``: what the doors make once
    per image and pass to ``network_run``."""
    p = planning.plan(luminance.shape, config)
    region, box = planning.estimation_region(luminance, config, p=p)
    return dict(p=p, region=region, box=box)


def test_level_sizes_shrink_by_the_factor_down_to_min_kernel(cfg):
    cfg.kernel_size = 55
    cfg.scale.max_kernel = 27
    cfg.progressive.levels = 3
    cfg.progressive.min_kernel = 7
    p = planning.plan((400, 400, 1), cfg)
    assert p.net_kernel_size == 27
    assert progressive.level_kernel_sizes(cfg, p) == [7, 13]  # 27/8 < 7: stop
    cfg.progressive.levels = 0
    assert progressive.level_kernel_sizes(cfg, p) == []


def test_step_split_adds_up(cfg):
    cfg.num_steps = 2500
    cfg.progressive.step_share = 0.4
    assert progressive.step_split(cfg, 2) == (500, 1500)
    assert progressive.step_split(cfg, 0) == (0, 2500)


def test_no_levels_is_exactly_the_single_run(cfg):
    ex = synthetic.make_example(32, 32, 9, seed=0)
    lum = ex.blurry
    where = _where(lum, cfg)
    single = jaxdeconv.deblur(lum, planning.network_config(cfg, where["p"]))
    run = progressive.network_run(lum, cfg, **where)
    np.testing.assert_array_equal(run.kernel, single.kernel)


def test_coarse_level_runs_and_carries_the_kernel_weights(cfg, monkeypatch):
    cfg.progressive.levels = 1
    ex = synthetic.make_example(32, 32, 9, seed=0)
    calls = []
    real = progressive.api.deblur

    def spy(region, config, *, warm_start=None, **kwargs):
        result = real(region, config, warm_start=warm_start, **kwargs)
        calls.append((region.shape, config.kernel_size, config.num_steps, warm_start, result))
        return result

    monkeypatch.setattr(progressive.api, "deblur", spy)
    run = progressive.network_run(ex.blurry, cfg, **_where(ex.blurry, cfg))
    (coarse_shape, k0, n0, ws0, coarse), (fine_shape, k1, n1, ws1, fine) = calls
    assert (k0, k1) == (5, 9) and n0 + n1 == cfg.num_steps and ws0 is None
    assert coarse_shape[0] < fine_shape[0]  # the coarse level works on a smaller image
    # The finer run started from the coarse run's kernel weights (fresh optimiser state).
    spec = fine.spec
    state = ws1(spec, jax.device_get(fine.state))
    carried = jax.tree_util.tree_leaves(state.params_k)
    for a, b in zip(carried, jax.tree_util.tree_leaves(coarse.state.params_k), strict=True):
        np.testing.assert_array_equal(a, b)
    assert run.kernel.shape == (9, 9) and np.isclose(run.kernel.sum(), 1.0, rtol=1e-5)


def test_a_grid_bound_kernel_net_needs_the_image_to_carry_the_level_up(cfg, monkeypatch):
    """Ren's MLP cannot carry its weights to another grid: with nothing else carried the run
    is refused; with ``image_input='previous'`` each level's MLP starts afresh and only the
    coarse latent goes up."""
    cfg.kernel_net.type = "mlp"
    cfg.progressive.levels = 1
    ex = synthetic.make_example(32, 32, 9, seed=0)
    with pytest.raises(ValueError, match="resolution-free"):
        progressive.network_run(ex.blurry, cfg, **_where(ex.blurry, cfg))
    cfg.progressive.image_input = "previous"
    starts = []
    real = progressive.api.deblur

    def spy(region, config, *, warm_start=None, zx=None, **kwargs):
        starts.append((warm_start, zx))
        return real(region, config, warm_start=warm_start, zx=zx, **kwargs)

    monkeypatch.setattr(progressive.api, "deblur", spy)
    run = progressive.network_run(ex.blurry, cfg, **_where(ex.blurry, cfg))
    (ws0, zx0), (ws1, zx1) = starts
    assert ws0 is None and ws1 is None  # no weights carried: a fresh MLP at every level
    assert zx0 is None and zx1 is not None  # the finer level starts from the coarse latent
    assert run.kernel.shape == (9, 9) and np.isclose(run.kernel.sum(), 1.0, rtol=1e-5)


def test_network_runs_batches_at_one_scale_and_goes_one_by_one_when_progressive(cfg, monkeypatch):
    calls = []

    def fake_run(luminance, config, *, p, region, box, key, checkpoint_dir, callback):
        calls.append(("run", region.shape, box, checkpoint_dir))
        return "run"

    def fake_batch(regions, config, *, checkpoint_dir, callback):
        calls.append(("batch", len(regions), config.kernel_size, checkpoint_dir))
        return ["batch"] * len(regions)

    monkeypatch.setattr(progressive, "network_run", fake_run)
    monkeypatch.setattr(progressive.api, "deblur_batch", fake_batch)
    lums = [np.zeros((40, 40, 1), np.float32)] * 2
    where = _where(lums[0], cfg)
    box = where["box"]
    two = dict(plans=[where["p"]] * 2, regions=[where["region"]] * 2, boxes=[box] * 2)
    one = {name: v[:1] for name, v in two.items()}
    cfg.progressive.levels = 0
    assert progressive.network_runs(lums, cfg, **two, checkpoint_dir="c") == ["batch"] * 2
    assert calls == [("batch", 2, 9, "c")]  # the network's config at the working scale
    calls.clear()
    assert progressive.network_runs(lums[:1], cfg, **one, checkpoint_dir="c") == ["run"]
    assert calls == [("run", (40, 40, 1), box, "c")]  # one image keeps its checkpoint
    calls.clear()
    cfg.progressive.levels = 1
    assert progressive.network_runs(lums, cfg, **two, checkpoint_dir="c") == ["run"] * 2
    assert calls == [("run", (40, 40, 1), box, None)] * 2  # no checkpoint shared by two images


def test_every_level_runs_with_the_users_spec_builder_and_step(cfg):
    """``spec=`` (a builder: each level has its own kernel grid and image) and ``step=`` reach
    the coarser level and the working scale alike."""
    cfg.progressive.levels = 1
    ex = synthetic.make_example(32, 32, 9, seed=0)
    built = []

    def builder(config, shape):
        built.append((config.kernel_size, shape[:2]))
        return train.build_spec(config, shape)

    def marked_step(spec, state, y, key):
        state, metrics = train.train_step(spec, state, y, key)
        return state, {**metrics, "level_k": jnp.full((), spec.kernel_size, jnp.float32)}

    run = progressive.network_run(
        ex.blurry, cfg, **_where(ex.blurry, cfg), spec=builder, step=marked_step
    )
    assert [k for k, _ in built] == [5, 9] and built[0][1][0] < built[1][1][0]
    assert np.all(run.metrics["level_k"] == 9)


def _level_inputs(cfg, monkeypatch, mode):
    """The two runs (coarse, fine) of a 1-level progressive run with ``image_input=mode``: each
    (region, zx passed, result)."""
    cfg.progressive.levels = 1
    cfg.progressive.image_input = mode
    ex = synthetic.make_example(40, 40, 9, seed=0)
    calls = []
    real = progressive.api.deblur

    def spy(region, config, *, zx=None, **kwargs):
        result = real(region, config, zx=zx, **kwargs)
        calls.append((region, zx, result))
        return result

    monkeypatch.setattr(progressive.api, "deblur", spy)
    progressive.network_run(ex.blurry, cfg, **_where(ex.blurry, cfg))
    return calls


def test_previous_image_input_starts_the_finer_level_from_the_coarser_latent(cfg, monkeypatch):
    (_, zx0, coarse), (region, zx1, fine) = _level_inputs(cfg, monkeypatch, "previous")
    assert zx0 is None  # the first level draws its own input
    assert zx1.shape == fine.spec.zx_shape
    latent = np.asarray(zx1[..., 0])
    k = fine.spec.kernel_size
    inner = latent[k // 2 : k // 2 + region.shape[0], k // 2 : k // 2 + region.shape[1]]
    # Channel 0: the coarse latent brought to the fine window (same picture, not noise) ...
    up = np.asarray(jax.image.resize(coarse.image[..., 0], inner.shape, "linear"))
    assert np.corrcoef(inner.ravel(), up.ravel())[0, 1] > 0.9
    assert (
        np.corrcoef(inner.ravel(), np.asarray(fine.state.zx[..., 1]).ravel()[: inner.size])[0, 1]
        < 0.5
    )
    # ... the other channels: the fresh draw the fine level would have made itself.
    key_state = progressive.api.run_keys(jax.random.key(cfg.seed))[0]
    drawn = jax.random.uniform(
        jax.random.split(key_state, 4)[0], fine.spec.zx_shape, maxval=fine.spec.input_scale_x
    )
    np.testing.assert_array_equal(np.asarray(zx1[..., 1:]), np.asarray(drawn[..., 1:]))
    np.testing.assert_array_equal(np.asarray(fine.state.zx), np.asarray(zx1))


def test_resampled_image_input_is_the_coarser_input_resized(cfg, monkeypatch):
    (_, _, coarse), (_, zx1, fine) = _level_inputs(cfg, monkeypatch, "resampled")
    zx0 = np.asarray(coarse.state.zx)
    assert zx1.shape == fine.spec.zx_shape and zx1.shape[0] > zx0.shape[0]
    # The same field, finer: corners agree, and the mean is kept.
    np.testing.assert_allclose(np.asarray(zx1[0, 0]), zx0[0, 0], atol=0.02)
    np.testing.assert_allclose(float(zx1.mean()), float(zx0.mean()), atol=0.01)


def test_unknown_image_input_is_refused(cfg):
    from jaxdeconv import config as config_lib

    cfg.progressive.image_input = "photo"
    with pytest.raises(ValueError, match="progressive.image_input must be one of"):
        config_lib.check_values(cfg)


def test_coarser_levels_can_take_the_whole_photo(cfg, monkeypatch):
    cfg.crop_size = 16
    ex = synthetic.make_example(48, 48, 9, seed=0)
    level = progressive.level_config(cfg, 5, 10)
    assert level.crop_size == 16 and level.num_steps == 10  # default: the same window
    cfg.progressive.crop_size = 0
    level = progressive.level_config(cfg, 5, 10)
    assert level.crop_size == 0 and level.scale.max_kernel == 5
    level_plan = planning.plan(ex.blurry.shape, level)
    region, box = planning.estimation_region(ex.blurry, level, p=level_plan)
    assert box == (0, 0, 48, 48)  # the whole photo, down-sampled to the level's scale
    scale = level_plan.scale
    assert scale < 1 and abs(region.shape[0] - 48 * scale) <= 1
