"""One trainer per run folder.

Two trainers writing one folder interleave their logs and overwrite each other's checkpoints, and both
report success. `RunLock` is an exclusive `flock` on RUN/.lock, taken before anything in the folder is
read: the operating system releases it when its holder exits in any way, kill -9 and power loss
included, so a crashed run never leaves a folder locked. The file itself stays (deleting a lock file
races with the next process opening it) and says who holds it, for the refusal message.

Where the filesystem has no such locks (Windows; some network filesystems) the run goes on unguarded,
and says so.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..utils.files import O_NOFOLLOW

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"

#: Lock descriptors held by this process. A forked child (a data worker) would otherwise keep its copy
#: open, and with it the lock, for a few seconds after a killed trainer: long enough to refuse a resume.
_held: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_held):
        try:
            os.close(fd)  # closing a copy does not unlock: the parent's descriptor still holds it
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


class RunInUse(UserError):
    """Another process is training in this run folder."""


class RunLock:
    """`with RunLock(run_dir) as lock:` holds RUN/.lock from `acquire()` until the block ends.

    `acquire()` does nothing while the folder does not exist (no other trainer can be using it), so it
    is called again once the folder has been made; it raises `RunInUse` naming the holder.
    """

    def __init__(self, run_dir: str | Path, notify: Callable[[str], None] | None = None):
        self.path = Path(run_dir) / LOCK_FILE
        self.notify = notify
        self._fd: int | None = None
        self._unsupported = False

    def acquire(self) -> None:
        if self._fd is not None or self._unsupported or not self.path.parent.is_dir():
            return
        if fcntl is None:
            return self._unguarded("this platform has no file locks")
        try:
            # Never through a link: a .lock linked to another file would have that file truncated and
            # overwritten with the holder's name.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK) or self.path.is_symlink():  # EMLINK: FreeBSD's ELOOP
                raise UserError(
                    f"{self.path} is a symbolic link (to {os.readlink(self.path)}), not a lock file: a run "
                    "folder's files are never written through links; remove it and start again"
                ) from None
            return  # an unwritable folder: creating the run folder reports it
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{self.path} is not a regular file: remove it and start again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunInUse(
                    f"{self.path.parent} is in use by another training process ({holder}; lock file "
                    f"{self.path}): wait for it to finish or stop it, or choose another `run_dir`"
                ) from None
            return self._unguarded(f"its filesystem does not support locks ({exc.strerror or exc})")
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        try:  # only a note for the refusal message: the lock holds without it (a full disk cannot take it)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode())
        except OSError:
            pass
        self._fd = fd
        _held.add(fd)

    def release(self) -> None:
        if self._fd is not None:
            _held.discard(self._fd)
            os.close(self._fd)  # releases the lock
            self._fd = None

    def _unguarded(self, why: str) -> None:
        self._unsupported = True
        if self.notify is not None:
            self.notify(f"cannot lock {self.path.parent} ({why}): make sure no other trainer uses it")

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not yet said which"
