"""benchmarks/gpu_report.py end to end in its smoke mode, and score_gpu_results on its output."""

import csv
import json
import os

import numpy as np
import pytest
from script_loader import load_script

from jaxdeconv.bench.datasets import LAI_CATEGORIES
from jaxdeconv.classical import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    return load_script(f"benchmarks/{name}.py")


gpu_report = _load("gpu_report")
scorer = _load("score_gpu_results")

PHASES = {"environment", "data", "question", "profile", "precision", "batch", "levin", "lai"}
# The profile's parts that compile in a second or two on a CPU (the test's subset).
CHEAP_PARTS = ("blur", "blur_grad_k", "noise_and_masks", "optimizer_k", "image_net_forward")


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
    return gpu_report.smoke_settings(profile_parts=CHEAP_PARTS, **changes)


def test_estimate_step_scales_by_pixels_and_batch():
    ctx = {}
    assert gpu_report._estimate_step(ctx, 4, 1000) == float("inf")
    ctx["measured"] = [dict(batch=4, step_s=0.04, pixels=1000)]
    assert gpu_report._estimate_step(ctx, 4, 2000) == pytest.approx(0.08)
    assert gpu_report._estimate_step(ctx, 8, 1000) == pytest.approx(0.08)
    assert gpu_report._estimate_step(ctx, 1, 1000) == pytest.approx(0.01 * 1.7)


def test_default_call_plans_all_32_levin_images_then_the_5_lai_images():
    s = gpu_report.Settings()
    # The question's 8 (23 px kernels) and the levin phase's 24: all 32, none twice.
    assert s.question_images == gpu_report.LEVIN_K23 and len(s.levin_images) == 24
    assert len(set(s.question_images + s.levin_images)) == 32
    assert {n.split("_")[0] for n in s.lai_images} == set(LAI_CATEGORIES)
    assert s.deadline_s <= 520 and s.profile_budget_s <= 60
    assert s.question_budget_s < s.deadline_s and s.question_precision == "float32"
    assert s.question_configs == {"a": {}, "b": gpu_report.LINEAGE}
    assert s.levin_convention == "published"

    def sizes(names, convention):
        items = gpu_report.load_items("levin", s.levin_data, names, 0, 0, convention)
        assert {it["kernel_size_convention"] for it in items} == {convention}
        groups = gpu_report._groups(items)
        assert {key[0] for key, _ in groups} == {(255, 255, 1)}
        return [(key[1], len(g)) for key, g in groups]

    published = [(17, 4), (15, 4), (13, 4), (27, 4), (11, 4), (19, 4)]
    assert sizes(s.levin_images, s.levin_convention) == published
    assert sizes(s.question_images, s.levin_convention) == [(21, 8)]
    full = [(19, 4), (17, 4), (15, 4), (27, 4), (13, 4), (21, 4)]
    assert sizes(s.levin_images, "full") == full
    assert sizes(s.question_images, "full") == [(23, 8)]
    # An explicit size wins over the convention, and says so.
    (it,) = gpu_report.load_items("levin", s.levin_data, ["im1_kernel7"], 0, 25, "published")
    assert (it["kernel_size"], it["true_kernel_size"], it["kernel_size_convention"]) == (
        25,
        23,
        "explicit",
    )
    lai = gpu_report.load_items("lai", s.lai_data, s.lai_images, 0, 0)
    assert [it["kernel_size"] for it in lai] == [31] * 5
    assert lai[0]["blurry"].shape == (351, 502, 1)  # text_05, the smallest, first


def test_choose_better_compares_like_with_like():
    scores = {"a": {"x": 20.0, "y": 30.0, "z": 40.0}, "b": {"x": 21.0, "y": 31.0}}
    # z is only a's: compared on x and y, b is higher.
    out = gpu_report.choose_better(["a", "b"], scores, {"a": ["x", "y", "z"], "b": ["x", "y"]})
    assert out["better"] == "b" and out["compared"] == ["x", "y"]
    assert out["means"] == {"a": 25.0, "b": 26.0}
    # A partial image (not finished by b) does not count: on x alone a is higher.
    out = gpu_report.choose_better(
        ["a", "b"], {"a": {"x": 22.0, "y": 1.0}, "b": scores["b"]}, {"a": ["x", "y"], "b": ["x"]}
    )
    assert (out["better"], out["compared"]) == ("a", ["x"])
    # Nothing finished by both, or a tie: the first config.
    out = gpu_report.choose_better(["a", "b"], scores, {"a": ["z"], "b": ["x"]})
    assert out["better"] == "a" and out["compared"] == [] and "nothing to compare" in out["reason"]
    out = gpu_report.choose_better(
        ["b", "a"], {"a": {"x": 1.0}, "b": {"x": 1.0}}, {"a": ["x"], "b": ["x"]}
    )
    assert out["better"] == "b" and "equal" in out["reason"]


def test_question_b_overrides_parse_as_the_config_parses_them():
    out = gpu_report.parse_overrides(
        "paper",
        "ssim_after=1000, optim.decay_boundaries=(0.4,0.6,0.8),optim.decay_factor=0.5,"
        "param_init=pytorch,scheme=joint",
    )
    assert out == gpu_report.LINEAGE
    assert isinstance(out["optim.decay_boundaries"], tuple)
    assert isinstance(out["optim.decay_factor"], float)
    assert gpu_report.parse_overrides("paper", "") == {}
    with pytest.raises(ValueError, match="unknown config field"):
        gpu_report.parse_overrides("paper", "ssim_afer=1000")
    with pytest.raises(ValueError):
        gpu_report.parse_overrides("paper", "param_init=torch")  # not one of its values


def test_smoke_run_reports_every_phase_and_its_arrays_score(tmp_path):
    s = _settings(precisions=("default", "bfloat16", "float32", "no-such-setting"))
    data = gpu_report.run(s, str(tmp_path))
    with open(tmp_path / "report.json") as f:
        saved = json.load(f)
    assert set(saved["phases"]) == PHASES
    assert {p: v["status"] for p, v in saved["phases"].items()} == dict.fromkeys(PHASES, "ok")
    assert saved["phases"]["environment"]["versions"]["jax"]
    md = (tmp_path / "report.md").read_text()
    assert md.count("|---|") >= 5 and "## Profile" in md and "## Lai runs" in md

    profile = {(r["part"], r["variant"]): r for r in data["phases"]["profile"]["rows"]}
    assert {p for p, _ in profile} == set(CHEAP_PARTS)
    for method in ("direct", "fft"):
        assert profile[("blur_grad_k", method)]["ms"] > 0
    for impl in ("threefry2x32", "rbg", "unsafe_rbg"):
        assert profile[("noise_and_masks", impl)]["status"] == "ok"
    assert profile[("image_net_forward", "deterministic")]["compile_s"] > 0

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

    # The question: both configs on both 23 px kernels, estimated at 21 px (published), in
    # float32; each config compiled its own step.
    q = data["phases"]["question"]
    configs = s.question_configs
    assert list(q["configs"]) == list(configs) == ["a", "b"]
    assert q["kernel_sizes"] == {"im1_kernel7": 21, "im1_kernel8": 21}
    assert q["true_kernel_sizes"] == {"im1_kernel7": 23, "im1_kernel8": 23}
    for label, c in q["configs"].items():
        (group,) = c["groups"]
        assert group["status"] == "ok" and group["compile_s"] > 0, label
        assert c["finished"] == list(s.question_images)
    assert q["better"] in configs and q["compared"] == list(s.question_images)
    for label in configs:
        assert set(q["scores"][label]) == set(s.question_images)
        assert all(np.isfinite(v) and v > 0 for v in q["scores"][label].values())
    means = {x: np.mean(list(q["scores"][x].values())) for x in configs}
    assert q["better"] == max(configs, key=means.get)
    assert "## Question" in md and "| b |" in md
    sharp = gpu_report._levin_sharp(s.levin_data, "im1_kernel8", (0, 0, 255, 255))
    for label, extra in configs.items():
        with np.load(tmp_path / f"levin_float32_64x64_k21_q{label}.npz") as z:
            assert list(z["names"]) == list(s.question_images)
            assert z["kernel"].shape == (2, 21, 21) and z["two_stage"].shape == (2, 64, 64, 1)
            assert list(z["steps_done"]) == [s.num_steps] * 2
            meta = json.loads(str(z["meta"]))
            t, left, h, w = z["box"][1]
            psnr = metrics.aligned_psnr_ssim(z["two_stage"][1], sharp[t : t + h, left : left + w])
        assert psnr["psnr"] == pytest.approx(q["scores"][label]["im1_kernel8"], abs=1e-6)
        assert (meta["question"], meta["precision"]) == (label, "float32")
        assert meta["kernel_size_convention"] == "published"
        assert meta["question_overrides"] == json.loads(json.dumps(extra))
        assert meta["overrides"] == json.loads(json.dumps({**s.overrides, **extra}))
        assert meta["config"]["param_init"] == ("pytorch" if label == "b" else "flax")
    # Every later phase ran the better config.
    better = json.loads(json.dumps({**s.overrides, **configs[q["better"]]}))
    assert data["after_question"]["config"] == q["better"]

    (batch,) = data["phases"]["batch"]["rows"]
    assert batch["status"] == "ok" and batch["images_per_min"] > 0
    (k11,) = data["phases"]["levin"]["groups"]
    assert k11["status"] == "ok" and k11["kernel_size"] == 11  # kernel 5, published
    assert k11["images_done"] == ["im1_kernel5"] and "compile_s" not in k11  # the batch phase's
    (lai,) = data["phases"]["lai"]["groups"]
    assert lai["images_done"] == list(gpu_report.LAI_5[:2])

    for name, n, k, convention in (
        ("levin_default_64x64_k11", 1, 11, "published"),
        ("lai_default_64x64_k31", 2, 31, "full"),
    ):
        with np.load(tmp_path / f"{name}.npz") as z:
            assert z["kernel"].shape == (n, k, k) and z["network"].shape == (n, 64, 64, 1)
            assert z["two_stage"].shape == (n, 64, 64, 1)
            np.testing.assert_allclose(z["kernel"].sum(axis=(1, 2)), 1.0, atol=1e-5)
            assert list(z["steps_done"]) == [s.num_steps] * n
            meta = json.loads(str(z["meta"]))
        assert meta["dataset"] == name.split("_")[0] and "question" not in meta
        assert meta["kernel_size_convention"] == convention
        assert meta["overrides"] == better

    lai_root = scorer.DEFAULT_LAI_DATA
    if not os.path.isdir(os.path.join(lai_root, "lai")):
        pytest.skip(f"no Lai sharp images under {lai_root}")
    md, by_group = scorer.score(str(tmp_path), gpu_report.Settings().levin_data, lai_root=lai_root)
    assert set(by_group) == {"levin default", "lai default", "levin float32 qa", "levin float32 qb"}
    assert [r["name"] for r in by_group["levin default"]] == list(s.levin_images)
    for label in configs:
        rows = by_group[f"levin float32 q{label}"]
        assert [r["name"] for r in rows] == list(s.question_images)
        for r in rows:
            assert (r["config"], r["kernel_size_convention"], r["precision"]) == (
                label,
                "published",
                "float32",
            )
            assert r["kernel_size"] == 21
            # The report's score is the scorer's, from the same two-stage image.
            assert r["psnr_two_stage"] == pytest.approx(q["scores"][label][r["name"]], abs=1e-6)
    (r,) = by_group["levin default"]
    assert (r["config"], r["kernel_size_convention"], r["precision"]) == (
        "",
        "published",
        "default",
    )
    for group_rows in by_group.values():
        for r in group_rows:
            for key in ("psnr_direct", "psnr_two_stage", "psnr_true_kernel", "error_ratio"):
                assert np.isfinite(r[key]) and r[key] > 0, (key, r[key])
            assert 0 < r["kernel_similarity"] <= 1
            assert r["two_stage_gpu_psnr"] > 60  # same kernel, same non-blind step
    methods = {r["name"]: r["nonblind_method"] for r in by_group["lai default"]}
    assert methods == {
        "text_05_kernel_01": "hyper_laplacian",
        "saturated_03_kernel_01": "outlier_robust",
    }
    assert md.count("| **mean** |") == 5  # one per group, one comparing the question configs
    assert "Question configs on the images all finished" in md

    previous = tmp_path / "previous.csv"
    previous.write_text("name,psnr_two_stage,steps_done\nim4_kernel4,25.0,5000\n")
    tables = scorer.docs_tables(by_group, "default", str(previous))
    written = scorer.write_docs_csvs(tables, str(tmp_path / "docs"))
    assert [os.path.basename(p) for p in written] == [
        "levin_paper_gpu_results.csv",
        "lai_paper_gpu_results.csv",
        "levin_paper_gpu_question_results.csv",
    ]
    with open(written[0], newline="") as f:
        levin = list(csv.DictReader(f))
    assert tuple(levin[0]) == scorer.LEVIN_CSV_COLUMNS and len(levin) == 32
    for column in ("config", "kernel_size_convention", "precision"):
        assert column in scorer.LEVIN_CSV_COLUMNS and column in scorer.COLUMNS
    status = {r["name"]: (r["status"], r["source"], r["kernel_size_convention"]) for r in levin}
    assert status["im1_kernel5"] == ("ok", "this run", "published")
    assert status["im4_kernel4"] == ("ok", "previous.csv", "full")  # earlier: full sizes
    assert status["im2_kernel1"] == ("not run", "", "")
    assert status["im1_kernel7"][0] == "not run"  # the question's rows stay in their own file
    with open(written[2], newline="") as f:
        question = list(csv.DictReader(f))
    assert tuple(question[0]) == scorer.QUESTION_CSV_COLUMNS
    assert [(r["config"], r["name"]) for r in question] == [
        (x, n) for x in configs for n in s.question_images
    ]
    for r in question:
        assert (r["kernel_size_convention"], r["precision"], r["status"]) == (
            "published",
            "float32",
            "ok",
        )
        assert float(r["psnr_two_stage"]) == pytest.approx(
            q["scores"][r["config"]][r["name"]], abs=1e-3
        )
    with open(written[1], newline="") as f:
        lai_rows = list(csv.DictReader(f))
    assert tuple(lai_rows[0]) == scorer.LAI_CSV_COLUMNS
    assert [r["category"] for r in lai_rows] == ["saturated", "text"]  # category order
    for r in lai_rows:  # the published scale reads higher than full-range luma
        assert float(r["psnr_two_stage_published"]) > float(r["psnr_two_stage"])
        assert np.isfinite(float(r["psnr_direct_published"]))


def test_a_failing_phase_is_recorded_and_the_levin_run_still_goes(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("batch phase broke")

    monkeypatch.setattr(gpu_report, "phase_batch", broken)
    s = _settings(
        precisions=(),
        profile_budget_s=0,
        question_images=(),
        levin_images=("im1_kernel5",),
        lai_images=(),
    )
    data = gpu_report.run(s, str(tmp_path))
    phases = data["phases"]
    assert set(phases) == PHASES
    assert phases["question"]["status"] == "skipped: no images asked for"
    assert "after_question" not in data  # the settings' own config throughout
    assert phases["batch"]["status"] == "error" and "batch phase broke" in phases["batch"]["error"]
    assert phases["profile"]["status"] == "skipped: no profile budget"
    assert phases["lai"]["status"] == "skipped: no images asked for"
    assert phases["levin"]["status"] == "ok"
    assert phases["levin"]["groups"][0]["images_done"] == ["im1_kernel5"]
    with np.load(tmp_path / "levin_default_64x64_k11.npz") as z:
        assert json.loads(str(z["meta"]))["overrides"] == json.loads(json.dumps(s.overrides))


def test_a_group_that_cannot_finish_is_skipped_when_times_are_known(tmp_path):
    s = _settings(num_steps=1000)
    items = gpu_report.load_items("levin", s.levin_data, ("im1_kernel5",), 64, 0)
    ctx = {"measured": [dict(batch=1, step_s=1.0, pixels=76 * 76)], "compile_times": [1.0]}
    report = gpu_report.Report(str(tmp_path), s)
    entry: dict = {}
    clock = gpu_report.Clock(100.0)
    out = gpu_report.run_dataset(entry, "levin", items, "default", s, clock, 100.0, report, ctx)
    assert out == []
    (group,) = entry["groups"]
    assert group["status"].startswith("skipped: does not fit")
    assert group["not_run"] == ["im1_kernel5"]


def test_the_question_splits_its_budget_and_plans_from_the_step_guess(tmp_path):
    # A guessed step of 100 s: nothing fits, so neither config compiles anything (without the
    # guess, config a would run until its share ends).
    guess = dict(batch=2, step_s=100.0, pixels=84 * 84)
    s = _settings(step_guess=guess, question_budget_s=60.0)
    names = s.question_images
    ctx = {"question": gpu_report.load_items("levin", s.levin_data, names, 64, 0, "published")}
    entry: dict = {}
    clock = gpu_report.Clock(s.deadline_s)
    gpu_report.phase_question(entry, s, clock, gpu_report.Report(str(tmp_path), s), ctx)
    for label, end in (("a", 30.0), ("b", 60.0)):  # config i until start + (i + 1) * 60 / 2
        c = entry["configs"][label]
        assert c["end_s"] == pytest.approx(end, abs=2.0)
        (group,) = c["groups"]
        assert group["status"].startswith("skipped: does not fit"), group
        assert group["not_run"] == list(names) and c["finished"] == []
    assert entry["step_guess"] == guess and ctx["measured"] == []  # the guess is not kept
    assert entry["better"] == "a" and "nothing to compare" in entry["reason"]


@pytest.mark.parametrize("name", ["default", None])
def test_default_precision_leaves_jax_untouched(name):
    import jax

    before = jax.config.jax_default_matmul_precision
    with gpu_report.matmul_precision(name):
        assert jax.config.jax_default_matmul_precision == before
    with gpu_report.matmul_precision("float32"):
        assert jax.config.jax_default_matmul_precision == "float32"
    assert jax.config.jax_default_matmul_precision == before
