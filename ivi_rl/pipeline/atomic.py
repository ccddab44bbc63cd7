"""Atomic writes: a temp file in the target's folder, then an ``os.replace``. A reader (or a
resumed run) never sees a half-written result. :func:`read_existing_npz` reads them back."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "fingerprint_of",
    "npz_bytes",
    "read_existing_npz",
    "write_bytes",
    "write_npz",
    "write_text",
]

_UMASK = os.umask(0)
os.umask(_UMASK)


def fingerprint_of(*parts: object) -> str:
    """A hash of everything that determines a stored result (JSON of ``parts``)."""
    key = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; results are shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """The bytes of an ``.npz`` file holding ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    write_bytes(path, npz_bytes(**arrays))


def read_existing_npz(paths: Iterable[Path]) -> list[dict[str, np.ndarray]]:
    """The arrays of every file of ``paths`` that exists (finished runs), in order."""
    found = []
    for path in paths:
        if path.exists():
            with np.load(path) as z:
                found.append({k: z[k] for k in z.files})
    return found
