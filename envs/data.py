"""Where benchmark data files live, how they are checked, and how missing ones are fetched.

One data directory: the ``data_dir`` argument, else the ``IVI_RL_DATA`` environment variable,
else the user's cache directory (``$XDG_CACHE_HOME/ivi_rl`` or ``~/.cache/ivi_rl``). A file lives
at ``<data dir>/<dataset>/<canonical file name>``, the layout of the project's shared data.
Files with a known sha256 are verified on every load. A missing file is downloaded from its
canonical public source when the network allows (written atomically, verified before it is
moved into place); otherwise the error names the file, the source and the directory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._lzw import decompress_z

__all__ = [
    "FILES",
    "ChecksumError",
    "DataFile",
    "MissingDataError",
    "data_dir",
    "data_path",
    "sha256_of",
]

ENV_VAR = "IVI_RL_DATA"
UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
SHOWDOWN_BUCKET = "https://storage.googleapis.com/bandits_datasets"


class MissingDataError(FileNotFoundError):
    """A data file is absent and could not be downloaded."""


class ChecksumError(ValueError):
    """A data file's sha256 differs from the canonical one."""


@dataclass(frozen=True)
class DataFile:
    """A canonical data file: where it lives, how to check it, where it comes from."""

    dataset: str
    name: str
    sha256: str | None = None
    url: str | None = None
    """Download source; None when no public copy of this exact file exists."""
    compression: str | None = None
    """'Z' (unix compress) or 'gz' when ``url`` serves a compressed copy."""
    source: str = ""
    """Human-readable provenance for error messages."""


FILES: dict[tuple[str, str], DataFile] = {
    (f.dataset, f.name): f
    for f in [
        DataFile(
            "mushroom",
            "agaricus-lepiota.data",
            "e65d082030501a3ebcbcd7c9f7c71aa9d28fdfff463bf4cf4716a3fe13ac360e",
            f"{UCI}/mushroom/agaricus-lepiota.data",
            source="UCI Machine Learning Repository, Mushroom",
        ),
        DataFile(
            "statlog",
            "shuttle.trn",
            "87b24ee9fb5137e1d417659cf905d84d0e15342bbaa60770f1ae83da1a38200a",
            f"{UCI}/statlog/shuttle/shuttle.trn.Z",
            "Z",
            "UCI Machine Learning Repository, Statlog (Shuttle)",
        ),
        DataFile(
            "covertype",
            "covtype.data.gz",
            url=f"{UCI}/covtype/covtype.data.gz",
            source="UCI Machine Learning Repository, Covertype",
        ),
        DataFile(
            "adult",
            "adult.data",
            url=f"{UCI}/adult/adult.data",
            source="UCI Machine Learning Repository, Adult",
        ),
        DataFile(
            "adult",
            "adult.test",
            url=f"{UCI}/adult/adult.test",
            source="UCI Machine Learning Repository, Adult",
        ),
        DataFile(
            "census",
            "USCensus1990.data.txt",
            url=f"{UCI}/census1990-mld/USCensus1990.data.txt",
            source="UCI Machine Learning Repository, US Census Data (1990)",
        ),
        DataFile(
            "financial",
            "financial.npz",
            "bca737f2b17af2513ed91cc5fee4015ae73d0160b7c10246fc8bcaa90064dad1",
            source=(
                "the Showdown's financial matrix as npz (contexts, rewards, opt_rewards, "
                "opt_actions), converted from probml/probml-data data/financial-bandit-data.pkl; "
                f"the raw contexts are also at {SHOWDOWN_BUCKET}/raw_stock_contexts"
            ),
        ),
        DataFile(
            "jester",
            "jester.npz",
            "f57a97082be1093ca6f091c6357011f87a44064f1e0ea8a7282603d93cb8995d",
            source=(
                "the Showdown's jester matrix (5,000-user subsample) as npz, converted from "
                "probml/probml-data data/jester-data.pkl; the full ratings are at "
                f"{SHOWDOWN_BUCKET}/jester_data_40jokes_19181users.npy"
            ),
        ),
    ]
}


def data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $IVI_RL_DATA, else the user cache directory."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir={data_dir!r} must be a path (str or os.PathLike)")
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ivi_rl"


def data_path(
    dataset: str,
    name: str,
    data_dir_arg: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> Path:
    """Path of a verified data file, downloading it first if it is missing and allowed."""
    spec = FILES.get((dataset, name), DataFile(dataset, name))
    path = data_dir(data_dir_arg) / dataset / name
    if not path.exists():
        if not download or spec.url is None:
            raise MissingDataError(_missing_message(spec, path, reason=None))
        try:
            _download(spec, path)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise MissingDataError(_missing_message(spec, path, reason=err)) from err
    _verify(spec, path)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(spec: DataFile, path: Path) -> None:
    if spec.sha256 is None:
        return
    got = sha256_of(path)
    if got != spec.sha256:
        raise ChecksumError(
            f"{path} has sha256 {got}, but the canonical {spec.name} has {spec.sha256}; "
            f"replace it with the file from {spec.url or spec.source}"
        )


def _download(spec: DataFile, path: Path, timeout: float = 60.0) -> None:
    """Fetch ``spec.url`` into ``path`` atomically (temp file in the same folder, then rename);
    a failed download leaves the data folder as it found it (no new empty dataset folder)."""
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if spec.compression == "Z":
            tmp.write_bytes(decompress_z(tmp.read_bytes()))
        elif spec.compression == "gz":
            tmp.write_bytes(gzip.decompress(tmp.read_bytes()))
        _verify(spec, tmp)  # never move a corrupt download into place
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        for folder in created:  # innermost first; only the folders this call made, if empty
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()


def _missing_message(spec: DataFile, path: Path, reason: Exception | None) -> str:
    where = f"put {spec.name} into {path.parent}"
    if spec.url is None:
        return (
            f"data file {path} is missing and has no public download; {where} "
            f"(source: {spec.source or 'your own data'}), or point data_dir / ${ENV_VAR} at "
            "the folder that holds it"
        )
    why = "downloads are off" if reason is None else f"the download failed ({reason})"
    return (
        f"data file {path} is missing and {why}; {where} from {spec.url} "
        f"({spec.source}), or point data_dir / ${ENV_VAR} at the folder that holds it"
    )
