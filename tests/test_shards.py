import csv
import json
import os

import pytest

from jaxdeconv import batch, shards
from jaxdeconv import config as config_lib


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
        batch.write_summary(out, records, cfg, finished=finished, summary_name=name)
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
