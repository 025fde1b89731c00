import os

import numpy as np

import jaxdeconv
from jaxdeconv.bench import ablation, synthetic


def test_snapshots_are_kept_every_n_steps(tiny_config):
    tiny_config.num_steps = 6
    tiny_config.snapshot_every = 3
    r = jaxdeconv.deblur(synthetic.make_example(20, 20, 5).blurry, tiny_config)
    assert sorted(r.snapshots) == [3, 6]
    np.testing.assert_allclose(r.snapshots[6], r.image, atol=1e-6)


def test_ablation_compares_variants(small_levin, tmp_path, tiny_config):
    tiny_config.num_steps = 6
    tiny_config.snapshot_every = 3
    workdir = str(tmp_path / "abl")
    results = ablation.run_ablation(
        ["table5_none", "table5_both"],
        tiny_config,
        "levin",
        small_levin,
        workdir,
        images=["im1_kernel1"],
        base_name="tiny",
        log=lambda s: None,
    )
    assert set(results) == {"table5_none", "table5_both"}
    table = open(os.path.join(workdir, "ablation.md")).read()
    assert "| table5_none |" in table and "| table5_both |" in table
    assert os.path.getsize(os.path.join(workdir, "psnr_vs_step.png")) > 0
    curve = results["table5_both"][0]["psnr_curve"]
    assert [step for step, _ in curve] == [3, 6]
