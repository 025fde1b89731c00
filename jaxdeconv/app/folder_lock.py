"""One run at a time in an output folder: a lock file naming its owner.

``OUTPUT_DIR/.jaxdeconv/locks/NAME.lock`` (NAME: the run's summary name, so the processes of
one sharded run, which write distinct summary shards, each hold their own) is created
exclusively and holds the owner's host, process id, process start tick and start time. A
second run into the same folder is refused with :class:`FolderBusy`, naming that process.
A lock whose process is gone (same host: the pid no longer runs, or now belongs to a process
started later) is taken over with a message. A lock from another host cannot be checked from
here; ``take_over=True`` (the command's ``--take_over_lock``) takes it over, after the user has
made sure that run is finished; a live process on this host is never overruled.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator

LOCK_DIR = os.path.join(".jaxdeconv", "locks")
# A lock file still empty after this many seconds was left by a process killed while writing.
_EMPTY_GRACE_S = 10.0


class FolderBusy(ValueError):
    """Another run owns the output folder."""


def _start_tick(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


def _running(owner: dict) -> bool | None:
    """Whether the owner's process still runs: True/False on this host, None elsewhere."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    tick = owner.get("start_tick")
    return tick is None or _start_tick(pid) in (None, tick)


def _describe(owner: dict) -> str:
    return (
        f"process {owner.get('pid')} on {owner.get('host')} (started {owner.get('started')}: "
        f"{owner.get('command', '?')})"
    )


def lock_path(output_dir: str, name: str = "summary") -> str:
    return os.path.join(output_dir, LOCK_DIR, f"{name}.lock")


def _read(path: str) -> dict | None:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def acquire(
    output_dir: str,
    name: str = "summary",
    *,
    take_over: bool = False,
    log: Callable[[str], None] = print,
    command: str = "",
) -> dict:
    """Makes this process the owner of ``output_dir`` for the run ``name``; returns the
    owner record. Raises :class:`FolderBusy` when another live run owns it."""
    path = lock_path(output_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_tick": _start_tick(os.getpid()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read(path)
            if owner == {}:
                continue  # removed meanwhile: try again
            if owner is None:
                age = time.time() - os.path.getmtime(path)
                if age < _EMPTY_GRACE_S:
                    raise FolderBusy(
                        f"{output_dir}: another run is taking the folder ({path} is being "
                        "written); wait a moment or choose another --output_dir"
                    ) from None
                log(
                    f"{output_dir}: lock file {path} unreadable (a run killed while taking "
                    "it); taken over"
                )
            else:
                running = _running(owner)
                if running:
                    raise FolderBusy(
                        f"{output_dir}: in use by {_describe(owner)}; wait for it to finish "
                        "or choose another --output_dir"
                    ) from None
                if running is None and not take_over:
                    raise FolderBusy(
                        f"{output_dir}: in use by {_describe(owner)}, which cannot be checked "
                        "from this host; if that run is over, repeat with --take_over_lock"
                    ) from None
                why = "no longer running" if running is False else "taken over as asked"
                log(f"{output_dir}: lock of {_describe(owner)} {why}; taken over")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return me
    raise FolderBusy(f"{output_dir}: could not take the lock {path} (another run races for it)")


def release(output_dir: str, name: str = "summary") -> None:
    """Removes the lock if this process holds it."""
    path = lock_path(output_dir, name)
    owner = _read(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        # Leave no empty folders behind (a refused run leaves the output folder as it was).
        for folder in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


@contextlib.contextmanager
def owned(output_dir: str, name: str = "summary", **kwargs) -> Iterator[dict]:
    """``acquire`` on entry, ``release`` on exit (also on an exception)."""
    owner = acquire(output_dir, name, **kwargs)
    try:
        yield owner
    finally:
        release(output_dir, name)
