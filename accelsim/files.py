"""Files that survive interrupts: atomic writes, and one writer per output folder.

Every file accelsim writes goes through :func:`atomic_path` (or the helpers on top of it): the
bytes are written to a hidden temporary file beside the target, flushed to disk and renamed over
the target, so a reader (or a resumed run) sees the old file or the complete new one, never a
part. An interrupt (Ctrl-C, ``kill -9``) leaves at most a ``.NAME.PID.tmp`` file, which the next
writer of that target removes.

:class:`OutputLock` makes an output folder single-writer: a second process that asks for it is
refused with a message naming the process that holds it. The lock is an ``flock`` on
``FOLDER/.accelsim.lock``, which the kernel drops when its process dies, so a lock left by a
killed process is simply taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from accelsim.errors import AccelsimError

try:
    import fcntl
except ImportError:  # not POSIX: no folder locks (atomic writes still hold)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".accelsim.lock"


def beside(stem: Path | str, extension: str) -> Path:
    """``stem`` with ``extension`` appended to its whole name: unlike ``Path.with_suffix``, a
    dot already in the name (a threshold ``T0.86875``, a model ``net.v2``) is kept, so two
    stems that differ after their last dot never share a file."""
    stem = Path(stem)
    return stem.with_name(stem.name + extension)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_leftovers(path: Path) -> None:
    """Remove temporary files that interrupted writers of ``path`` left (dead processes only)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp*"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path to write; renamed over ``path`` when the block ends without an error,
    removed otherwise. The parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_text(path: Path | str, *, newline: str | None = None) -> Iterator:
    """An open text file (UTF-8) whose content replaces ``path`` when the block ends cleanly."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as fh:
        yield fh


_HELD: list[int] = []  # lock file descriptors this process holds
_DEPTH: dict[Path, int] = {}  # lock file -> nested holds of it by this process


def _close_in_child() -> None:
    """A forked child must not keep its parent's folder locks alive after the parent dies."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
    _DEPTH.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class OutputLock:
    """Exclusive use of an output folder by this process, as a context manager.

    Refused (:class:`AccelsimError`) while another live process holds the folder; a lock whose
    process died is taken over. A process that holds the folder may take it again (a library
    call inside a command that holds it already): the lock goes with the outermost release."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._nested: Path | None = None

    def acquire(self) -> OutputLock:
        if fcntl is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if key in _DEPTH:
            _DEPTH[key] += 1
            self._nested = key
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise AccelsimError(
                f"{self.folder}: another accelsim process is writing this folder ({holder}); "
                "wait for it to finish, stop it, or choose another output folder"
            ) from None
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}: {command}\n"
                  .encode(), 0)  # fmt: skip
        self._fd = fd
        _HELD.append(fd)
        _DEPTH[key] = 0
        return self

    def release(self) -> None:
        if self._nested is not None:
            _DEPTH[self._nested] -= 1
            self._nested = None
            return
        if self._fd is None:
            return
        _DEPTH.pop(self.path.resolve(), None)
        fd, self._fd = self._fd, None
        if fd in _HELD:
            _HELD.remove(fd)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "a process that has not yet said who it is"
