"""One run at a time in an output folder: kernel file locks held for the run's life.

Every process that works in ``OUTPUT_DIR`` holds an exclusive ``flock`` on its own member file
``OUTPUT_DIR/.jaxdeconv/locks/NAME.lock`` (NAME: the run's summary name, so the processes of one
sharded run, which write distinct summary shards, each hold their own) from the moment it joins
until it exits; the file records the owner (host, process id, start tick, start time, command)
and the run's identity. The kernel drops the lock when the process dies, however it dies, so a
crashed run leaves nothing that needs a timeout or a process-id guess.

Joining is one critical section, serialised by an exclusive ``flock`` on
``OUTPUT_DIR/.jaxdeconv/locks/gate``: look at every member file (a file whose lock can be taken
belongs to a process that is gone: it is removed); a live member of **another run** (another
identity: inputs, config, seed, shard count) or one with this process's own NAME refuses the
folder with :class:`FolderBusy`, naming the holder and its lock file; otherwise this process
creates and locks its member file and leaves the gate. Two processes that race therefore see
each other, and exactly one of two that take over a dead run's folder together wins it.

File systems: on a local file system (ext4, xfs, btrfs, tmpfs) ``flock`` is exact. On Linux
NFS clients ``flock`` is carried by NFS byte-range locks (NLM for NFSv3, the protocol's own for
NFSv4), so it also excludes processes on other hosts, and the server releases a dead client's
locks when its lease expires (NFSv4: about 90 s) -- unless the share is mounted with ``nolock``
or ``local_lock=flock``/``all``, where locks are local to each host. A member file written on
another host whose lock is free therefore is not trusted to be dead: ``take_over=True`` (the
command's ``--take_over_lock``) removes it once the user has made sure that run is over. A
member file of this host whose lock is free but whose process still runs (written by an older
jaxdeconv that held no kernel lock) is never overruled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator

LOCK_DIR = os.path.join(".jaxdeconv", "locks")
GATE = "gate"
# How long joining waits for another process's critical section (milliseconds of work).
_GATE_WAIT_S = 30.0

# Member files this process holds: path -> open file object (the flock lives with it).
_HELD: dict[str, object] = {}


class FolderBusy(ValueError):
    """Another run owns the output folder (or its lock cannot be taken)."""


def _start_tick(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


def pid_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (another user's counts)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return True


def _running(owner: dict) -> bool | None:
    """Whether the owner's process still runs: True/False on this host, None elsewhere."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not pid_running(pid):
        return False
    tick = owner.get("start_tick")
    return tick is None or _start_tick(pid) in (None, tick)


def _describe(owner: dict, path: str) -> str:
    started = owner.get("started") or "at an unknown time"
    command = owner.get("command") or "command not recorded"
    return (
        f"process {owner.get('pid', '?')} on {owner.get('host', '?')} (started {started}: "
        f"{command}; lock file {path})"
    )


def lock_path(output_dir: str, name: str = "summary") -> str:
    return os.path.join(output_dir, LOCK_DIR, f"{name}.lock")


def _read(path: str) -> dict | None:
    """The owner record in ``path``: {} when the file is gone, None when unreadable."""
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


def _open_regular(path: str, flags: int) -> int:
    """``os.open`` that refuses anything but a regular file (a directory, a FIFO, a link)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except IsADirectoryError:
        raise FolderBusy(
            f"lock path {path} is a directory, not a lock file; remove it if no run uses the "
            "folder, or choose another --output_dir"
        ) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FolderBusy(
                f"lock path {path} is a symbolic link; remove it or choose another --output_dir"
            ) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise FolderBusy(
            f"lock path {path} is {what}, not a lock file; remove it if no run uses the "
            "folder, or choose another --output_dir"
        )
    return fd


def _lock_nb(fd: int, path: str) -> bool:
    """Takes an exclusive flock on ``fd`` (open on ``path``) without waiting: True when taken."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise FolderBusy(
                f"{path}: the file system does not support file locks ({e.strerror}); choose an "
                "--output_dir on a local disk, or an NFS share mounted with locking"
            ) from None
        raise
    return True


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open on ``fd`` (not removed or replaced)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def _gate(folder: str) -> Iterator[None]:
    """The joining critical section: an exclusive flock on ``folder/gate``. The gate file may
    be removed by the last member leaving, so a lock taken on a file that is no longer the
    gate is dropped and taken again on the new one."""
    path = os.path.join(folder, GATE)
    deadline = time.monotonic() + _GATE_WAIT_S
    while True:
        fd = _open_regular(path, os.O_CREAT | os.O_RDWR)
        try:
            while not _lock_nb(fd, path):
                if time.monotonic() > deadline:
                    raise FolderBusy(
                        f"{path}: another process has held the lock gate for "
                        f"{_GATE_WAIT_S:.0f} s; try again, or remove the file if no jaxdeconv "
                        "process uses the folder"
                    )
                time.sleep(0.002)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # releases the flock


def _examine(path: str, run_id: str, name: str, take_over: bool, log, output_dir: str) -> None:
    """Looks at another member file under the gate: removes it when its process is gone;
    raises :class:`FolderBusy` when it belongs to a live run that may not share the folder."""
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        free = _lock_nb(fd, path)
        if free and not _same_file(fd, path):
            return  # released and removed by its owner meanwhile
        owner = _read(path) or {}
        member = os.path.basename(path)[: -len(".lock")]
        if not free:  # a live process holds it
            if owner.get("run_id") == run_id and run_id and member != name:
                return  # a fellow shard of this very run
            same = member == name and owner.get("run_id") == run_id
            raise FolderBusy(
                f"{output_dir}: in use by {_describe(owner, path)}"
                f"{', the same shard of this very run' if same else ''}; wait for it to "
                "finish or choose another --output_dir"
            )
        # Nobody holds the kernel lock.
        running = _running(owner) if owner else False
        if running:  # an older jaxdeconv that held no kernel lock, still at work
            raise FolderBusy(
                f"{output_dir}: in use by {_describe(owner, path)}; wait for it to finish or "
                "choose another --output_dir"
            )
        if running is None and not take_over:
            raise FolderBusy(
                f"{output_dir}: in use by {_describe(owner, path)}, a lock from another host "
                "that cannot be checked from here; if that run is over, repeat with "
                "--take_over_lock"
            )
        if owner:
            why = "no longer running" if running is False else "taken over as asked"
            log(f"{output_dir}: lock of {_describe(owner, path)} {why}; taken over")
        else:
            log(f"{output_dir}: lock file {path} left unreadable by a run that is gone; removed")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # still under our lock and the gate: nobody else can be using it
    finally:
        os.close(fd)


def acquire(
    output_dir: str,
    name: str = "summary",
    *,
    run_id: str = "",
    take_over: bool = False,
    log: Callable[[str], None] = print,
    command: str = "",
) -> dict:
    """Makes this process a member of ``output_dir`` for the run ``name``; returns the owner
    record. Processes with the same non-empty ``run_id`` (the shards of one run) and distinct
    names share the folder; any other live member raises :class:`FolderBusy`."""
    path = lock_path(output_dir, name)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise FolderBusy(f"{folder} exists and is not a folder; remove it") from None
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_tick": _start_tick(os.getpid()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "run_id": run_id,
    }
    with _gate(folder):
        for member in sorted(glob.glob(os.path.join(glob.escape(folder), "*.lock"))):
            _examine(member, run_id, name, take_over, log, output_dir)
        fd = _open_regular(path, os.O_CREAT | os.O_EXCL | os.O_RDWR)
        if not _lock_nb(fd, path):  # cannot happen under the gate; refuse rather than share
            os.close(fd)
            raise FolderBusy(f"{output_dir}: could not lock {path}")
        f = os.fdopen(fd, "w")
        json.dump(me, f)
        f.flush()
        _HELD[path] = f
    return me


def release(output_dir: str, name: str = "summary") -> None:
    """Removes this process's member file and drops its lock."""
    path = lock_path(output_dir, name)
    f = _HELD.pop(path, None)
    if f is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)  # before the lock drops: a newcomer never sees a free, stale file
    f.close()
    # Leave no empty folders behind (a refused run leaves the output folder as it was).
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        with _gate(folder):
            if not glob.glob(os.path.join(glob.escape(folder), "*.lock")):
                os.remove(os.path.join(folder, GATE))
    for d in (folder, os.path.dirname(folder)):
        with contextlib.suppress(OSError):
            os.rmdir(d)


@contextlib.contextmanager
def owned(output_dir: str, name: str = "summary", **kwargs) -> Iterator[dict]:
    """``acquire`` on entry, ``release`` on exit (also on an exception)."""
    owner = acquire(output_dir, name, **kwargs)
    try:
        yield owner
    finally:
        release(output_dir, name)
