import csv
import os
import types

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxdeconv.bench import datasets, evaluate, synthetic
from jaxdeconv.classical import nonblind


def test_run_benchmark_writes_tables_and_resumes(small_levin, tmp_path, tiny_config, monkeypatch):
    tiny_config.num_steps = 30
    workdir = str(tmp_path / "run")
    logs = []
    rows = evaluate.run_benchmark(
        "levin", small_levin, tiny_config, workdir, preset="tiny", log=logs.append
    )
    assert [r["name"] for r in rows] == ["im1_kernel1", "im1_kernel2"]
    for r in rows:
        assert r["status"] == "ok"
        assert r["psnr_true_kernel"] > 20  # the non-blind step with the true kernel works
        assert r["error_ratio"] > 0 and 0 <= r["kernel_similarity"] <= 1 + 1e-6
        assert 0 < r["kernel_peak"] <= 1 and r["seconds_total"] >= r["seconds"] > 0
    for name in ("results.csv", "summary.md", "kernels.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0
    for suffix in ("kernel.npy", "network_kernel.npy", "two_stage.png", "direct.png"):
        assert os.path.getsize(os.path.join(workdir, "images", f"im1_kernel1_{suffix}")) > 0
    with open(os.path.join(workdir, "results.csv")) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and float(table[0]["psnr_two_stage"]) == pytest.approx(
        rows[0]["psnr_two_stage"], abs=1e-3
    )
    summary = open(os.path.join(workdir, "summary.md")).read()
    assert "| **all** |" in summary and "preset `tiny`" in summary
    assert "kernels collapsed towards a delta" in summary

    # A re-run skips both images without training again.
    def fail(*args, **kwargs):
        raise AssertionError("evaluate_image called on a finished image")

    monkeypatch.setattr(evaluate, "evaluate_image", fail)
    again = evaluate.run_benchmark("levin", small_levin, tiny_config, workdir, log=logs.append)
    assert [r["psnr_two_stage"] for r in again] == [r["psnr_two_stage"] for r in rows]
    assert sum("skipped" in line for line in logs) == 2


def test_failed_image_is_recorded_and_others_go_on(small_levin, tmp_path, tiny_config, monkeypatch):
    tiny_config.num_steps = 5
    real = evaluate.evaluate_image

    def flaky(item, config, **kwargs):
        if item.name == "im1_kernel1":
            raise RuntimeError("simulated fault")
        return real(item, config, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate_image", flaky)
    rows = evaluate.run_benchmark(
        "levin", small_levin, tiny_config, str(tmp_path / "r"), log=lambda s: None
    )
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "simulated fault" in rows[0]["error"]
    assert (
        "im1_kernel1: RuntimeError: simulated fault" in open(tmp_path / "r" / "summary.md").read()
    )


def _synthetic_root(tmp_path):
    root = tmp_path / "data"
    (root / "levin" / "sharp").mkdir(parents=True)
    img = np.round(synthetic.scene(90, 90, seed=2) * 255).astype(np.uint8)
    Image.fromarray(img).save(root / "levin" / "sharp" / "im1.png")
    return str(root)


def _specs():
    base = dict(
        seed=5,
        jpeg_quality=0,
        smooth=False,
        height=48,
        width=48,
        source="levin/im1",
        kernel_bucket="k09-19",
        size_bucket="128",
    )
    return [
        synthetic.CaseSpec(
            name="a_tight", kernel_size=7, blur_size=7, support="tight", noise=0.0, **base
        ),
        synthetic.CaseSpec(
            name="b_loose",
            kernel_size=7,
            blur_size=5,
            support="loose",
            noise=0.01,
            **{**base, "jpeg_quality": 85},
        ),
    ]


def test_tiny_synthetic_benchmark_writes_bucket_tables(tmp_path, tiny_config, monkeypatch):
    tiny_config.num_steps = 10
    root, workdir = _synthetic_root(tmp_path), str(tmp_path / "syn")
    rows = evaluate.run_benchmark(
        "synthetic", root, tiny_config, workdir, suite=_specs(), log=lambda s: None
    )
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r, k in zip(rows, (7, 7), strict=True):
        assert r["kernel_size_used"] == r["kernel_size_true"] == r["kernel_size"] == k
        assert r["nonblind_method"] == "hyper_laplacian"
        assert np.isfinite(r["gain"]) and r["gain"] == pytest.approx(
            r["psnr_two_stage"] - r["psnr_blurry"]
        )
        assert r["psnr_blurry"] < r["psnr_true_kernel"]  # the reference deblurs
    assert rows[1]["support"] == "loose" and rows[1]["jpeg"] is True and rows[1]["blur_size"] == 5
    summary = open(os.path.join(workdir, "summary.md")).read()
    assert "synthetic, suite custom" in summary and "Per bucket" in summary
    for text in ("| support = loose | 1 |", "| jpeg = True | 1 |", "| noise = 0.01 | 1 |"):
        assert text in summary
    assert "| target: K <= 35, noise <= 1% | 2 |" in summary
    with open(os.path.join(workdir, "results.csv")) as f:
        table = list(csv.DictReader(f))
    assert table[1]["kernel_size_used"] == "7" and table[1]["support"] == "loose"

    # A re-run skips both cases; a changed case (another noise level) is run again (with a
    # stand-in estimate: the true kernel, no training).
    calls = []

    def counting(blurry, config, key, checkpoint_dir=None):
        calls.append(config.kernel_size)
        kernel = synthetic.shake_kernel(7, seed=5)
        result = types.SimpleNamespace(
            image=blurry, kernel=kernel, seconds=1.0, loss_history=[0.1], snapshots={}
        )
        return result, (0, 0, *blurry.shape[:2]), kernel

    monkeypatch.setattr(evaluate, "blind_estimate", counting)
    evaluate.run_benchmark("synthetic", root, tiny_config, workdir, suite=_specs(), log=print)
    assert calls == []
    changed = _specs()
    changed[0] = synthetic.CaseSpec(**{**changed[0].__dict__, "noise": 0.02})
    again = evaluate.run_benchmark(
        "synthetic", root, tiny_config, workdir, suite=changed, log=print
    )
    assert calls == [7] and again[1] == rows[1]
    assert again[0]["noise"] == 0.02 and again[0]["kernel_similarity"] == pytest.approx(1.0)


def test_kernel_size_is_read_from_the_result(small_levin, tiny_config, monkeypatch):
    """The pipeline may choose another size (automatic size): the row reports it, and the
    kernel similarity compares kernels of different sizes."""
    item = datasets.load_levin(small_levin, ["im1_kernel1"])[0]
    wide = np.zeros((9, 9), np.float32)
    wide[2:7, 2:7] = item.kernel  # the true 5x5 kernel inside a larger window
    seen = {}

    def fake_estimate(blurry, config, key, checkpoint_dir=None):
        seen["kernel_size"] = config.kernel_size
        result = types.SimpleNamespace(
            image=blurry, kernel=wide, seconds=1.0, loss_history=[0.1], snapshots={}
        )
        return result, (0, 0, *blurry.shape[:2]), wide

    monkeypatch.setattr(evaluate, "blind_estimate", fake_estimate)
    row, arrays = evaluate.evaluate_image(item, tiny_config)
    assert seen["kernel_size"] == 5  # the true size is what the estimator is told ...
    assert row["kernel_size_used"] == 9 and row["kernel_size_true"] == 5  # ... not what it used
    assert row["kernel_similarity"] == pytest.approx(1.0, abs=1e-6)
    assert row["error_ratio"] == pytest.approx(1.0, abs=0.05)
    # A config asking for an automatic size keeps asking for it (and hashes differently).
    auto = ml_collections.ConfigDict(tiny_config.to_dict())
    with auto.ignore_type():
        auto.kernel_size = "auto"
    evaluate.evaluate_image(item, auto)
    assert seen["kernel_size"] == "auto"
    assert evaluate.config_hash(auto) != evaluate.config_hash(tiny_config)


def test_score_kernel_gives_the_rows_kernel_columns(small_levin, tiny_config, monkeypatch):
    """A kernel scored on its own (a network kernel, offline) reads as the row a run with that
    kernel writes: the same non-blind step and scores."""
    item = datasets.load_levin(small_levin, ["im1_kernel1"])[0]
    kernel = np.full(item.kernel.shape, 1.0 / item.kernel.size, np.float32)  # a wrong kernel

    def fake_estimate(blurry, config, key, checkpoint_dir=None):
        result = types.SimpleNamespace(
            image=blurry, kernel=kernel, seconds=1.0, loss_history=[0.1], snapshots={}
        )
        return result, (0, 0, *blurry.shape[:2]), kernel

    monkeypatch.setattr(evaluate, "blind_estimate", fake_estimate)
    row, _ = evaluate.evaluate_image(item, tiny_config, dataset="levin")
    alone = evaluate.score_kernel(item, 3.0 * kernel, dataset="levin")  # normalised inside
    assert row["error_ratio"] > 1.05  # the flat kernel is not the true one
    for column, value in alone.items():
        same = value if isinstance(value, str) else pytest.approx(value, rel=1e-5)
        assert row[column] == same, column
    assert {"psnr_two_stage", "error_ratio", "kernel_similarity", "gain"} <= set(alone)


def test_published_scores_per_dataset():
    """Lai is re-scored on studio-range luma (1.32 dB higher in PSNR), Levin keeps the
    protocol's scores (its published one), the synthetic suite has none."""
    rng = np.random.default_rng(0)
    sharp = rng.random((64, 64, 1)).astype(np.float32)
    two_stage = np.clip(sharp + 0.05 * rng.standard_normal(sharp.shape), 0, 1)
    true_kernel = np.clip(sharp + 0.02 * rng.standard_normal(sharp.shape), 0, 1)
    staged = evaluate.metrics.aligned_psnr_ssim(two_stage, sharp)
    reference = evaluate.metrics.aligned_psnr_ssim(true_kernel, sharp)
    lai = evaluate.published_scores("lai", two_stage, true_kernel, sharp, staged, reference)
    offset = 20 * np.log10(255 / 219)
    assert lai["psnr_two_stage_published"] == pytest.approx(staged["psnr"] + offset, abs=1e-6)
    assert lai["psnr_true_kernel_published"] == pytest.approx(reference["psnr"] + offset, abs=1e-6)
    levin = evaluate.published_scores("levin", two_stage, true_kernel, sharp, staged, reference)
    assert levin["psnr_two_stage_published"] == staged["psnr"]
    assert levin["ssim_two_stage_published"] == staged["ssim"]
    synth = evaluate.published_scores("synthetic", two_stage, true_kernel, sharp, staged, reference)
    assert synth == {}  # empty columns
    assert set(lai) <= set(evaluate.COLUMNS)


def test_nonblind_method_per_category(monkeypatch):
    assert evaluate.nonblind_method("natural") == "hyper_laplacian"
    assert evaluate.nonblind_method("kernel3") == "hyper_laplacian"
    if hasattr(nonblind, "outlier_robust_deconv"):
        assert evaluate.nonblind_method("saturated") == "outlier_robust"
    monkeypatch.delattr(nonblind, "outlier_robust_deconv", raising=False)
    assert evaluate.nonblind_method("saturated") == "hyper_laplacian"
    with pytest.raises(ValueError, match="unknown non-blind"):
        evaluate.nonblind_deconv("wiener", np.zeros((8, 8)), np.ones((3, 3)) / 9)


def test_lai_summary_has_category_kernel_and_bucket_rows(tiny_config):
    rows = []
    for i, (cat, kname, ratio) in enumerate(
        [("text", "kernel_01", 1.5), ("text", "kernel_02", 3.0), ("saturated", "kernel_01", 1.0)]
    ):
        rows.append(
            dict(
                {c: "" for c in evaluate.COLUMNS},
                name=f"{cat}_{i}",
                category=cat,
                kernel_name=kname,
                status="ok",
                error_ratio=ratio,
                psnr_two_stage=25.0 + i,
                psnr_blurry=20.0,
                gain=5.0 + i,
                kernel_peak=0.6 if i == 1 else 0.1,
                kernel_size_used=31,
                kernel_size_true=31,
                nonblind_method="outlier_robust" if cat == "saturated" else "hyper_laplacian",
                seconds=1.0,
                seconds_total=2.0,
            )
        )
    text = evaluate.summary_markdown(
        rows, dataset="lai", title="lai, subset lai20", config=tiny_config
    )
    assert "| kernel_01 |" in text and "| kernel_02 |" in text and "| text |" in text
    assert "| category = text | 2 | 50% | +5.50 |" in text
    assert "| kernel_name = kernel_01 | 2 | 100% |" in text
    assert "| **all** | 3 | 67% | +6.00 |" in text
    assert "hyper_laplacian 2, outlier_robust 1" in text
    assert "1 kernels collapsed towards a delta" in text
    assert "published tables' scale" not in text  # rows of before the published columns
    rows[0].update(psnr_two_stage_published=27.0, ssim_two_stage_published=0.8)
    rows[0].update(psnr_true_kernel_published=29.0)
    text = evaluate.summary_markdown(rows, dataset="lai", config=tiny_config)
    assert "scale (1 images; studio-range" in text and "two-stage 27.00 dB / SSIM 0.800" in text


def test_long_runs_keep_a_checkpoint_per_image(tmp_path, tiny_config, monkeypatch):
    """With ``checkpoint_every`` the network run of each image checkpoints under the workdir
    (so a stopped benchmark resumes mid-image); the checkpoint goes once the image is done."""
    from jaxdeconv.run import api

    tiny_config.num_steps, tiny_config.checkpoint_every = 6, 3
    root, workdir = _synthetic_root(tmp_path), str(tmp_path / "syn")
    seen, deblur = [], api.deblur

    def recording(region, config, *, key=None, checkpoint_dir=None, **kw):
        result = deblur(region, config, key=key, checkpoint_dir=checkpoint_dir, **kw)
        seen.append((checkpoint_dir, os.path.isdir(checkpoint_dir) and os.listdir(checkpoint_dir)))
        return result

    monkeypatch.setattr(api, "deblur", recording)
    rows = evaluate.run_benchmark(
        "synthetic", root, tiny_config, workdir, suite=_specs()[:1], log=lambda s: None
    )
    assert rows[0]["status"] == "ok"
    ((path, contents),) = seen
    assert path.startswith(os.path.join(workdir, "checkpoints")) and contents  # written ...
    assert not os.path.exists(path)  # ... and removed once the image was scored


def test_config_hash_values_of_stored_results_are_unchanged():
    """Per-image benchmark results store this hash: these values were computed by the
    benchmark's own hash before it became ``config.fingerprint`` (issue 27)."""
    from jaxdeconv import config as config_lib

    assert evaluate.config_hash(config_lib.fast()) == "ab491088e423"
    assert evaluate.config_hash(config_lib.paper()) == "236d316dd579"
    assert evaluate.config_hash(config_lib.tiny()) == "6ff0ab55313a"
    assert evaluate.config_hash(config_lib.default_config()) == "523f668e1824"


def test_a_later_field_at_its_neutral_value_keeps_stored_results_valid():
    from jaxdeconv import config as config_lib

    cfg = config_lib.fast()
    old = cfg.to_dict()  # the config as it was before these fields existed
    del old["support_margin"], old["recover"]["windows"], old["grad_weight"]
    assert evaluate.config_hash(ml_collections.ConfigDict(old)) == evaluate.config_hash(cfg)
    overrides = (
        "support_margin=1.3",
        "recover.windows=('gradient',)",
        "grad_weight=0.5",
        "mu=2e-4",
    )
    for override in overrides:
        changed = config_lib.apply_overrides(config_lib.fast(), [override])
        assert evaluate.config_hash(changed) != evaluate.config_hash(cfg), override
