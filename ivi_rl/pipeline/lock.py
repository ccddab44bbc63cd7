"""One run per output folder: ``output_lock(out)`` checks that ``out`` is a folder this user
can write, and holds an exclusive lock on ``out/.lock`` for the run. A second run on the same
folder is refused with a message naming the first; the operating system releases the lock
when the holder exits, even on kill -9, so a crash never leaves a stale lock."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError

__all__ = ["output_lock", "writable_folder"]


def writable_folder(out: str | Path) -> Path:
    """``out`` as a folder that exists (created if needed) and is writable, or ConfigError."""
    if str(out).strip() == "":
        raise ConfigError("--out/out='' is not accepted; accepted: a folder path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out={str(path)!r} is a file; accepted: a folder (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"out={str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"out={str(path)!r} is not writable by this user")
    return path


@contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``out`` for one run (see the module docstring); yields the folder."""
    path = writable_folder(out)
    handle = open(path / ".lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise ConfigError(
                f"out={str(path)!r} is in use by another run ({owner}); wait for it to end "
                "or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing releases the lock
