import csv
import json
import os
import socket
import subprocess
import sys

import pytest
from PIL import Image

from jaxdeconv import config as config_lib
from jaxdeconv.app import image_io, shards
from jaxdeconv.app import records as records_lib
from jaxdeconv.app import summary as summary_lib
from jaxdeconv.bench import synthetic


def test_select_is_a_balanced_deterministic_partition():
    paths = [f"img{i}.png" for i in range(11)]
    parts = [shards.select(paths, shards.Shard(4, i)) for i in range(4)]
    assert sorted(p for part in parts for _, p in part) == sorted(paths)  # disjoint, complete
    assert [len(p) for p in parts] == [3, 3, 3, 2]
    assert parts[1] == [(1, "img1.png"), (5, "img5.png"), (9, "img9.png")]
    assert shards.select(paths, shards.Shard(4, 1)) == parts[1]


def test_resolve_defaults_and_errors():
    assert shards.resolve() == shards.Shard(1, 0)  # no jax.distributed here
    assert shards.resolve(3, 2) == shards.Shard(3, 2)
    for bad in ((2, 2), (0, 0), (2, -1)):
        with pytest.raises(ValueError, match="shard_index"):
            shards.resolve(*bad)
    assert shards.summary_name(shards.Shard(1, 0)) == "summary.json"
    assert shards.summary_name(shards.Shard(12, 3), ".csv") == "summary.shard-00003-of-00012.csv"


def _records(shard, paths):
    return [
        {"name": os.path.basename(p), "input": p, "status": "ok"}
        for _, p in shards.select(paths, shard)
    ]


def test_shard_summaries_merge_in_input_order(tmp_path):
    cfg = config_lib.tiny()
    paths = [f"in/{c}.png" for c in "abcde"]
    out = str(tmp_path)
    loose = {"name": "missing/*.png", "input": "missing/*.png", "status": "failed"}

    def write(index, records, finished=True):
        shard = shards.Shard(2, index)
        name = shards.summary_name(shard, "")
        summary_lib.write_summary(out, records, cfg, finished=finished, summary_name=name)
        return shards.try_merge(out, shard, order=paths)

    assert not write(0, [loose] + _records(shards.Shard(2, 0), paths))
    assert not os.path.exists(tmp_path / "summary.json")
    with pytest.raises(FileNotFoundError, match=r"\[1\] of 2 are missing"):
        shards.merge(out)
    assert shards.main(["x", out]) == 1
    assert not write(1, _records(shards.Shard(2, 1), paths)[:1], finished=False)
    assert not os.path.exists(tmp_path / "summary.json")
    assert write(1, _records(shards.Shard(2, 1), paths))
    merged = json.load(open(tmp_path / "summary.json"))
    assert [r["input"] for r in merged["images"]] == ["missing/*.png"] + paths
    assert merged["finished"] and merged["config"]["kernel_size"] == cfg.kernel_size
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [r["name"] for r in rows] == ["missing/*.png"] + [f"{c}.png" for c in "abcde"]
    assert os.path.exists(tmp_path / "summary.shard-00001-of-00002.csv")
    assert shards.main(["x", out, "2"]) == 0  # by hand: shard order
    merged = json.load(open(tmp_path / "summary.json"))
    assert [r["input"] for r in merged["images"]][:4] == ["missing/*.png"] + paths[0:5:2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(src, out, *extra):
    return [
        sys.executable, "-m", "jaxdeconv.app.cli", f"--input={src}", f"--output_dir={out}",
        "--config=tiny", "--config.num_steps=2", "--checkpoint_every=0", "--quiet", *extra,
    ]  # fmt: skip


def test_two_processes_with_a_local_coordinator(tmp_path):
    """jax.distributed on the CPU: two processes, a coordinator on 127.0.0.1; each deblurs its
    share and writes its summary shard, the last one merges; then one shard resumes alone."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for s in range(3):
        ex = synthetic.make_example(16, 16, 5, seed=s)
        Image.fromarray(image_io.to_uint8(ex.blurry[..., 0])).save(src / f"im{s}.png")
    env = dict(os.environ)
    env.setdefault(
        "JAXDECONV_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".jax_cache")
    )
    port = _free_port()
    procs = [
        subprocess.Popen(
            _command(
                src,
                out,
                "--distributed",
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stdout + stderr[-3000:]
    assert "2 deblurred" in outputs[0][0] and "1 deblurred" in outputs[1][0]
    shard0 = json.load(open(out / "summary.shard-00000-of-00002.json"))
    assert [os.path.basename(r["input"]) for r in shard0["images"]] == ["im0.png", "im2.png"]
    merged = json.load(open(out / "summary.json"))
    assert [r["name"] for r in merged["images"]] == ["im0", "im1", "im2"]
    assert all(r["status"] == "ok" for r in merged["images"])
    for name in ("im0", "im1", "im2"):
        assert records_lib.outputs_complete(str(out), name)

    # Shard 1 again, by explicit flags, with --resume: skipped, and the merge redone.
    os.remove(out / "summary.json")
    again = subprocess.run(
        _command(src, out, "--num_shards=2", "--shard_index=1", "--resume"),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 deblurred, 1 skipped" in again.stdout
    merged = json.load(open(out / "summary.json"))
    assert [r["status"] for r in merged["images"]] == ["ok", "skipped (complete)", "ok"]


@pytest.mark.parametrize("holder_shards", [1, 3])
def test_a_sharded_run_cannot_join_another_runs_folder(tmp_path, holder_shards, lock_holder):
    """A live plain run (or a run with another shard count) owns the folder: a sharded run
    with other inputs is refused with exit 2 naming the holder, and touches nothing of it."""
    from jaxdeconv.app import folder_lock

    a, b, out = tmp_path / "cA", tmp_path / "cB", tmp_path / "out"
    for folder, seed in ((a, 0), (b, 1)):
        folder.mkdir()
        ex = synthetic.make_example(16, 16, 5, seed=seed)
        Image.fromarray(image_io.to_uint8(ex.blurry[..., 0])).save(folder / "a.png")
    name = shards.summary_name(shards.Shard(holder_shards, 0), "")
    holder = lock_holder(out, name, run_id="holder")
    try:
        before = sorted(os.listdir(out))
        r = subprocess.run(
            _command(b / "a.png", out, "--num_shards=2", "--shard_index=0"),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 2, r.stderr[-3000:]
        assert f"in use by process {holder.pid}" in r.stderr
        assert folder_lock.lock_path(str(out), name) in r.stderr
        assert sorted(os.listdir(out)) == before  # no output, summary or checkpoint written
    finally:
        holder.communicate("")
