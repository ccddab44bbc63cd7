"""The per-run treasure table of a Deep Sea sweep."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.deep_sea_runs import main, rows, treasure_facts


def test_treasure_facts_count_first_gap_and_tail():
    found = np.zeros(3000)
    found[[9, 10, 500]] = 1  # treasures at episodes 10, 11 and 501 (1-based)
    assert treasure_facts(np.cumsum(found)) == dict(first=10, treasures=3, gap=489, last=0)
    found[2999] = 1
    assert treasure_facts(np.cumsum(found)) == dict(first=10, treasures=4, gap=2498, last=1)
    assert treasure_facts(np.zeros(5)) == dict(first=0, treasures=0, gap=0, last=0)


def _write(folder, label, size, seed, found, solved):
    path = folder / "results" / label / "ivi_dqn" / f"seed_{seed}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    denoised = np.cumsum(np.asarray(found, dtype=float))
    np.savez(path, denoised=denoised, solved=solved, size=size, seed=seed)


def test_rows_per_run_sorted_by_sweep_size_and_seed(tmp_path, capsys):
    _write(tmp_path, "deep_sea_12", 12, 1, [0, 1, 1], 3)
    _write(tmp_path, "deep_sea_10", 10, 0, [0] * 4, -1)
    _write(tmp_path, "cartpole", -1, 0, [], -1)  # not Deep Sea: left out
    assert rows(tmp_path, "ivi_dqn") == [
        ("deep_sea_10", 10, 0, 4, "no", "-", 0, 0, 0),
        ("deep_sea_12", 12, 1, 3, 3, 2, 2, 0, 2),
    ]
    main([str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| env | N | seed |") and len(lines) == 4
    assert lines[2] == "| deep_sea_10 | 10 | 0 | 4 | no | - | 0 | 0 | 0 |"


def test_no_results_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--agent", "dqn"])
    assert stop.value.code == 2
    assert "no Deep Sea results for agent 'dqn'" in capsys.readouterr().err
