r"""Many processes, one folder of inputs: a deterministic share each, one summary shard each.

Process ``i`` of ``n`` takes the inputs at positions ``i, i + n, i + 2n, ...`` of the full,
ordered input list (round robin: balanced, and the same on every process because every process
expands the same ``--input`` the same way). Output names are chosen over the full list, so
two shards never write the same file. Each process writes
``summary.shard-IIIII-of-NNNNN.json`` (and ``.csv``); the last process to finish (it finds all
``n`` shards finished) merges them into ``summary.json``/``summary.csv``, in input order, and
``python -m jaxdeconv.app.shards OUTPUT_DIR`` does the same by hand (shard order then).

``n`` and ``i`` come from ``--num_shards/--shard_index`` when given, else from
``jax.process_count()/jax.process_index()`` (1 and 0 unless ``jax.distributed`` is
initialised, e.g. by ``initialize_distributed``). ``--resume`` works per shard: a process
re-derives its share and skips the images whose outputs are complete.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import NamedTuple

from jaxdeconv.app import summary as summary_lib

SHARD_PATTERN = re.compile(r"summary\.shard-(\d{5})-of-(\d{5})\.json$")


class Shard(NamedTuple):
    count: int = 1
    index: int = 0


def resolve(num_shards: int | None = None, shard_index: int | None = None) -> Shard:
    """Explicit values win; else the ``jax.distributed`` process count and index."""
    if num_shards is None or shard_index is None:
        import jax

        num_shards = jax.process_count() if num_shards is None else num_shards
        shard_index = jax.process_index() if shard_index is None else shard_index
    num_shards, shard_index = int(num_shards), int(shard_index)
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(
            f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {num_shards} and "
            f"{shard_index}"
        )
    return Shard(num_shards, shard_index)


def initialize_distributed(**kwargs) -> Shard:
    """``jax.distributed.initialize(**kwargs)`` (cluster auto-detection without arguments:
    SLURM, Open MPI, Kubernetes, Cloud TPU), then this process's shard."""
    import jax

    jax.distributed.initialize(**kwargs)
    return resolve()


def select(paths: Sequence[str], shard: Shard) -> list[tuple[int, str]]:
    """This shard's ``(position, path)`` pairs, in input order."""
    return [(i, p) for i, p in enumerate(paths) if i % shard.count == shard.index]


def summary_name(shard: Shard, suffix: str = ".json") -> str:
    """``summary.json`` for one shard, else ``summary.shard-IIIII-of-NNNNN.json``."""
    if shard.count == 1:
        return "summary" + suffix
    return f"summary.shard-{shard.index:05d}-of-{shard.count:05d}{suffix}"


def shard_files(output_dir: str) -> dict[int, dict[int, str]]:
    """``{count: {index: path}}`` of the summary shards in ``output_dir``."""
    found: dict[int, dict[int, str]] = {}
    for path in sorted(glob.glob(os.path.join(output_dir, "summary.shard-*-of-*.json"))):
        m = SHARD_PATTERN.search(os.path.basename(path))
        if m:
            found.setdefault(int(m.group(2)), {})[int(m.group(1))] = path
    return found


def merge_records(
    shard_records: Sequence[Sequence[dict]], order: Sequence[str] | None = None
) -> list[dict]:
    """One list from the shards' records. With ``order`` (the full input list): records of
    inputs outside it (input specs that matched nothing) first, then the others in input order;
    without it, the shards' records one shard after the other."""
    every = [r for recs in shard_records for r in recs]
    if order is None:
        return every
    index = {p: i for i, p in enumerate(order)}
    loose = [r for r in every if r.get("input") not in index]
    placed = sorted((r for r in every if r.get("input") in index), key=lambda r: index[r["input"]])
    return loose + placed


def merge(
    output_dir: str, *, num_shards: int | None = None, order: Sequence[str] | None = None
) -> dict:
    """Merges the ``num_shards`` summary shards into ``summary.json`` and ``summary.csv``
    (written by ``summary.write_summary``, so later runs know them as this tool's files).

    ``num_shards``: which set (default: the only one present); ``order``: the full input list
    (see ``merge_records``). Raises ``FileNotFoundError`` naming missing shards and
    ``ValueError`` when one has not finished. Returns the merged summary.
    """
    import ml_collections

    found = shard_files(output_dir)
    if num_shards is None:
        if len(found) != 1:
            raise ValueError(
                f"{output_dir}: expected summary shards of one shard count, found counts "
                f"{sorted(found) or 'none'}; pass num_shards"
            )
        num_shards = next(iter(found))
    present = found.get(num_shards, {})
    missing = sorted(set(range(num_shards)) - set(present))
    if missing:
        raise FileNotFoundError(
            f"{output_dir}: summary shards {missing} of {num_shards} are missing "
            "(still running, or failed)"
        )
    parts = []
    for i in range(num_shards):
        with open(present[i]) as f:
            parts.append(json.load(f))
    running = [i for i, part in enumerate(parts) if not part.get("finished", True)]
    if running:
        raise ValueError(f"{output_dir}: summary shards {running} of {num_shards} not finished")
    records = merge_records([part["images"] for part in parts], order)
    unmatched = sorted({r for part in parts for r in part.get("unmatched_manifest_rows", [])})
    config = ml_collections.ConfigDict(parts[0].get("config") or {})
    summary_lib.write_summary(output_dir, records, config, unmatched_manifest_rows=unmatched)
    with open(os.path.join(output_dir, "summary.json")) as f:
        return {**json.load(f), "num_shards": num_shards}


def try_merge(output_dir: str, shard: Shard, order: Sequence[str] | None = None) -> bool:
    """``merge`` when every shard has finished (the last process to finish does it)."""
    try:
        merge(output_dir, num_shards=shard.count, order=order)
    except (FileNotFoundError, ValueError):
        return False
    return True


def main(argv: Sequence[str]) -> int:
    """``python -m jaxdeconv.app.shards OUTPUT_DIR [NUM_SHARDS]``: merge the summary shards."""
    if len(argv) not in (2, 3):
        print("usage: python -m jaxdeconv.app.shards OUTPUT_DIR [NUM_SHARDS]", file=sys.stderr)
        return 2
    try:
        summary = merge(argv[1], num_shards=int(argv[2]) if len(argv) == 3 else None)
    except (OSError, ValueError) as e:
        print(f"jaxdeconv.app.shards: {e}", file=sys.stderr)
        return 1
    n = len(summary["images"])
    print(f"merged {summary['num_shards']} shards, {n} images, into {argv[1]}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
