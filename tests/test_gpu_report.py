"""benchmarks/gpu_report.py end to end in its smoke mode, and score_gpu_results on its output."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    path = os.path.join(ROOT, "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_report = _load("gpu_report")
scorer = _load("score_gpu_results")

PHASES = {"environment", "data", "precision", "batch", "levin"}


def test_plan_levin_takes_the_batch_size_that_finishes_most_images():
    options = [
        dict(batch=8, step_s=0.05, compile_s=0.0),
        dict(batch=4, step_s=0.03, compile_s=0.0),
        dict(batch=1, step_s=0.01, compile_s=0.0),
    ]
    # 8 images x 5000 steps: B=8 needs 250 s (+10 s overhead).
    plan = gpu_report.plan_levin(8, 5000, options, 300.0)
    assert (plan["batch"], plan["images"], plan["chunks"], plan["complete"]) == (8, 8, 1, True)
    # 200 s: B=8 does not fit, B=4 finishes 4 images, B=1 three.
    plan = gpu_report.plan_levin(8, 5000, options, 200.0)
    assert (plan["batch"], plan["images"], plan["complete"]) == (4, 4, True)
    # A compile still to pay counts: B=8 no longer fits; B=1 finishes 5 images, B=4 only 4.
    slow = [dict(options[0], compile_s=100.0)] + options[1:]
    plan = gpu_report.plan_levin(8, 5000, slow, 300.0)
    assert (plan["batch"], plan["images"], plan["chunks"]) == (1, 5, 5)
    # Nothing finishes: the best images per second, marked incomplete (it stops at the deadline).
    plan = gpu_report.plan_levin(8, 5000, options, 20.0)
    assert (plan["batch"], plan["complete"]) == (8, False)
    assert gpu_report.plan_levin(8, 5000, [], 300.0) is None


def test_chunks_pad_the_last_batch_with_its_last_image():
    assert gpu_report._chunks([1, 2, 3], 2) == [([1, 2], 2), ([3, 3], 1)]
    assert gpu_report._chunks([1, 2], 2) == [([1, 2], 2)]


def _settings(**changes):
    return gpu_report.smoke_settings(levin_images=gpu_report.LEVIN_K23[:2], **changes)


def test_smoke_run_reports_every_phase_and_its_arrays_score(tmp_path):
    s = _settings(precisions=("default", "bfloat16", "float32", "no-such-setting"))
    data = gpu_report.run(s, str(tmp_path))
    with open(tmp_path / "report.json") as f:
        saved = json.load(f)
    assert set(saved["phases"]) == PHASES
    assert {p: v["status"] for p, v in saved["phases"].items()} == dict.fromkeys(PHASES, "ok")
    assert saved["phases"]["environment"]["versions"]["jax"]
    assert (tmp_path / "report.md").read_text().count("|---|") >= 3

    rows = {r["precision"]: r for r in data["phases"]["precision"]["rows"]}
    assert rows["default"]["status"] == "ok" and rows["default"]["step_s"] > 0
    # Counted on the lowered program (a GPU's compiled one hides its cuDNN convolutions); on
    # the CPU the compiled count agrees within XLA's rewrites.
    gflop, compiled = rows["default"]["gflop_per_step"], rows["default"]["gflop_compiled"]
    assert gflop > 0 and abs(gflop - compiled) < 0.2 * compiled
    assert set(rows["default"]["precision_attrs"]) == {"DEFAULT"}
    assert set(rows["float32"]["precision_attrs"]) == {"HIGHEST"}
    # 'bfloat16' lowers to the same convolutions as no setting: measured once.
    assert rows["bfloat16"]["status"] == "same program as 'default': not compiled again"
    assert rows["no-such-setting"]["status"] == "error"  # recorded; the others went on

    (batch,) = data["phases"]["batch"]["rows"]
    assert batch["status"] == "ok" and batch["images_per_min"] > 0
    main, check = data["phases"]["levin"]["groups"]
    assert (main["status"], check["status"]) == ("ok", "ok")
    assert main["images_done"] == check["images_done"] == ["im1_kernel7", "im1_kernel8"]

    with np.load(tmp_path / "levin_default.npz") as z:
        assert z["kernel"].shape == (2, 7, 7) and z["network"].shape == (2, 64, 64, 1)
        np.testing.assert_allclose(z["kernel"].sum(axis=(1, 2)), 1.0, atol=1e-5)
        assert list(z["steps_done"]) == [s.num_steps] * 2

    md, by_group = scorer.score(str(tmp_path), gpu_report.Settings().levin_data)
    assert set(by_group) == {"default", "float32"}
    for group_rows in by_group.values():
        assert [r["name"] for r in group_rows] == ["im1_kernel7", "im1_kernel8"]
        for r in group_rows:
            for key in ("psnr_direct", "psnr_two_stage", "psnr_true_kernel", "error_ratio"):
                assert np.isfinite(r[key]) and r[key] > 0, (key, r[key])
            assert 0 < r["kernel_similarity"] <= 1
            assert r["two_stage_gpu_psnr"] > 60  # same kernel, same non-blind step
    assert md.count("| **mean** |") == 3  # one per group and the comparison
    assert "float32 - default" in md
    assert "kernel7" in scorer.rows_csv(by_group)


def test_a_failing_phase_is_recorded_and_the_levin_run_still_goes(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("batch phase broke")

    monkeypatch.setattr(gpu_report, "phase_batch", broken)
    data = gpu_report.run(_settings(precisions=(), check_precisions=()), str(tmp_path))
    phases = data["phases"]
    assert set(phases) == PHASES
    assert phases["batch"]["status"] == "error" and "batch phase broke" in phases["batch"]["error"]
    assert phases["levin"]["status"] == "ok"
    assert phases["levin"]["groups"][0]["images_done"] == ["im1_kernel7", "im1_kernel8"]
    assert (tmp_path / "levin_default.npz").exists()


@pytest.mark.parametrize("name", ["default", None])
def test_default_precision_leaves_jax_untouched(name):
    import jax

    before = jax.config.jax_default_matmul_precision
    with gpu_report.matmul_precision(name):
        assert jax.config.jax_default_matmul_precision == before
    with gpu_report.matmul_precision("float32"):
        assert jax.config.jax_default_matmul_precision == "float32"
    assert jax.config.jax_default_matmul_precision == before
