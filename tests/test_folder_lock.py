import json
import os
import socket

import pytest

from jaxdeconv.app import folder_lock


def test_second_owner_is_refused_and_release_frees_the_folder(tmp_path):
    out = str(tmp_path)
    owner = folder_lock.acquire(out, log=print)
    assert owner["pid"] == os.getpid()
    with pytest.raises(folder_lock.FolderBusy, match=f"in use by process {os.getpid()}"):
        folder_lock.acquire(out)
    folder_lock.release(out)
    assert not os.path.exists(folder_lock.lock_path(out))
    with folder_lock.owned(out):  # free again
        pass
    # The shards of one run (one run identity, distinct names) share the folder.
    with folder_lock.owned(out, "summary.shard-00000-of-00002", run_id="r1"):
        with folder_lock.owned(out, "summary.shard-00001-of-00002", run_id="r1"):
            pass
    assert not os.path.exists(os.path.join(out, ".jaxdeconv"))  # nothing left behind


@pytest.mark.parametrize(
    "first, second",
    [
        (("summary", "r1"), ("summary.shard-00000-of-00002", "r2")),  # plain, then sharded
        (("summary.shard-00000-of-00002", "r2"), ("summary", "r1")),  # sharded, then plain
        (("summary.shard-00000-of-00002", "r2"), ("summary.shard-00001-of-00003", "r3")),
        (("summary.shard-00000-of-00002", "r2"), ("summary.shard-00001-of-00002", "other")),
        (("summary.shard-00000-of-00002", "r2"), ("summary.shard-00000-of-00002", "r2")),
        (("summary", ""), ("summary.shard-00001-of-00002", "")),  # no identity: never shared
    ],
)
def test_only_the_shards_of_one_run_share_a_folder(tmp_path, first, second):
    out = str(tmp_path)
    with folder_lock.owned(out, first[0], run_id=first[1]):
        with pytest.raises(
            folder_lock.FolderBusy,
            match=rf"in use by process {os.getpid()}.*"
            r"lock file .*\.lock",
        ):
            folder_lock.acquire(out, second[0], run_id=second[1])
        # The refused run removed nothing of the owner's.
        assert os.path.isfile(folder_lock.lock_path(out, first[0]))


def test_lock_path_that_is_a_directory_is_refused_in_one_line(tmp_path):
    out = str(tmp_path)
    os.makedirs(folder_lock.lock_path(out))
    with pytest.raises(folder_lock.FolderBusy, match="is a directory"):
        folder_lock.acquire(out)
    with pytest.raises(folder_lock.FolderBusy, match="is a directory"):  # another member's
        folder_lock.acquire(out, "summary.shard-00000-of-00002", run_id="r")
    assert os.path.isdir(folder_lock.lock_path(out))


# A worker that imports folder_lock by its file (stdlib only: no JAX start-up), then for each
# line "DIR" on stdin tries to take DIR and answers "won" or "busy", and releases at "release".
_WORKER = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("folder_lock", sys.argv[1])
fl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fl)
print("ready", flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == "release":
        fl.release(held)
        print("released", flush=True)
        continue
    try:
        fl.acquire(line, log=lambda s: None)
        held = line
        print("won", flush=True)
    except fl.FolderBusy:
        held = None
        print("busy", flush=True)
"""


def test_two_processes_taking_over_one_stale_lock_make_exactly_one_owner(tmp_path):
    import subprocess
    import sys

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, folder_lock.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        assert [w.stdout.readline().strip() for w in workers] == ["ready", "ready"]
        winners = []
        for trial in range(200):
            out = str(tmp_path / f"t{trial}")
            # Left by a process that is gone: a pid above the kernel's limit; every third
            # trial an empty (unreadable) lock file, as a run killed while writing leaves.
            path = _plant(out, host=socket.gethostname(), pid=2**30, started="earlier")
            if trial % 3 == 2:
                open(path, "w").close()
            for w in workers:  # released together
                w.stdin.write(out + "\n")
                w.stdin.flush()
            said = [w.stdout.readline().strip() for w in workers]
            winners.append(said.count("won"))
            assert sorted(said) == ["busy", "won"], (trial, said)
            for w, s in zip(workers, said, strict=True):
                if s == "won":
                    w.stdin.write("release\n")
                    w.stdin.flush()
                    assert w.stdout.readline().strip() == "released"
        assert winners == [1] * 200
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=30)


def _plant(out, **owner):
    path = folder_lock.lock_path(out)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(owner, f)
    return path


def test_stale_lock_of_a_gone_process_is_taken_over(tmp_path):
    out = str(tmp_path)
    # A pid that cannot be running (above the kernel's pid limit).
    _plant(out, host=socket.gethostname(), pid=2**30, started="earlier")
    said = []
    folder_lock.acquire(out, log=said.append)
    assert "no longer running; taken over" in said[0]


def test_reused_pid_counts_as_gone(tmp_path):
    out = str(tmp_path)
    # Our own pid, but recorded with another start tick: a process that has since ended.
    tick = folder_lock._start_tick(os.getpid())
    if tick is None:
        pytest.skip("no /proc here")
    _plant(out, host=socket.gethostname(), pid=os.getpid(), start_tick=tick + 1)
    said = []
    folder_lock.acquire(out, log=said.append)
    assert said and "taken over" in said[0]


def test_lock_from_another_host_needs_take_over(tmp_path):
    out = str(tmp_path)
    _plant(out, host="elsewhere.invalid", pid=1, started="earlier")
    with pytest.raises(folder_lock.FolderBusy, match="--take_over_lock"):
        folder_lock.acquire(out)
    said = []
    folder_lock.acquire(out, take_over=True, log=said.append)
    assert "taken over as asked" in said[0]


def test_live_local_process_is_never_overruled(tmp_path):
    out = str(tmp_path)
    _plant(out, host=socket.gethostname(), pid=os.getppid())  # the parent runs
    with pytest.raises(folder_lock.FolderBusy, match="wait for it"):
        folder_lock.acquire(out, take_over=True)
