"""Readers for the published data files and builders of each named dataset.

Deviations from the Showdown's code, all deliberate:

- covertype: the Showdown read ``covtype.data`` with a header row and so silently dropped the
  first data row; all 581,012 rows are kept here. Labels are ``class - 1`` (the Showdown used
  category codes, which shift when a class is absent from a subsample).
- adult: ``adult.test`` labels end in '.', which the Showdown's one-hot treated as two extra
  income categories (its d = 94); the '.' is stripped here, giving d = 92.
- adult, census: one-hot categories come from the whole table, not from the subsample, so d
  does not depend on n (census: every category present in the file).
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np

from .data import MissingDataError, data_dir, data_path
from .tabular import ArraysProblem, ClassificationProblem, FinancialProblem, MushroomProblem

__all__ = [
    "load_adult",
    "load_arrays",
    "load_census",
    "load_covertype",
    "load_financial",
    "load_jester",
    "load_mushroom",
    "load_statlog",
    "read_npz",
]

PathLike = str | os.PathLike | None


def _codes(column: np.ndarray) -> np.ndarray:
    """Integer codes of a column's values, in sorted order of the distinct values."""
    return np.unique(column, return_inverse=True)[1].reshape(-1)


def _bad_file(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path} is not in the expected format: {problem}")


# ----------------------------------------------------------------------------- mushroom
def read_mushroom(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """agaricus-lepiota.data: 23 one-letter columns, class ('e'/'p') first."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or any(len(r) != 23 for r in rows):
        raise _bad_file(path, "every row needs 23 comma-separated one-letter columns")
    table = np.array(rows)
    if not set(np.unique(table[:, 0])) <= {"e", "p"}:
        raise _bad_file(path, "column 0 must be the class, 'e' or 'p'")
    codes = np.stack([_codes(table[:, c]) for c in range(1, 23)], axis=1)
    return codes, table[:, 0] == "e"


def load_mushroom(
    data_dir: PathLike = None,
    download: bool = True,
    *,
    r_noeat: float = 0.0,
    r_eat_safe: float = 5.0,
    r_eat_poison_bad: float = -35.0,
    r_eat_poison_good: float = 5.0,
    prob_poison_bad: float = 0.5,
) -> MushroomProblem:
    path = data_path("mushroom", "agaricus-lepiota.data", data_dir, download=download)
    codes, edible = read_mushroom(path)
    return MushroomProblem(
        codes,
        edible,
        r_noeat=r_noeat,
        r_eat_safe=r_eat_safe,
        r_eat_poison_bad=r_eat_poison_bad,
        r_eat_poison_good=r_eat_poison_good,
        prob_poison_bad=prob_poison_bad,
    )


# ----------------------------------------------------------------------------- statlog
def read_statlog(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """shuttle.trn: space-separated integers, 9 features then the class 1-7."""
    table = np.loadtxt(path, ndmin=2)
    if table.shape[1] != 10:
        raise _bad_file(path, f"expected 10 columns (9 features + class), got {table.shape[1]}")
    labels = table[:, -1].astype(np.int64) - 1
    if labels.min() < 0 or labels.max() > 6:
        raise _bad_file(path, "the class column must hold 1..7")
    return table[:, :-1], labels


def load_statlog(data_dir: PathLike = None, download: bool = True) -> ClassificationProblem:
    x, y = read_statlog(data_path("statlog", "shuttle.trn", data_dir, download=download))
    return ClassificationProblem(x, y, num_actions=7, name="statlog")


# ----------------------------------------------------------------------------- covertype
def read_covertype(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """covtype.data(.gz): comma-separated, 54 features then the class 1-7, no header."""
    table = np.loadtxt(path, delimiter=",", ndmin=2)  # reads .gz transparently
    if table.shape[1] != 55:
        raise _bad_file(path, f"expected 55 columns (54 features + class), got {table.shape[1]}")
    labels = table[:, -1].astype(np.int64) - 1
    if labels.min() < 0 or labels.max() > 6:
        raise _bad_file(path, "the class column must hold 1..7")
    return table[:, :-1], labels


def load_covertype(data_dir: PathLike = None, download: bool = True) -> ClassificationProblem:
    plain = data_dir_path(data_dir, "covertype", "covtype.data")
    path = (
        plain
        if plain.exists()
        else data_path("covertype", "covtype.data.gz", data_dir, download=download)
    )
    x, y = read_covertype(path)
    return ClassificationProblem(x, y, num_actions=7, default_horizon=150_000, name="covertype")


def data_dir_path(data_dir_arg: PathLike, dataset: str, name: str) -> Path:
    return data_dir(data_dir_arg) / dataset / name


# ----------------------------------------------------------------------------- adult
ADULT_CATEGORICAL = [1, 3, 5, 7, 8, 9, 13, 14]  # workclass ... native-country, income
ADULT_LABEL = 6  # occupation


def read_adult(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """adult.data + adult.test: 15 comma-plus-space separated columns, '?' = missing;
    adult.test starts with a '|1x3 Cross validator' line and its labels end in '.'."""
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("|"):
                    continue
                row = [v.strip() for v in line.split(",")]
                if len(row) != 15:
                    raise _bad_file(path, f"expected 15 columns, got {len(row)}: {line[:60]!r}")
                if "?" not in row:
                    row[14] = row[14].rstrip(".")
                    rows.append(row)
    if not rows:
        raise _bad_file(paths[0], "no complete rows")
    table = np.array(rows)
    labels = _codes(table[:, ADULT_LABEL])
    kept = [c for c in range(15) if c != ADULT_LABEL]
    columns = [
        _codes(table[:, c]) if c in ADULT_CATEGORICAL else table[:, c].astype(float) for c in kept
    ]
    categorical = [i for i, c in enumerate(kept) if c in ADULT_CATEGORICAL]
    return np.stack(columns, axis=1).astype(np.float64), labels, categorical


def load_adult(data_dir: PathLike = None, download: bool = True) -> ClassificationProblem:
    paths = [
        data_path("adult", n, data_dir, download=download) for n in ("adult.data", "adult.test")
    ]
    x, y, categorical = read_adult(paths)
    return ClassificationProblem(x, y, num_actions=14, categorical=categorical, name="adult")


# ----------------------------------------------------------------------------- census
def read_census(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """USCensus1990.data.txt: a header row, then comma-separated integers; 'caseid' is a key,
    'dOccup' the label. Every other column is categorical. Parsed once and cached next to the
    file as ``<name>.codes.npz`` (written atomically), since the real file has 2.46 M rows."""
    cache = path.with_name(path.name + ".codes.npz")
    stamp = np.array([path.stat().st_size, path.stat().st_mtime_ns])
    if cache.exists():
        try:
            with np.load(cache) as z:
                if np.array_equal(z["stamp"], stamp):
                    return z["codes"], z["labels"]
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile):
            pass  # a broken cache is rebuilt from the data file below
    with open(path) as f:
        header = f.readline().strip().split(",")
    if "dOccup" not in header or "caseid" not in header:
        raise _bad_file(path, "the header must name the columns 'caseid' and 'dOccup'")
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    if table.shape[1] != len(header):
        raise _bad_file(path, f"{table.shape[1]} columns in the rows, {len(header)} in the header")
    features = [c for c, name in enumerate(header) if name not in ("caseid", "dOccup")]
    codes = np.stack([_codes(table[:, c]) for c in features], axis=1).astype(np.int16)
    labels = _codes(table[:, header.index("dOccup")])
    tmp = cache.with_name(cache.name + ".part.npz")
    np.savez(tmp, codes=codes, labels=labels, stamp=stamp)
    os.replace(tmp, cache)
    return codes, labels


def load_census(data_dir: PathLike = None, download: bool = True) -> ClassificationProblem:
    codes, y = read_census(
        data_path("census", "USCensus1990.data.txt", data_dir, download=download)
    )
    return ClassificationProblem(
        codes,
        y,
        num_actions=9,
        categorical=range(codes.shape[1]),
        default_horizon=150_000,
        name="census",
    )


# ----------------------------------------------------------------------------- npz matrices
OPTIONAL_KEYS = ("opt_rewards", "opt_actions", "expected_rewards")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A Showdown-format matrix: ``contexts`` [n, d], ``rewards`` [n, k] and optionally
    ``opt_rewards`` [n], ``opt_actions`` [n], ``expected_rewards`` [n, k]."""
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"npz file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise _bad_file(path, f"not a readable .npz without pickles ({err})") from None
    missing = [k for k in ("contexts", "rewards") if k not in arrays]
    if missing:
        raise _bad_file(path, f"missing arrays {missing}; it has {sorted(arrays)}")
    n, k = arrays["rewards"].shape if arrays["rewards"].ndim == 2 else (-1, -1)
    shapes = {
        "contexts": (n, None),
        "rewards": (n, k),
        "opt_rewards": (n,),
        "opt_actions": (n,),
        "expected_rewards": (n, k),
    }
    for key, value in arrays.items():
        want = shapes.get(key)
        if want is None:
            continue
        ok = value.ndim == len(want) and all(
            w is None or s == w for s, w in zip(value.shape, want, strict=False)
        )
        if n < 1 or not ok:
            raise _bad_file(path, f"{key} has shape {value.shape}; expected {want} (None = any)")
        if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
            raise _bad_file(path, f"{key} must be finite numbers, got dtype {value.dtype}")
    return arrays


def load_arrays(
    path: str | os.PathLike, *, shuffle_columns: bool = False, name: str = "arrays"
) -> ArraysProblem:
    arrays = read_npz(path)
    return ArraysProblem(
        arrays["contexts"],
        arrays["rewards"],
        arrays.get("expected_rewards"),
        shuffle_columns=shuffle_columns,
        name=name,
    )


def load_financial(data_dir: PathLike = None, download: bool = True, *, stored: bool = False):
    """Financial: by default the Showdown's protocol on the stored contexts (beta and noise
    redrawn per trial, exact regret). ``stored=True`` replays the stored reward matrix
    instead (its one noisy draw treated as deterministic)."""
    path = data_path("financial", "financial.npz", data_dir, download=download)
    if stored:
        return load_arrays(path, name="financial")
    return FinancialProblem(read_npz(path)["contexts"])


def load_jester(
    data_dir: PathLike = None, download: bool = True, *, shuffle_columns: bool = False
) -> ArraysProblem:
    """Jester, 5,000-user subsample: ratings are deterministic rewards. The context/arm split is
    fixed by default (report as 'fixed split'); ``shuffle_columns=True`` reshuffles the 40
    joke columns per trial as the Showdown did on the full data."""
    path = data_path("jester", "jester.npz", data_dir, download=download)
    return load_arrays(path, shuffle_columns=shuffle_columns, name="jester")
