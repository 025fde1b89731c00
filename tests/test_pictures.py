import numpy as np
import pytest

from jaxdeconv.app import batch, inputs, pictures
from jaxdeconv.bench import synthetic


def test_comparison_puts_the_panels_side_by_side():
    ex = synthetic.make_example(40, 60, 5, seed=0)
    deblurred = np.clip(ex.sharp * 0.5, 0, 1)
    pic = pictures.comparison(ex.blurry, deblurred, ex.kernel)
    assert pic.dtype == np.uint8 and pic.shape[2] == 3
    top = pictures._LABEL_HEIGHT
    # The blurry panel comes first, then (after the gap) the deblurred one, at full size.
    np.testing.assert_array_equal(pic[top : top + 40, :60, 0], pictures._rgb8(ex.blurry)[..., 0])
    start = 60 + pictures._GAP
    np.testing.assert_array_equal(
        pic[top : top + 40, start : start + 60, 0], pictures._rgb8(deblurred)[..., 0]
    )
    with_truth = pictures.comparison(ex.blurry, deblurred, ex.kernel, ex.kernel)
    assert with_truth.shape[1] > pic.shape[1]
    # The kernel panel: its largest tap is white.
    kernel_part = pic[top:, start + 60 + pictures._GAP :, 0]
    assert kernel_part.max() == 255


def test_large_images_are_shrunk():
    image = np.zeros((1000, 2000))
    pic = pictures.comparison(image, image, np.ones((3, 3)) / 9, max_side=200)
    assert pic.shape[0] == 100 + pictures._LABEL_HEIGHT


def test_overview_stacks_rows_and_refuses_nothing():
    a = np.zeros((30, 50, 3), np.uint8)
    b = np.full((20, 2000, 3), 200, np.uint8)
    sheet = pictures.overview([a, b], ["a", "b"], width=400)
    assert sheet.shape[1] == 400 and sheet.shape[0] > 30 + 5
    with pytest.raises(ValueError):
        pictures.overview([], [])


def test_a_folder_run_writes_comparisons_and_one_overview(tmp_path, tiny_config):
    from PIL import Image

    from jaxdeconv.app import image_io

    tiny_config.num_steps = 6
    paths = []
    for i in range(2):
        ex = synthetic.make_example(24, 24, 5, seed=i)
        p = tmp_path / f"im{i}.png"
        Image.fromarray(image_io.to_uint8(ex.blurry[..., 0])).save(p)
        paths.append(str(p))
    out = tmp_path / "out"
    records = batch.process(paths, tiny_config, str(out), quiet=True)
    assert [r["status"] for r in records] == ["ok", "ok"]
    for i in range(2):
        assert (out / f"im{i}_comparison.png").is_file()
    assert (out / "overview.png").is_file()
    # The sheet is the tool's own file: a later run over the folder skips it as an output.
    _, skipped = inputs.collect_inputs([str(out)])
    assert any(
        r["input"].endswith("overview.png") and "written by jaxdeconv" in r["status"]
        for r in skipped
    )
