import csv
import os

import pytest

from jaxdeconv import evaluate


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
