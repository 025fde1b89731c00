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
    # One lock per run name: the shards of one run do not exclude each other.
    with folder_lock.owned(out, "summary.shard-00000-of-00002"):
        with folder_lock.owned(out, "summary.shard-00001-of-00002"):
            pass


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
