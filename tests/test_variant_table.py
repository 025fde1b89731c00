"""benchmarks/variant_table.py: rows gathered from run folders, merged, and tabled per blur."""

import json
import os

import numpy as np
import pytest
from script_loader import load_script

vt = load_script("benchmarks/variant_table.py")


def _row(name, size, psnr, ratio, sim, status="ok"):
    return dict(
        name=name,
        kernel_size=str(size),
        kernel_size_convention="published",
        psnr_two_stage_published=str(psnr),
        psnr_two_stage=str(psnr - 1),
        error_ratio=str(ratio),
        kernel_similarity=str(sim),
        status=status,
    )


def _run_folder(tmp_path, label, rows):
    folder = tmp_path / label / "images"
    folder.mkdir(parents=True)
    for r in rows:
        (folder / f"{r['name']}.json").write_text(json.dumps({"config_hash": "h1", "row": r}))
    return str(tmp_path / label)


def test_run_rows_keeps_finished_images_with_label_and_hash(tmp_path):
    folder = _run_folder(
        tmp_path, "a", [_row("x_1", 31, 20.0, 1.5, 0.8), _row("y_1", 31, 0, 0, 0, status="failed")]
    )
    rows = vt.run_rows("coord", folder)
    assert len(rows) == 1 and rows[0]["name"] == "x_1"
    assert rows[0]["variant"] == "coord" and rows[0]["config_hash"] == "h1"
    assert set(rows[0]) == set(vt.COLUMNS)
    assert rows[0]["kernel_size_convention"] == "published"  # every row names its convention


def test_merge_replaces_same_variant_and_image_only():
    old = [dict(variant="a", name="x", v=1), dict(variant="b", name="x", v=2)]
    new = [dict(variant="a", name="x", v=3), dict(variant="a", name="y", v=4)]
    merged = vt.merge(old, new)
    assert sorted((r["variant"], r["name"], r["v"]) for r in merged) == [
        ("a", "x", 3),
        ("a", "y", 4),
        ("b", "x", 2),
    ]


def test_table_uses_the_common_images_and_the_datasets_psnr_column():
    fast = [_row("p", 31, 20.0, 1.5, 0.8), _row("q", 51, 16.0, 3.0, 0.5), _row("r", 51, 10, 9, 0.1)]
    v = {"new": [_row("p", 31, 22.0, 1.2, 0.9), _row("q", 51, 18.0, 1.9, 0.7)]}  # no 'r'
    text = vt.table("lai", fast, v)
    assert "On the 2 images common" in text
    assert "| 31 px | 1 | 20.00 / 1 / 0.80 | 22.00 / 1 / 0.90 |" in text
    assert "| 51 px | 1 | 16.00 / 0 / 0.50 | 18.00 / 1 / 0.70 |" in text
    assert "| **all** | 2 | 18.00 / 1 / 0.65 | 20.00 / 2 / 0.80 |" in text
    assert "- new: 2 images, 20.00 dB against `fast` 18.00, right 2 against 1" in text
    assert "better on 2" in text
    levin = vt.table("levin", fast, v)  # Levin's own protocol: psnr_two_stage
    assert "| **all** | 2 | 17.00 / 1 / 0.65 | 19.00 / 2 / 0.80 |" in levin
    extra = {"new": [*v["new"], _row("s", 51, 30.0, 1.0, 0.9)]}  # an image `fast` lacks
    assert "- new: 2 images, 20.00 dB against `fast` 18.00" in vt.table("lai", fast, extra)
    best = vt.table("lai", fast, v, oracle=True)  # per image: p 22.00 (new), q 18.00 (new)
    assert "| **all** | 2 | 18.00 / 1 / 0.65 | 20.00 / 2 / 0.80 | 20.00 / 2 |" in best
    assert "| 31 px | 1 | 20.00 / 1 / 0.80 | 22.00 / 1 / 0.90 | 22.00 / 1 |" in best
    with pytest.raises(ValueError, match="no image is common"):
        vt.table("lai", fast, {"new": [_row("z", 31, 1, 1, 1)]})


def test_synthetic_table_groups_by_kernel_bucket_with_its_own_psnr():
    def syn(name, size, bucket, psnr, ratio):
        return {**_row(name, size, psnr, ratio, 0.5), "kernel_bucket": bucket}

    fast = [syn("a", 19, "k09-19", 30.0, 1.5), syn("b", 25, "k21-35", 20.0, 3.0)]
    fast.append(syn("c", 33, "k21-35", 24.0, 1.0))
    v = {"new": [syn("a", 19, "k09-19", 31.0, 1.1), syn("b", 25, "k21-35", 25.0, 1.2)]}
    v["new"].append(syn("c", 33, "k21-35", 23.0, 2.5))
    text = vt.table("synthetic", fast, v)
    # sizes 25 and 33 share the 21-35 bucket; psnr_two_stage is the published value minus 1
    assert "| k09-19 | 1 | 29.00 / 1 / 0.50 | 30.00 / 1 / 0.50 |" in text
    assert "| k21-35 | 2 | 21.00 / 1 / 0.50 | 23.00 / 1 / 0.50 |" in text
    assert text.index("| k09-19") < text.index("| k21-35")


def test_best_of_takes_each_images_best_and_any_right_kernel():
    a = [_row("p", 31, 20.0, 3.0, 0.5), _row("p", 31, 25.0, 2.5, 0.5)]  # best 25, none right
    b = [_row("q", 51, 18.0, 1.5, 0.5), _row("q", 51, 12.0, 9.0, 0.5)]  # best 18, one right
    assert vt.best_of([a, b], "psnr_two_stage_published") == (21.5, 1)


def test_montage_grid_puts_the_true_kernel_first_and_scales_each_tile():
    true = [np.eye(3)]
    est = [[np.full((5, 5), 0.04), np.zeros((5, 5))]]
    grid = vt.montage_grid(true, est, zoom=1)
    cell = 5 + 2
    assert grid.shape == (cell, 3 * cell)
    first = grid[:5, :5]  # the 3x3 identity centred on a 5x5 tile, its maximum white
    np.testing.assert_allclose(first[1:4, 1:4], np.eye(3))
    assert first[0].max() == 0.0 and first[:, 4].max() == 0.0
    np.testing.assert_allclose(grid[:5, cell : cell + 5], 1.0)  # a flat kernel: all white
    assert grid[:5, 2 * cell : 2 * cell + 5].max() == 0.0  # an empty kernel stays black
    assert grid[5, 0] == pytest.approx(0.25)  # the gap between tiles


def test_montage_writes_the_runs_common_images_and_refuses_unfinished_ones(tmp_path):
    rows = [_row("x_1", 3, 20.0, 1.5, 0.8), _row("y_1", 3, 21.0, 2.5, 0.6)]
    runs = {}
    for label in ("a", "b"):
        folder = _run_folder(tmp_path, label, rows)
        for r in rows:
            for kind in ("kernel", "true_kernel"):
                np.save(os.path.join(folder, "images", f"{r['name']}_{kind}.npy"), np.eye(3) / 3)
        runs[label] = folder
    out = tmp_path / "m.png"
    vt.montage(str(out), runs)
    from PIL import Image

    assert Image.open(out).size[1] > 2 * 14  # two rows of tiles, each with its label line
    with pytest.raises(ValueError, match="not finished"):
        vt.montage(str(out), runs, images=["z_1"])


def test_parse_runs_keeps_every_folder_of_a_label_and_refuses_an_image_twice(tmp_path):
    a = _run_folder(tmp_path, "half_a", [_row("x_1", 3, 20.0, 1.5, 0.8)])
    b = _run_folder(tmp_path, "half_b", [_row("y_1", 3, 21.0, 2.5, 0.6)])
    runs = vt.parse_runs([f"margin=1.3={a}", f"margin=1.3={b}"])
    assert runs == {"margin=1.3": [a, b]}  # split at the last =, both halves kept
    c = _run_folder(tmp_path, "again", [_row("x_1", 3, 22.0, 1.2, 0.9)])
    with pytest.raises(SystemExit, match="x_1"):
        vt.parse_runs([f"m={a}", f"m={c}"])
    with pytest.raises(SystemExit, match="LABEL=FOLDER"):
        vt.parse_runs([f"m={tmp_path / 'absent'}"])


def test_montage_finds_each_image_in_its_own_folder_of_a_split_run(tmp_path):
    halves = []
    for label, row in (
        ("h1", _row("x_1", 3, 20.0, 1.5, 0.8)),
        ("h2", _row("y_1", 3, 21.0, 2.5, 0.6)),
    ):
        folder = _run_folder(tmp_path, label, [row])
        for kind in ("kernel", "true_kernel"):
            np.save(os.path.join(folder, "images", f"{row['name']}_{kind}.npy"), np.eye(3) / 3)
        halves.append(folder)
    out = tmp_path / "m.png"
    vt.montage(str(out), {"split": halves}, images=["x_1", "y_1"])
    assert out.exists()
    with pytest.raises(ValueError, match="not finished"):
        vt.montage(str(out), {"half": halves[0]}, images=["x_1", "y_1"])
