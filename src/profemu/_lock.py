"""One writer per folder: the lock file ``<folder>/.profemu.lock``.

``profemu train``, ``merge`` and ``sweep`` hold the lock of their output folder for as
long as they write into it, so that two processes never write the same run folder::

    with folder_lock(run, what="--out"):
        ...  # check the folder, then write it

The lock file is created with ``O_CREAT | O_EXCL`` (atomic on every local and NFSv3+
file system) and holds the owner's pid, host name, start time and command line, as JSON.
A second process finds the file and is refused with a one-line
:class:`~profemu.errors.FolderLockedError` naming the owner. A *stale* lock — written on
this host by a process that is no longer alive (or whose pid now belongs to a process
started after the lock) — is taken over, with a warning in the log. A lock from another
host is never taken over: only a person can tell whether that process still runs.

The lock is re-entrant within a process (``profemu train`` holds it and calls
:func:`profemu.runs.training.train_emulator`, which takes it again), and it is removed when
the outermost holder leaves; a folder the lock created and that is still empty then is
removed as well, so a command refused early leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import inspect
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from profemu._files import file_error
from profemu.errors import FolderLockedError

__all__ = ["LOCK_NAME", "LockOwner", "folder_lock", "held_here", "locked", "read_owner"]

F = TypeVar("F", bound=Callable[..., Any])

#: Name of the lock file inside the locked folder.
LOCK_NAME = ".profemu.lock"
_TAKEOVER = ".profemu.lock.takeover"
_READ_TRIES = 20  # a lock file read while its owner is still writing it: retry for ~1 s

logger = logging.getLogger(__name__)

_HELD: dict[str, int] = {}  # lock path -> nesting depth, for this process
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock (the content of the lock file).

    Attributes:
        pid: Process id of the owner.
        host: Host name of the owner.
        started: When the lock was taken [Unix time, s].
        command: The owner's command line (for messages).
    """

    pid: int
    host: str
    started: float
    command: str

    def describe(self) -> str:
        """``pid 123 on host h (profemu train ..., since 2024-05-01 12:00:00)``."""
        since = _dt.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on host {self.host} ({self.command or 'profemu'}, since {since})"


def _command_line() -> str:
    args = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    text = " ".join(args)
    return text if len(text) <= 120 else text[:117] + "..."


def _me() -> LockOwner:
    return LockOwner(pid=os.getpid(), host=socket.gethostname(), started=time.time(), command=_command_line())


def read_owner(lock: Path) -> LockOwner | None:
    """The owner recorded in the lock file ``lock``; None when the file is absent.

    Raises:
        FolderLockedError: the file exists but is not a lock record (after retrying for
            about a second, in case its owner is still writing it).
    """
    for attempt in range(_READ_TRIES):
        try:
            raw = lock.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise file_error(lock, exc, "read") from None
        try:
            data = json.loads(raw)
            return LockOwner(pid=int(data["pid"]), host=str(data["host"]), started=float(data["started"]),
                             command=str(data.get("command", "")))
        except (ValueError, KeyError, TypeError):
            if attempt + 1 < _READ_TRIES:
                time.sleep(0.05)
    raise FolderLockedError(
        f"{str(lock)!r}: a lock file that is not a profemu lock record; if no profemu process uses "
        f"{str(lock.parent)!r}, delete {str(lock)!r} and run again."
    )


def _process_start(pid: int) -> float | None:
    """Start time [Unix time] of a local process (Linux ``/proc``); None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(owner: LockOwner) -> bool:
    """Whether the owner may still run (True whenever that cannot be ruled out)."""
    if owner.host != socket.gethostname():
        return True
    if owner.pid == os.getpid():
        return False  # this process, which does not hold it (see folder_lock): left over
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a process of another user: alive
    except OSError:
        return True
    start = _process_start(owner.pid)
    # the pid was reused by a process started after the lock was taken (2 s of clock slack)
    return start is None or start <= owner.started + 2.0


def _create(lock: Path, owner: LockOwner) -> bool:
    """Create ``lock`` holding ``owner`` with O_EXCL; False when it exists already."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise file_error(lock, exc, "create the lock file") from None
    try:
        record = {"pid": owner.pid, "host": owner.host, "started": owner.started, "command": owner.command}
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        lock.unlink(missing_ok=True)
        raise file_error(lock, exc, "write the lock file") from None
    os.close(fd)
    return True


def _take_over(lock: Path, stale: LockOwner, me: LockOwner) -> bool:
    """Replace the stale lock of ``stale`` by ours; False when another process was quicker.

    A second lock (``.profemu.lock.takeover``, also O_EXCL) makes the check-and-replace
    one step, so two processes that find the same stale lock never both win.
    """
    guard = lock.with_name(_TAKEOVER)
    if not _create(guard, me):
        holder = read_owner(guard)
        if holder is not None and not _alive(holder):
            guard.unlink(missing_ok=True)  # a takeover that was itself killed
        return False
    try:
        current = read_owner(lock)
        if current is not None and current != stale:
            return False  # someone else took it over meanwhile
        lock.unlink(missing_ok=True)
        return _create(lock, me)
    finally:
        guard.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, what: str = "folder", create: bool = True) -> Iterator[Path]:
    """Hold ``folder/.profemu.lock`` for the duration of the ``with`` block.

    Args:
        folder: The folder to lock (created with its parents when absent).
        what: How the user named the folder, for the message (e.g. ``"--out"``).
        create: Create a missing folder; with False a missing folder is not locked
            (there is nothing to protect; the block reports it).

    Yields:
        The folder.

    Raises:
        FolderLockedError: another live process holds the lock (the message names its
            pid, host, command and start time, and what to do).
        DataError: the lock file cannot be created (permissions, read-only disk).
    """
    path = Path(folder)
    created = not path.exists()
    if created and not create:
        yield path
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_error(path, exc, "create the folder") from None
    lock = path / LOCK_NAME
    key = str(lock.resolve())
    with _HELD_GUARD:
        if _HELD.get(key):
            _HELD[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield path
        finally:
            with _HELD_GUARD:
                _HELD[key] -= 1
        return
    _acquire(lock, what)
    with _HELD_GUARD:
        _HELD[key] = 1
    try:
        yield path
    finally:
        with _HELD_GUARD:
            _HELD.pop(key, None)
        _release(lock)
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds when nothing was written


def _acquire(lock: Path, what: str) -> None:
    me = _me()
    for _ in range(5):
        if _create(lock, me):
            return
        owner = read_owner(lock)
        if owner is None:
            continue  # released meanwhile: try again
        if _alive(owner):
            raise FolderLockedError(
                f"{what} {str(lock.parent)!r} is in use by another profemu process, {owner.describe()}; "
                f"wait for it to finish or choose another folder (if that process is gone, delete "
                f"{str(lock)!r})."
            )
        if _take_over(lock, owner, me):
            logger.warning("%s: took over the stale lock of %s, which is no longer running", lock,
                           owner.describe())
            return
        time.sleep(0.05)
    owner = read_owner(lock)
    raise FolderLockedError(
        f"{what} {str(lock.parent)!r}: could not take the lock {str(lock)!r}"
        + (f" (held by {owner.describe()})" if owner else "")
        + "; another process keeps taking it: wait for it to finish or choose another folder."
    )


def _release(lock: Path) -> None:
    """Remove the lock file when it is still ours."""
    try:
        owner = read_owner(lock)
    except FolderLockedError:
        return
    if owner is not None and owner.pid == os.getpid() and owner.host == socket.gethostname():
        try:
            lock.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                logger.warning("%s: could not remove the lock file (%s)", lock, exc.strerror or exc)


def held_here(folder: str | Path) -> bool:
    """Whether this process holds the lock of ``folder``."""
    key = str((Path(folder) / LOCK_NAME).resolve())
    with _HELD_GUARD:
        return bool(_HELD.get(key))


def locked(param: str, *, what: str = "run folder", create: bool = True) -> Callable[[F], F]:
    """Decorate a function so that it holds the lock of its folder argument ``param``.

    The lock is taken only when that argument is given (not None) and this process does
    not hold it already; see :func:`folder_lock`.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            folder = signature.bind_partial(*args, **kwargs).arguments.get(param)
            if folder is None or held_here(folder):
                return fn(*args, **kwargs)
            with folder_lock(folder, what=what, create=create):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
