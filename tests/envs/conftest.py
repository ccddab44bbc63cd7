"""Fixtures for env tests: tiny files written in the exact published formats for the datasets that are not shared (adult, covertype, census)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

ADULT_DATA = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40, United-States, <=50K
54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K
"""
ADULT_TEST = """\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, United-States, >50K.
18, ?, 103497, Some-college, 10, Never-married, ?, Own-child, White, Female, 0, 0, 30, United-States, <=50K.

"""
CENSUS = """\
caseid,dAge,dAncstry1,iSex,dOccup,iYearsch
10000,5,0,1,3,11
10001,6,1,1,0,5
10002,3,1,0,3,11
10003,4,2,0,8,14
"""


@pytest.fixture
def format_files(tmp_path: Path) -> Path:
    """A data dir holding adult, covertype (plain and .gz) and census in published formats."""
    (tmp_path / "adult").mkdir()
    (tmp_path / "adult" / "adult.data").write_text(ADULT_DATA)
    (tmp_path / "adult" / "adult.test").write_text(ADULT_TEST)
    rng = np.random.RandomState(0)
    rows = []
    for label in [1, 2, 3, 4, 5, 6, 7, 2, 2, 5]:
        quantitative = rng.randint(0, 3000, size=10)
        wilderness = np.eye(4, dtype=int)[rng.randint(4)]
        soil = np.eye(40, dtype=int)[rng.randint(40)]
        rows.append(",".join(map(str, [*quantitative, *wilderness, *soil, label])))
    (tmp_path / "covertype").mkdir()
    with gzip.open(tmp_path / "covertype" / "covtype.data.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    (tmp_path / "census").mkdir()
    (tmp_path / "census" / "USCensus1990.data.txt").write_text(CENSUS)
    return tmp_path
