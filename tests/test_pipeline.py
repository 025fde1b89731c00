import copy

import jax.numpy as jnp
import numpy as np

from jaxdeconv import config as config_lib
from jaxdeconv import pipeline, planning
from jaxdeconv.bench import synthetic
from jaxdeconv.classical import nonblind
from jaxdeconv.core import train


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
    # Every channel is the configured non-blind step with the returned kernel.
    one = np.asarray(nonblind.final_deconv(blurry[..., :1], out.kernel, cfg))
    for c in range(3):
        np.testing.assert_allclose(out.deblurred[..., c], one.reshape(40, 40), atol=1e-5)


def test_polish_changes_the_kernel_only_when_enabled():
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    cfg = config_lib.tiny()
    cfg.num_steps = 20
    lum = ex.blurry.astype(np.float32)
    result, _, plain = pipeline.estimate(lum, cfg)
    np.testing.assert_array_equal(plain, result.kernel)
    cfg.polish.enabled = True
    polished = pipeline.final_kernel(result, lum, cfg, lum, p=pipeline.plan(lum.shape, cfg))
    assert np.abs(polished - plain).sum() > 1e-3


def test_polish_is_skipped_on_an_image_too_small_for_it():
    ex = synthetic.make_example(9, 9, 5, noise=0.002, seed=1)
    cfg = config_lib.tiny()
    cfg.num_steps = 5
    cfg.polish.enabled = True
    lum = ex.blurry.astype(np.float32)
    result, _, kernel = pipeline.estimate(lum, cfg)
    np.testing.assert_array_equal(kernel, result.kernel)


def _network_config(cfg, shape):
    """The network's config for an image of ``shape``, planned here."""
    return pipeline.network_config(cfg, pipeline.plan(shape, cfg))


def _tiny(steps=10, **fields):
    cfg = config_lib.tiny()
    cfg.num_steps = steps
    cfg.refine.enabled = True
    cfg.polish.enabled = True
    cfg.polish.iters = 2
    config_lib.apply_overrides(cfg, [f"{k}={v}" for k, v in fields.items()])
    return cfg


def test_plan_scales_large_kernels_down_and_sizes_the_window():
    cfg = _tiny(kernel_size=15, crop_size=32, **{"scale.max_kernel": 5})
    p = pipeline.plan((100, 120, 1), cfg)
    assert (p.kernel_size, p.net_kernel_size, p.auto) == (15, 5, False)
    assert p.window == 96  # crop_size / scale: the region is crop_size after down-sampling
    region, box = pipeline.estimation_region(np.zeros((100, 120, 1), np.float32), cfg, p=p)
    assert region.shape == (32, 32, 1) and box[2:] == (96, 96)
    assert pipeline.network_config(cfg, p).kernel_size == 5
    auto = pipeline.plan((64, 64), _tiny(kernel_size="auto"))
    assert auto.auto and auto.kernel_size == 15  # default bound: a quarter of the short side


def test_one_cap_for_the_estimated_kernel_half_the_short_side():
    """A user's bound and a support margin both stop at the largest odd side at most half the
    short side less one (66 - 1 = 65 here; 63 for a short side of 130)."""
    wide = _tiny(kernel_size="auto", **{"auto_size.max_size": 99})
    assert pipeline.plan((134, 200), wide).kernel_size == 65
    assert pipeline.plan((130, 200), wide).kernel_size == 63
    margin = _tiny(kernel_size=51, support_margin=2.0)
    assert pipeline.plan((134, 200), margin).kernel_size == 65
    assert pipeline.plan((130, 200), margin).kernel_size == 63


def test_support_margin_estimates_a_larger_kernel_and_returns_the_given_size():
    cfg = _tiny(kernel_size=15, crop_size=32, support_margin=1.4, **{"scale.max_kernel": 5})
    p = pipeline.plan((100, 120, 1), cfg)
    # 21 taps estimated at the scale of the given 15 (so 7 at that scale), 15 returned.
    assert (p.kernel_size, p.net_kernel_size, p.size, p.window) == (21, 7, 15, 96)
    assert pipeline.plan((30, 30), cfg).kernel_size == 15  # never beyond half the image
    ex = synthetic.make_example(48, 48, 5, noise=0.002, seed=1)
    cfg = _tiny(kernel_size=5, support_margin=1.6)
    out = pipeline.deblur_image(ex.blurry.astype(np.float32), cfg)
    assert out.result.kernel.shape == (9, 9) and out.kernel.shape == (5, 5)
    assert out.facts["kernel_size_used"] == 5 and out.facts["kernel_size_bound"] == 9
    np.testing.assert_allclose(out.kernel.sum(), 1.0, atol=1e-5)


def test_a_kernel_cut_from_a_margin_is_centred_on_its_support():
    big = np.zeros((9, 9), np.float32)
    big[1, 2:5] = 1.0 / 3  # a 3-tap blur near the top-left corner of a 9x9 support
    cut = pipeline.kernel_size.recentre(big, 5)
    assert cut.shape == (5, 5) and cut[2, 1:4].sum() == np.float32(1.0)


def test_coarse_estimate_gives_a_full_size_kernel_and_full_size_network_image():
    ex = synthetic.make_example(48, 48, 9, noise=0.002, seed=1)
    cfg = _tiny(kernel_size=9, **{"scale.max_kernel": 5})
    result, box, kernel = pipeline.estimate(ex.blurry.astype(np.float32), cfg)
    assert result.kernel.shape == (5, 5) and kernel.shape == (9, 9)
    np.testing.assert_allclose(kernel.sum(), 1.0, atol=1e-5)
    assert result.image.shape[:2] == tuple(box[2:])


def test_automatic_size_end_to_end_reports_the_size_used():
    ex = synthetic.make_example(48, 48, 5, noise=0.002, seed=1)
    cfg = _tiny(kernel_size="auto", **{"auto_size.max_size": 11})
    out = pipeline.deblur_image(ex.blurry.astype(np.float32), cfg)
    used = out.facts["kernel_size_used"]
    assert used == out.kernel.shape[0] and used % 2 == 1 and 5 <= used <= 11
    assert out.facts["kernel_size_bound"] == 11
    assert pipeline.run_facts(cfg, out)["kernel_size_used"] == used


def test_a_flagged_kernel_triggers_another_run_and_a_clean_one_does_not():
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    lum = ex.blurry.astype(np.float32)
    cfg = _tiny(**{"recover.attempts": 1})
    result, box, _ = pipeline.estimate(lum, cfg)
    where = dict(p=pipeline.plan(lum.shape, cfg), box=box)
    _, facts = pipeline.robust_kernel(result, lum, cfg, lum, **where)
    assert "recovery_runs" not in facts or facts["diagnosis"]["delta"]
    cfg.recover.delta_peak = 0.0  # every kernel now counts as a delta
    _, facts = pipeline.robust_kernel(result, lum, cfg, lum, **where)
    assert facts["recovery_runs"] == 1


def test_fast_preset_estimates_large_kernels_coarse_to_fine_and_small_ones_as_before():
    cfg = config_lib.fast()
    for k, net_k, noise in ((13, 13, 0.0), (27, 27, 0.0), (55, 27, 0.05), (75, 27, 0.05)):
        p = pipeline.plan((700, 1000), pipeline.with_kernel_size(cfg, k))
        assert (p.kernel_size, p.net_kernel_size) == (k, net_k)
        # Input noise only for large blurs, decided by the full-resolution size.
        net = _network_config(pipeline.with_kernel_size(cfg, k), (700, 1000))
        assert net.noise.init == noise
        # The window: most gradient up to 27 px (as tuned on Levin), 'structure' above.
        rule = pipeline.window_rule(cfg, p)
        assert rule == ("gradient" if k <= 27 else "structure")
        assert p.window == (128 if k <= 27 else round(128 * k / 27))


def test_a_polish_that_collapses_to_a_delta_is_not_kept(monkeypatch):
    # A delta explains the blurry image well, so the residual alone would keep it (seen on a
    # synthetic case); the diagnosis vetoes it while the unpolished kernel is clean.
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    lum = ex.blurry.astype(np.float32)
    cfg = _tiny()
    result, _, _ = pipeline.estimate(lum, cfg)
    p = pipeline.plan(lum.shape, cfg)
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1.0
    monkeypatch.setattr(pipeline.refine, "polish_kernel", lambda image, kernel, **kw: delta)
    monkeypatch.setattr(pipeline, "_residual", lambda image, k: float(np.max(k) < 1.0))
    kernel, facts = pipeline.kernel_from_network(result, lum, cfg, lum, p=p)
    assert np.max(kernel) < 0.5 and not facts["polished"]
    # Without the veto (a delta allowed), the same residual would have kept it.
    cfg.recover.delta_peak = 1.5
    kernel, facts = pipeline.kernel_from_network(result, lum, cfg, lum, p=p)
    assert np.max(kernel) == 1.0 and facts["polished"]


def test_region_shape_is_known_before_decoding():
    """``region_shape`` (used to group a folder from headers) equals the region's shape."""
    for crop, k, max_kernel, shape in (
        (0, 9, 0, (40, 57)),
        (32, 9, 0, (40, 57)),
        (32, 9, 0, (20, 57)),
        (64, 9, 0, (40, 57)),
        (32, 35, 15, (97, 130)),
        (32, 35, 15, (40, 41)),
    ):
        cfg = config_lib.tiny()
        cfg.crop_size, cfg.kernel_size, cfg.scale.max_kernel = crop, k, max_kernel
        lum = np.random.default_rng(0).random(shape + (1,)).astype(np.float32)
        region, _ = pipeline.estimation_region(lum, cfg, p=pipeline.plan(lum.shape, cfg))
        p = pipeline.plan(shape, cfg)  # from the header's shape, as a folder run plans
        assert pipeline.region_shape(shape, p) == region.shape[:2], (crop, k, shape)


def test_other_windows_get_their_own_run_and_the_better_fit_is_kept():
    # A fence of vertical bars on the left, a blurred scene on the right: 'gradient' and
    # 'structure' pick different windows, so recover.windows adds a second network run.
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    lum = np.full((40, 100, 1), 0.5, np.float32)
    lum[:, :40, 0] = 0.5 + 0.4 * (np.arange(40) % 4 < 2)
    lum[:, 60:, :] = ex.blurry
    cfg = _tiny(steps=5, crop_size=32, crop_select="structure")
    cfg.polish.crop_size = 40
    p = pipeline.plan(lum.shape, cfg)  # the window rule does not change the plan
    _, box_s = pipeline.estimation_region(lum, cfg, p=p)
    gradient = pipeline._with_field(cfg, "crop_select", "gradient")
    _, box_g = pipeline.estimation_region(lum, gradient, p=p)
    assert box_s != box_g
    alone = pipeline.estimate(lum, cfg)
    cfg.recover.windows = ("gradient", "structure")
    result, box, kernel = pipeline.estimate(lum, cfg)
    region, region_box = pipeline.estimation_region(lum, cfg, p=p)
    choice = pipeline.choose_estimate(
        pipeline.api.deblur(region, pipeline.network_config(cfg, p)),
        region,
        cfg,
        lum,
        p=p,
        box=region_box,
    )
    assert choice.facts["windows_tried"] == 2 and box in (box_s, box_g)
    assert choice.box == box and choice.facts["window"] == (
        "structure" if box == box_s else "gradient"
    )
    np.testing.assert_array_equal(choice.kernel, kernel)
    # The kept kernel fits the polish window at least as well as the single-window one.
    image, _ = pipeline.crops.textured_window(lum, 40)
    assert pipeline._residual(image, kernel) <= pipeline._residual(image, alone[2])
    cfg.crop_size = 0  # one window (the whole image): nothing else to try
    p = pipeline.plan(lum.shape, cfg)
    whole = pipeline.api.deblur(lum, pipeline.network_config(cfg, p))
    choice = pipeline.choose_estimate(whole, lum, cfg, lum, p=p, box=(0, 0, 40, 100))
    assert "windows_tried" not in choice.facts


def test_noise_level_follows_the_full_resolution_kernel_size():
    cfg = config_lib.paper()
    cfg.scale.max_kernel = 27
    cfg.crop_size = 128
    for k, net_k, level in ((13, 13, 0.01), (27, 27, 0.01), (55, 27, 0.05)):
        net = _network_config(pipeline.with_kernel_size(cfg, k), (700, 1000))
        assert (net.kernel_size, net.noise.init) == (net_k, level)
    cfg.noise.init = 0.02  # a level the user set is kept
    assert _network_config(pipeline.with_kernel_size(cfg, 55), (700, 1000)).noise.init == 0.02


def test_one_plan_per_image_and_the_hooks_reach_every_network_run(monkeypatch):
    """``deblur_image`` plans an image once and passes the plan along; ``spec=`` and ``step=``
    reach every network run: the first, the other window's and both recovery runs."""
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    lum = np.full((40, 100, 1), 0.5, np.float32)
    lum[:, :40, 0] = 0.5 + 0.4 * (np.arange(40) % 4 < 2)  # a fence: another window to try
    lum[:, 60:, :] = ex.blurry
    cfg = _tiny(steps=3, crop_size=32, crop_select="structure")
    cfg.polish.crop_size = 40
    cfg.recover.windows = ("gradient", "structure")
    cfg.recover.attempts, cfg.recover.delta_peak = 1, 0.0  # every kernel flagged: one retry each
    plans, shapes = [], []
    real_plan = planning.plan

    def counted_plan(shape, config):
        plans.append(tuple(shape))
        return real_plan(shape, config)

    monkeypatch.setattr(planning, "plan", counted_plan)
    monkeypatch.setattr(pipeline, "plan", counted_plan)

    def builder(config, shape):
        shapes.append(shape)
        return train.build_spec(config, shape)

    def marked_step(spec, state, y, key):
        state, metrics = train.train_step(spec, state, y, key)
        return state, {**metrics, "hooked": jnp.ones(())}

    out = pipeline.deblur_image(lum, cfg, spec=builder, step=marked_step)
    assert plans == [lum.shape]
    assert out.facts["windows_tried"] == 2 and out.facts["recovery_runs"] == 1
    assert shapes == [(32, 32, 1)] * 4
    np.testing.assert_array_equal(out.result.metrics["hooked"], np.ones(3))


def _count_calls(monkeypatch, name):
    """Counts the calls of ``planning.NAME``, wherever it is called from (``pipeline`` imported
    the name); returns the list the calls' first arguments' shapes go to."""
    calls, real = [], getattr(planning, name)

    def counted(first, *args, **kwargs):
        calls.append(tuple(np.shape(first)) if name == "estimation_region" else tuple(first))
        return real(first, *args, **kwargs)

    monkeypatch.setattr(planning, name, counted)
    monkeypatch.setattr(pipeline, name, counted)
    return calls


def test_plan_and_estimation_region_are_made_once_per_image(monkeypatch):
    """At the doors (``deblur_image``, ``estimate``), one image's plan and its estimation region
    are each computed once, then passed on: not again by the final stage, the polish or a
    recovery run."""
    ex = synthetic.make_example(40, 40, 5, noise=0.002, seed=1)
    cfg = _tiny(steps=3, **{"recover.attempts": 1, "recover.delta_peak": 0.0})  # one retry
    blurry = np.repeat(ex.blurry, 3, axis=-1).astype(np.float32)
    plans = _count_calls(monkeypatch, "plan")
    regions = _count_calls(monkeypatch, "estimation_region")
    out = pipeline.deblur_image(blurry, cfg)
    assert out.facts["recovery_runs"] == 1  # a second network run, on the same region
    assert plans == [(40, 40, 1)] and regions == [(40, 40, 1)]
    plans.clear(), regions.clear()
    pipeline.estimate(ex.blurry.astype(np.float32), cfg)
    assert plans == [(40, 40, 1)] and regions == [(40, 40, 1)]


def test_seeds_keep_the_kernel_the_runs_agree_on_and_each_run_is_that_seeds_own():
    from jaxdeconv.classical import diagnose

    cfg = config_lib.tiny()
    cfg.kernel_size = 5
    cfg.num_steps = 30
    cfg.seed = 4
    cfg.recover.seeds = 3
    blurry = synthetic.make_example(24, 24, 5, noise=0.002, seed=2).blurry
    out = pipeline.deblur_image(blurry, cfg)
    seeds = out.facts["seeds"]
    assert seeds["seeds"] == [4, 5, 6] and len(seeds["agreement"]) == 3
    # Each candidate is exactly the estimate `--seed=4+i` makes on its own.
    alone = []
    for s in (4, 5, 6):
        one = config_lib.apply_overrides(cfg, [f"seed={s}", "recover.seeds=1"])
        alone.append(pipeline.deblur_image(blurry, one).kernel)
    assert not np.array_equal(alone[0], alone[1])  # the seeds differ
    agreement = [
        np.mean([diagnose.kernel_similarity(alone[i], alone[j]) for j in range(3) if j != i])
        for i in range(3)
    ]
    np.testing.assert_allclose(seeds["agreement"], agreement, atol=1e-4)
    # Flagged ones come last; here the three are flagged alike, so the medoid is kept.
    assert len(set(seeds["flagged"])) == 1
    kept = seeds["kept"] - 4
    assert kept == int(np.argmax(agreement))
    np.testing.assert_array_equal(out.kernel, alone[kept])


def test_a_flagged_seed_is_not_kept_over_an_unflagged_one(monkeypatch):
    cfg = config_lib.tiny()
    cfg.kernel_size = 5
    cfg.num_steps = 10
    cfg.recover.seeds = 3
    blurry = synthetic.make_example(24, 24, 5, noise=0.002, seed=2).blurry
    real = pipeline._check
    flagged = []  # kernels to flag

    def check(kernel, config):
        bad = any(np.array_equal(kernel, k) for k in flagged)
        return real(kernel, config)._replace(delta=bad, border=False)

    monkeypatch.setattr(pipeline, "_check", check)
    first = pipeline.deblur_image(blurry, cfg)
    medoid = first.facts["seeds"]["kept"] - cfg.seed
    assert medoid == int(np.argmax(first.facts["seeds"]["agreement"]))  # none flagged
    flagged.append(first.kernel)
    again = pipeline.deblur_image(blurry, cfg).facts["seeds"]
    assert again["flagged"] == [i == medoid for i in range(3)]
    assert again["kept"] - cfg.seed != medoid


def test_agreement_across_windows_keeps_the_kernel_the_windows_agree_on():
    from jaxdeconv.classical import crops, diagnose

    cfg = config_lib.tiny()
    cfg.kernel_size = 5
    cfg.num_steps = 20
    cfg.crop_size = 24
    cfg.recover.agree_windows = 3
    blurry = synthetic.make_example(56, 56, 5, noise=0.002, seed=2).blurry
    out = pipeline.deblur_image(blurry, cfg)
    facts = out.facts["agree_windows"]
    boxes = [tuple(b) for b in facts["boxes"]]
    assert boxes == crops.textured_windows(blurry, 24, 3)  # the most textured first
    # Each candidate is the estimate made on that window alone (the same key).
    alone = []
    for box in boxes:
        one = config_lib.apply_overrides(cfg, ["recover.agree_windows=1"])
        p = pipeline.plan(blurry.shape, one)
        region = crops.crop(blurry, box)
        run = pipeline.progressive.network_run(blurry, one, p=p, region=region, box=box)
        alone.append(pipeline.robust_kernel(run, region, one, blurry, p=p, box=box)[0])
    agreement = [
        np.mean([diagnose.kernel_similarity(alone[i], alone[j]) for j in range(3) if j != i])
        for i in range(3)
    ]
    np.testing.assert_allclose(facts["agreement"], agreement, atol=1e-4)
    kept = facts["kept"]
    assert kept == max(range(3), key=lambda i: (not facts["flagged"][i], agreement[i], -i))
    np.testing.assert_array_equal(out.kernel, alone[kept])


def _evidence_pool(monkeypatch, seeds: int, **recover):
    """A tiny config keeping, among ``seeds`` seeds, the kernel with the highest evidence
    (``recover`` fields set too), a small blurry example, and blind checks that flag nothing,
    so that the evidence alone decides."""
    cfg = config_lib.tiny()
    cfg.kernel_size = 5
    cfg.num_steps = 30
    cfg.recover.seeds = seeds
    cfg.recover.seed_select = "evidence"
    for field, value in recover.items():
        setattr(cfg.recover, field, value)
    real = pipeline._check
    monkeypatch.setattr(
        pipeline, "_check", lambda k, c: real(k, c)._replace(delta=False, border=False)
    )
    return cfg, synthetic.make_example(24, 24, 5, noise=0.002, seed=2).blurry


def test_seed_select_evidence_keeps_the_most_probable_unflagged_seed(monkeypatch):
    from jaxdeconv.classical import evidence

    cfg, blurry = _evidence_pool(monkeypatch, 3, camera_blur=0.5)
    cfg.seed = 4
    out = pipeline.deblur_image(blurry, cfg)
    seeds = out.facts["seeds"]
    alone = []
    for s in (4, 5, 6):
        one = config_lib.apply_overrides(copy.deepcopy(cfg), [f"seed={s}", "recover.seeds=1"])
        alone.append(pipeline.deblur_image(blurry, one).kernel)
    score = evidence.kernel_scorer(blurry, camera_blur=0.5)
    expected = [score(k) for k in alone]
    np.testing.assert_allclose(seeds["evidence"], expected, atol=1e-4)
    assert len(set(np.round(expected, 4))) == 3  # a real choice among three
    assert seeds["kept"] - 4 == int(np.argmax(expected))
    np.testing.assert_array_equal(out.kernel, alone[seeds["kept"] - 4])
    # The agreement is still reported, and a flagged kernel still comes last.
    assert len(seeds["agreement"]) == 3
    kept, _ = pipeline.most_evident(
        alone, [i == int(np.argmax(expected)) for i in range(3)], blurry, 0.5
    )
    assert kept != int(np.argmax(expected))


def test_network_kernels_compete_under_the_evidence_and_one_may_be_kept(monkeypatch):
    from jaxdeconv.classical import evidence

    cfg, blurry = _evidence_pool(monkeypatch, 2, network_kernels=True)
    finals, networks = [], []
    for s in (cfg.seed, cfg.seed + 1):
        one = config_lib.apply_overrides(copy.deepcopy(cfg), [f"seed={s}", "recover.seeds=1"])
        result, _, kernel = pipeline.estimate(blurry, one)
        finals.append(np.asarray(kernel))
        networks.append(np.asarray(result.kernel, np.float32))
    score = evidence.kernel_scorer(blurry, camera_blur=cfg.recover.camera_blur)
    expected = [score(k) for k in finals + networks]
    out = pipeline.deblur_image(blurry, cfg)
    seeds = out.facts["seeds"]
    np.testing.assert_allclose(seeds["evidence"], expected, atol=1e-4)
    best = int(np.argmax(expected))
    assert seeds["kept_kernel"] == ("final" if best < 2 else "network")
    assert seeds["kept"] == cfg.seed + best % 2
    np.testing.assert_allclose(out.kernel, (finals + networks)[best], atol=1e-7)
    # Off, only the final kernels compete.
    cfg.recover.network_kernels = False
    assert len(pipeline.deblur_image(blurry, cfg).facts["seeds"]["evidence"]) == 2


def test_a_variant_competes_with_the_seeds_and_is_that_variants_own_estimate(monkeypatch):
    from jaxdeconv import variants
    from jaxdeconv.classical import evidence

    cfg, blurry = _evidence_pool(monkeypatch, 2, variants=("ssim_switch",))
    cfg.seed = 4
    out = pipeline.deblur_image(blurry, cfg)
    seeds = out.facts["seeds"]
    assert seeds["candidates"] == ["seed 4", "seed 5", "ssim_switch"]
    assert seeds["seeds"] == [4, 5] and len(seeds["evidence"]) == 3
    # Each candidate is the estimate its config makes alone: the variant at the base seed.
    alone = []
    for s in (4, 5):
        one = config_lib.apply_overrides(copy.deepcopy(cfg), [f"seed={s}", "recover.seeds=1"])
        one.recover.variants = ()
        alone.append(pipeline.deblur_image(blurry, one).kernel)
    own = variants.apply("ssim_switch", cfg)
    own.recover.seeds, own.recover.variants = 1, ()
    alone.append(pipeline.deblur_image(blurry, own).kernel)
    assert not np.array_equal(alone[0], alone[2])  # the variant changes the estimate
    score = evidence.kernel_scorer(blurry, camera_blur=cfg.recover.camera_blur)
    expected = [score(k) for k in alone]
    np.testing.assert_allclose(seeds["evidence"], expected, atol=1e-4)
    best = int(np.argmax(expected))
    assert seeds["kept_candidate"] == seeds["candidates"][best]
    assert seeds["kept"] == (4 + best if best < 2 else 4)
    np.testing.assert_array_equal(out.kernel, alone[best])
    # With variants alone (one seed) the pool is the base estimate and the variant's.
    cfg.recover.seeds = 1
    only = pipeline.deblur_image(blurry, cfg).facts["seeds"]
    assert only["candidates"] == ["seed 4", "ssim_switch"]
    np.testing.assert_allclose(only["evidence"], [expected[0], expected[2]], atol=1e-4)
