import io
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

import jaxdeconv
from jaxdeconv.app import batch, image_io, inputs
from jaxdeconv.app import progress as progress_lib
from jaxdeconv.app import records as records_lib
from jaxdeconv.bench import synthetic


@pytest.fixture
def cfg(tiny_config):
    tiny_config.num_steps = 8
    tiny_config.log_every = 4
    return tiny_config


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def _grey(seed, shape=(24, 24)):
    ex = synthetic.make_example(shape[0], shape[1], 5, seed=seed)
    return image_io.to_uint8(ex.blurry[..., 0])


def test_batch_result_equals_single_run(cfg):
    images = [synthetic.make_example(24, 24, 5, seed=s).blurry for s in (0, 1)]
    # In float64 the batched and the single runs are the same computation: they agree to
    # rounding (measured 2e-10 on the kernels, 1.2e-7 on the loss, 2026-12-05); a wrong key or
    # state per image would differ by ~0.1.
    with jax.enable_x64(True):
        batched = jaxdeconv.deblur_batch(images, cfg)
        for image, got in zip(images, batched, strict=True):
            alone = jaxdeconv.deblur(image, cfg, key=jax.random.key(cfg.seed))
            np.testing.assert_allclose(got.kernel, alone.kernel, atol=1e-8)
            np.testing.assert_allclose(got.image, alone.image, atol=1e-6)
            np.testing.assert_allclose(got.loss_history, alone.loss_history, rtol=1e-6)
    # In float32 the vmapped step sums in another order and Adam (lr 1e-2) amplifies the
    # rounding over the steps: up to 2.1e-3 on the loss under the tests' XLA flags.
    batched = jaxdeconv.deblur_batch(images, cfg)
    for image, got in zip(images, batched, strict=True):
        alone = jaxdeconv.deblur(image, cfg, key=jax.random.key(cfg.seed))
        np.testing.assert_allclose(got.kernel, alone.kernel, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(got.image, alone.image, atol=3e-3)
        np.testing.assert_allclose(got.loss_history, alone.loss_history, rtol=5e-3)


def test_checkpoint_resume_reproduces_uninterrupted_run(cfg, tmp_path):
    blurry = synthetic.make_example(24, 24, 5, seed=0).blurry
    cfg.snapshot_every = 2
    full = jaxdeconv.deblur(blurry, cfg)
    cfg.checkpoint_every = 4
    # An interrupted run: train 4 of 8 steps, checkpointing at step 4.
    short = cfg.copy_and_resolve_references()
    short.num_steps = 8
    ckpt = str(tmp_path / "ckpt")

    class Stop(Exception):
        pass

    def stop_after_checkpoint(step, _):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        jaxdeconv.deblur(blurry, short, checkpoint_dir=ckpt, callback=stop_after_checkpoint)
    assert os.listdir(ckpt)
    resumed = jaxdeconv.deblur(blurry, cfg, checkpoint_dir=ckpt)
    np.testing.assert_allclose(resumed.kernel, full.kernel, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(resumed.loss_history, full.loss_history, rtol=1e-5)
    # The snapshot curve survives the stop: the points before it come from the checkpoint.
    assert sorted(resumed.snapshots) == sorted(full.snapshots) == [2, 4, 6, 8]
    for step in (2, 4, 6, 8):
        np.testing.assert_allclose(resumed.snapshots[step], full.snapshots[step], atol=1e-6)


def test_folder_with_good_colour_and_broken_files(cfg, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    grey = _save(src / "grey.png", _grey(0))
    rgb = np.stack([_grey(1), _grey(2), _grey(3)], axis=-1)
    colour = _save(src / "colour.png", rgb)
    rgba = _save(
        src / "alpha.png",
        np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1),
    )
    whole = open(_save(tmp_path / "whole.png", _grey(5)), "rb").read()
    (src / "broken.png").write_bytes(whole[: len(whole) // 2])  # truncated: corrupt
    (src / "notes.txt").write_text("hello")
    _save(src / "small.png", _grey(4)[:3, :3])
    before = {p: open(p, "rb").read() for p in (grey, colour, rgba)}
    out = tmp_path / "out"
    records = batch.process(
        [str(src / f) for f in sorted(os.listdir(src))], cfg, str(out), quiet=True
    )
    status = {r["name"]: r for r in records}
    for name in ("grey", "colour", "alpha"):
        assert status[name]["status"] == "ok"
        assert records_lib.outputs_complete(str(out), name)
    for name, words in [
        ("broken", "cannot decode"),
        ("notes", "not an image"),
        ("small", "smaller than the 5x5 kernel"),
    ]:
        assert status[name]["status"] == "failed"
        assert words in status[name]["error"] and name in status[name]["error"]
    assert image_io.read_image(str(out / "colour_deblurred.png")).shape == (24, 24, 3)
    assert image_io.read_image(str(out / "grey_deblurred.png")).shape == (24, 24, 1)
    for p, data in before.items():
        assert open(p, "rb").read() == data  # inputs untouched
    summary = json.load(open(out / "summary.json"))
    assert len(summary["images"]) == 6
    assert open(out / "summary.csv").read().count("\n") == 7
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]


def test_resume_skips_complete_outputs(cfg, tmp_path, monkeypatch):
    src = _save(tmp_path / "a.png", _grey(0))
    out = str(tmp_path / "out")
    assert batch.process([src], cfg, out, quiet=True)[0]["status"] == "ok"

    def fail(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(batch, "_train", fail)
    assert batch.process([src], cfg, out, quiet=True, resume=True)[0]["status"].startswith(
        "skipped"
    )
    os.remove(os.path.join(out, "a_kernel.npy"))  # incomplete outputs: trained again
    rec = batch.process([src], cfg, out, quiet=True, resume=True)[0]
    assert rec["status"] == "failed" and "trained again" in rec["error"]


@pytest.mark.parametrize(
    "k,words", [(4, "positive odd"), (0, "positive odd"), (-3, "positive odd")]
)
def test_bad_kernel_sizes_fail_cleanly(cfg, tmp_path, k, words):
    src = _save(tmp_path / "a.png", _grey(0))
    rec = batch.process([src], cfg, str(tmp_path / "o"), kernel_size=k, quiet=True)[0]
    assert rec["status"] == "failed" and words in rec["error"] and "a.png" in rec["error"]


def test_collect_inputs_and_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    a = _save(tmp_path / "d" / "a.png", _grey(0))
    b = _save(tmp_path / "b.jpg", _grey(1))
    paths, failures = inputs.collect_inputs(
        [
            str(tmp_path / "d"),
            str(tmp_path / "*.jpg"),
            a,
            str(tmp_path / "missing.png"),
            str(tmp_path / "*.tif"),
        ]
    )
    assert paths == [a, b]
    assert [f["error"] for f in failures] == [
        f"{tmp_path / 'missing.png'}: no such file or folder",
        f"{tmp_path / '*.tif'}: pattern matched no files",
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("name,kernel_size\na.png,7\nb,9\nc,auto\n")
    sizes = inputs.read_manifest(str(manifest))
    assert sizes == {"a.png": 7, "b": 9, "c": "auto"}
    assert inputs.unmatched_manifest_rows(sizes, paths) == ["c"]
    manifest.write_text("name,kernel_size\na.png,seven\n")
    with pytest.raises(ValueError, match="not an integer"):
        inputs.read_manifest(str(manifest))


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot be written"):
        records_lib.check_output_dir(str(blocker / "sub"))


def test_collect_reports_subfolders_links_duplicates_and_own_outputs(tmp_path):
    src = tmp_path / "in"
    (src / "raw").mkdir(parents=True)
    a = _save(src / "photo.png", _grey(0))
    look_alike = _save(src / "photo_network.png", _grey(1))  # the user's, despite its name
    (src / "dangling.png").symlink_to("nowhere.png")
    (src / "loop.png").symlink_to("loop.png")
    (src / "same.png").symlink_to("photo.png")
    _save(src / ".hidden.png", _grey(2))
    (src / ".DS_Store").write_text("x")
    paths, records = inputs.collect_inputs([str(src)])
    assert paths == [a, look_alike]
    status = {os.path.basename(r["input"]): r["status"] for r in records}
    assert status == {
        "dangling.png": "skipped (dangling symbolic link (to nowhere.png))",
        "loop.png": "skipped (symbolic link loop)",
        "raw": "skipped (sub-folder; folders are not searched recursively)",
        ".hidden.png": "skipped (hidden file)",
        "same.png": f"skipped (same file as {a})",
    }
    lines = inputs.skip_lines(records)
    assert len(lines) == 5 and any("symbolic link loop): " in x for x in lines)
    # Files a record says jaxdeconv wrote are never taken from a folder or a glob.
    image_io.write_json(
        str(src / records_lib.RECORD_DIR / "images" / "photo.json"),
        {"files": ["photo_network.png"]},
    )
    for spec in (str(src), str(src / "*.png")):
        paths, records = inputs.collect_inputs([spec])
        assert paths == [a]
        assert "skipped (written by jaxdeconv in an earlier run)" in [r["status"] for r in records]
    assert inputs.collect_inputs([look_alike])[0] == [look_alike]  # named: the user's word


def test_split_specs_and_output_folder_rules(tmp_path):
    comma = _save(tmp_path / "a, b.png", _grey(0))
    assert inputs.split_specs([f"{comma}", "x.png,y.png", r"c\,d.png"]) == [
        comma,
        "x.png",
        "y.png",
        "c,d.png",
    ]
    src = tmp_path / "in"
    src.mkdir()
    a = _save(src / "a.png", _grey(0))
    assert "is the folder of the input" in inputs.output_dir_problem(str(src), [str(src)], [a])
    assert "is the folder of the input" in inputs.output_dir_problem(str(src) + "/.", [], [a])
    assert inputs.output_dir_problem(str(tmp_path / "out"), [str(src)], [a]) is None
    assert inputs.output_dir_problem(str(src / "out"), [str(src)], [a]) is None  # not searched
    assert "not a folder" in inputs.output_dir_problem(a, [], [])
    # Even where the folder rule is not applied (library use), an output never replaces an
    # input: photo.png's NAME_network.png is the input photo_network.png here.
    photo = _save(src / "photo.png", _grey(1))
    look_alike = _save(src / "photo_network.png", _grey(2))
    assert records_lib.foreign_files(
        str(src), records_lib.output_files("photo"), [photo, look_alike]
    ) == [look_alike]


def test_never_replaces_files_it_did_not_write(cfg, tmp_path):
    a = _save(tmp_path / "a.png", _grey(0))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_kernel.png").write_bytes(b"the user's")
    rec = batch.process([a], cfg, str(out), quiet=True)[0]
    assert (
        rec["status"] == "failed" and "a_kernel.png, which jaxdeconv did not write" in rec["error"]
    )
    assert (out / "a_kernel.png").read_bytes() == b"the user's"
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match="summary.json exists and was not written by jaxdeconv"):
        batch.process([a], cfg, str(other), quiet=True)
    assert os.listdir(other) == ["summary.json"]
    # Processes sharing a folder each keep their own summary, recorded as jaxdeconv's.
    shared = str(tmp_path / "shared")
    batch.process([a], cfg, shared, kernel_size=4, quiet=True, summary_name="part-1")
    assert json.load(open(os.path.join(shared, "part-1.json")))["images"][0]["status"] == "failed"
    paths, records = inputs.collect_inputs([shared])
    assert paths == [] and {r["status"] for r in records[:-1]} == {
        "skipped (written by jaxdeconv in an earlier run)"
    }


def test_resume_redoes_outputs_of_another_seed(cfg, tmp_path, monkeypatch):
    src = _save(tmp_path / "a.png", _grey(0))
    out = str(tmp_path / "out")
    batch.process([src], cfg, out, quiet=True)
    other = cfg.copy_and_resolve_references()
    other.seed = 1

    def fail(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(batch, "_train", fail)
    rec = batch.process([src], other, out, quiet=True, resume=True)[0]
    assert "trained again" in rec["error"]  # not skipped: those outputs are seed 0's


def _interrupt_at(monkeypatch, step):
    real = batch.api.deblur

    def interrupted(*args, callback=None, **kwargs):
        def stop(s, metrics):
            if s == step:
                raise RuntimeError("killed")

        return real(*args, callback=stop, **kwargs)

    monkeypatch.setattr(batch.api, "deblur", interrupted)


def test_checkpoint_used_only_by_its_own_run(cfg, tmp_path, monkeypatch, capsys):
    cfg.checkpoint_every = 4
    src = _save(tmp_path / "a.png", _grey(0))
    reference = {}
    for seed in (0, 1):
        c = cfg.copy_and_resolve_references()
        c.seed = seed
        out = str(tmp_path / f"clean{seed}")
        assert batch.process([src], c, out, quiet=True)[0]["status"] == "ok"
        reference[seed] = np.load(os.path.join(out, "a_kernel.npy"))
    assert not os.path.exists(os.path.join(out, records_lib.CHECKPOINT_DIR))  # removed when done
    out = str(tmp_path / "out")
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        assert batch.process([src], cfg, out, quiet=True)[0]["status"] == "failed"
    (ckpt,) = _checkpoints(out)
    assert os.listdir(ckpt) and os.path.isfile(ckpt + ".json")
    other = cfg.copy_and_resolve_references()
    other.seed = 1
    capsys.readouterr()
    assert batch.process([src], other, out)[0]["status"] == "ok"
    assert "checkpoint of another run (other seed) removed" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(os.path.join(out, "a_kernel.npy")), reference[1])
    # Interrupted again, then a run with another kernel size: no Orbax shape error.
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        batch.process([src], cfg, out, quiet=True)
    rec = batch.process([src], cfg, out, kernel_size=3, quiet=True)[0]
    assert rec["status"] == "ok" and rec["kernel_size"] == 3
    # The same run continues from its checkpoint and gives the uninterrupted result.
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        batch.process([src], cfg, out, quiet=True)
    capsys.readouterr()
    assert batch.process([src], cfg, out)[0]["status"] == "ok"
    assert "continuing from the checkpoint" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(os.path.join(out, "a_kernel.npy")), reference[0])
    assert not os.path.exists(os.path.join(out, records_lib.CHECKPOINT_DIR))


def _checkpoints(out):
    folder = os.path.join(out, records_lib.CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if not n.endswith(".json"))


def test_same_named_inputs_never_share_a_checkpoint(cfg, tmp_path, monkeypatch, capsys):
    # Two runs into one folder with different inputs called a.png (issue 26: the second
    # resumed from the first one's networks and was recorded ok).
    cfg.checkpoint_every = 4
    (tmp_path / "cA").mkdir()
    (tmp_path / "cB").mkdir()
    src_a = _save(tmp_path / "cA" / "a.png", _grey(0))
    src_b = _save(tmp_path / "cB" / "a.png", _grey(1))
    reference = {}
    for src in (src_a, src_b):
        clean = str(tmp_path / ("clean" + src[-6]))
        assert batch.process([src], cfg, clean, quiet=True)[0]["status"] == "ok"
        reference[src] = np.load(os.path.join(clean, "a_kernel.npy"))
    assert not np.array_equal(reference[src_a], reference[src_b])
    out = str(tmp_path / "out")
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        assert batch.process([src_a], cfg, out, quiet=True)[0]["status"] == "failed"
        (ckpt_a,) = _checkpoints(out)
        capsys.readouterr()
        assert batch.process([src_b], cfg, out)[0]["status"] == "failed"
    (ckpt_b,) = _checkpoints(out)
    assert ckpt_b != ckpt_a
    assert "checkpoint of another run (other input) removed" in capsys.readouterr().err
    for src in (src_b, src_a):  # each resumed in turn: its own result, never the other's
        assert batch.process([src], cfg, out, resume=True, quiet=True)[0]["status"] == "ok"
        np.testing.assert_array_equal(np.load(os.path.join(out, "a_kernel.npy")), reference[src])
    assert _checkpoints(out) == []


def test_checkpoint_names_are_bounded_whatever_the_input_name(cfg, tmp_path, monkeypatch):
    cfg.checkpoint_every = 4
    src = _save(tmp_path / ("n" * 230 + ".png"), _grey(0))  # outputs: 246 chars
    out = str(tmp_path / "out")
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        assert batch.process([src], cfg, out, quiet=True)[0]["status"] == "failed"
    (ckpt,) = _checkpoints(out)
    assert len(os.path.basename(ckpt) + ".json") < 100
    assert batch.process([src], cfg, out, resume=True, quiet=True)[0]["status"] == "ok"


def test_killed_run_leaves_a_summary(cfg, tmp_path, monkeypatch):
    paths = [_save(tmp_path / f"{n}.png", _grey(i)) for i, n in enumerate("ab")]
    real = batch._final_stage

    def killed_on_b(member, result):
        if member["path"].endswith("b.png"):
            raise KeyboardInterrupt
        return real(member, result)

    monkeypatch.setattr(batch, "_final_stage", killed_on_b)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        batch.process(paths, cfg, str(out), quiet=True)
    summary = json.load(open(out / "summary.json"))
    assert summary["finished"] is False
    assert [i["status"] for i in summary["images"]] == ["ok", "pending"]


def test_eta_ignores_compilation_and_resumed_steps():
    progress = progress_lib.Progress(2, quiet=True)
    progress.todo_steps, progress.todo_images = 2 * 1000, 2
    # A run resumed at step 500: the first report (step 600, 40 s in) holds compilation.
    tracker = progress_lib._StepTracker(progress, "a", num_steps=1000, batch=1)
    for step, t in [(600, 40.0), (700, 41.0), (800, 42.0)]:
        tracker.report(step, {"loss": 0.1}, now=t)
    assert progress.rate() == pytest.approx(0.01)  # 200 steps in 2 s
    assert progress.eta(200, 0) == pytest.approx(2.0)
    tracker.close()
    assert progress.todo_steps == 1000  # the other image
    assert progress.eta() == pytest.approx(10.0)


def test_progress_redraws_in_place_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, tty in [(io.StringIO(), False), (Terminal(), True)]:
        progress = progress_lib.Progress(1, stream=stream)
        progress.status("step 1")
        progress.status("step 2")
        progress.advance(1, "done")
        text = stream.getvalue()
        if tty:
            assert text.count("\n") == 1 and "\r\033[Kstep 2\r\033[K[" in text
        else:
            assert text.splitlines()[:2] == ["step 1", "step 2"]  # one line per update


def test_decoding_is_bounded_and_overlapping_changes_no_output(cfg, tmp_path, monkeypatch):
    """Files are decoded a batch ahead, not all up front: never more than three batches'
    images held (training, read ahead, finishing); the outputs equal a run without overlap."""
    paths = [_save(tmp_path / f"p{i}.png", _grey(i)) for i in range(6)]
    held, peak = set(), [0]
    read, finish = image_io.read_image_with_notes, batch._write_image_outputs

    def reading(path):
        held.add(path)
        peak[0] = max(peak[0], len(held))
        return read(path)

    def finishing(member, *args):
        finish(member, *args)
        held.discard(member["path"])

    monkeypatch.setattr(image_io, "read_image_with_notes", reading)
    monkeypatch.setattr(batch, "_write_image_outputs", finishing)
    outputs = {}
    for overlapped in (True, False):
        out = tmp_path / f"out_{overlapped}"
        records = batch.process(
            paths, cfg, str(out), batch_size=1, quiet=True, overlapped=overlapped
        )
        assert [r["status"] for r in records] == ["ok"] * 6
        outputs[overlapped] = [np.load(out / f"p{i}_kernel.npy") for i in range(6)]
        assert peak[0] <= (3 if overlapped else 1) and not held
        peak[0] = 0
    for a, b in zip(outputs[True], outputs[False], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_full_disk_is_reported_and_what_is_done_kept(cfg, tmp_path, monkeypatch, capsys):
    # The folder fills up while the second image's outputs are written (an injected ENOSPC at
    # the file layer): the first image's outputs stay, the second fails in one line, the third
    # is not trained, the summary's own failure is a record, and nothing raises.
    import errno

    paths = [_save(tmp_path / f"{n}.png", _grey(i)) for i, n in enumerate("abc")]
    out = tmp_path / "out"
    real = image_io.atomic_write
    full = {"on": False}

    def atomic_write(path, write):
        if os.path.basename(path) == "b_deblurred.png":
            full["on"] = True
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(image_io, "atomic_write", atomic_write)
    trained = []
    real_train = batch._train

    def train(chunk, *args, **kwargs):
        trained.extend(os.path.basename(m["path"]) for m in chunk)
        return real_train(chunk, *args, **kwargs)

    monkeypatch.setattr(batch, "_train", train)
    records = batch.process(paths, cfg, str(out), batch_size=1, overlapped=False)
    by_name = {r["name"]: r for r in records}
    assert by_name["a"]["status"] == "ok"
    assert os.path.isfile(out / "a_deblurred.png")
    assert by_name["b"]["status"] == "failed" and "No space left" in by_name["b"]["error"]
    assert by_name["c"]["status"] == "failed" and "not tried" in by_name["c"]["error"]
    assert trained == ["a.png", "b.png"]
    assert by_name["summary"]["status"] == "failed"
    assert "cannot write summary.json/.csv" in by_name["summary"]["error"]
    err = capsys.readouterr().err
    assert err.count("cannot write summary.json/.csv") == 1  # said once, not per image


def test_the_summary_records_the_seed_kept(cfg, tmp_path, monkeypatch):
    src = _save(tmp_path / "a.png", _grey(0))
    real = batch._final_stage

    def with_seeds(member, result):  # what pipeline.most_consistent reports with 3 seeds
        outputs = real(member, result)
        outputs.facts["seeds"] = {
            "seeds": [0, 1, 2],
            "agreement": [0.5, 0.9, 0.6],
            "flagged": [False] * 3,
            "kept": 1,
        }
        return outputs

    monkeypatch.setattr(batch, "_final_stage", with_seeds)
    out = tmp_path / "out"
    (record,) = batch.process([src], cfg, str(out), quiet=True)
    assert record["seed"] == 1 and record["seeds"] == [0, 1, 2]
    (image,) = json.load(open(out / "summary.json"))["images"]
    assert image["seed"] == 1 and image["seed_agreement"] == [0.5, 0.9, 0.6]
    assert "kept_candidate" not in image  # no variants in the pool


def test_the_summary_records_the_variant_kept(cfg, tmp_path, monkeypatch):
    src = _save(tmp_path / "a.png", _grey(0))
    real = batch._final_stage

    def with_variant(member, result):  # most_consistent with 2 seeds and one variant
        outputs = real(member, result)
        outputs.facts["seeds"] = {
            "seeds": [0, 1],
            "agreement": [0.5, 0.9, 0.6],
            "flagged": [False] * 3,
            "kept": 0,
            "candidates": ["seed 0", "seed 1", "ssim_switch"],
            "kept_candidate": "ssim_switch",
        }
        return outputs

    monkeypatch.setattr(batch, "_final_stage", with_variant)
    out = tmp_path / "out"
    batch.process([src], cfg, str(out), quiet=True)
    (image,) = json.load(open(out / "summary.json"))["images"]
    assert image["seed"] == 0 and image["kept_candidate"] == "ssim_switch"
