"""Deep Sea runs in bsuite's CSV format, read back with bsuite's own rules (its csv_load,
sweep and deep_sea analysis, reimplemented here without pandas): the same solve episodes and
the same score as the runner's summary."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ivi_rl import envs
from ivi_rl.pipeline import run_rl
from ivi_rl.pipeline.bsuite_logs import COLUMNS, bsuite_id, csv_name, episode_rows, log_schedule


def _bsuite_logs_at(episode: int) -> bool:
    """bsuite.utils.wrappers._logarithmic_logging, as written there."""
    ratios = [1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    exponent = np.floor(np.log10(np.maximum(1, episode)))
    return any(episode == 10**exponent * ratio for ratio in ratios)


def _read_bsuite_folder(folder: Path) -> dict[str, list[dict[str, float]]]:
    """bsuite's load_one_result_set: every 'bsuite_id_-_*.csv', the id from the file name
    ('-' back to '/')."""
    found = {}
    for path in sorted(folder.glob("*.csv")):
        assert path.name.startswith("bsuite_id_-_")
        experiment = path.name.removesuffix(".csv").split("_-_")[1].replace("-", "/")
        with open(path) as f:
            found[experiment] = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return found


def _bsuite_solution(experiment: str, rows: list[dict[str, float]]) -> tuple[int, bool]:
    """bsuite's find_solution for one run: the first logged episode whose running bad
    fraction is below 0.9 (stochastic: 0.8, from episode 100 on), else its last episode."""
    stochastic = experiment.startswith("deep_sea_stochastic")
    thresh, first = (0.8, 100) if stochastic else (0.9, 0)
    kept = [r for r in rows if r["episode"] >= first]
    below = [r["episode"] for r in kept if r["total_bad_episodes"] / r["episode"] < thresh]
    return (int(min(below)), True) if below else (int(kept[-1]["episode"]), False)


def _bsuite_score(folder: Path) -> float:
    """bsuite's deep_sea score: solved before 2^N + 100 episodes, N from its sweep."""
    beat = []
    for experiment, rows in _read_bsuite_folder(folder).items():
        size = 10 + 2 * int(experiment.split("/")[1])  # bsuite's sweep: size 10 + 2i
        episode, solved = _bsuite_solution(experiment, rows)
        beat.append(solved and episode < 2**size + 100)
    return float(np.mean(beat))


def test_the_log_schedule_is_bsuites_plus_the_last_episode():
    assert log_schedule(10_000) == [e for e in range(1, 10_001) if _bsuite_logs_at(e)]
    assert log_schedule(10_000)[:14] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 20]
    assert log_schedule(517)[-3:] == [400, 500, 517]


def test_ids_and_file_names_follow_bsuites_sweep():
    assert bsuite_id(16, deterministic=True, mapping_seed=42) == "deep_sea/3"
    assert bsuite_id(50, deterministic=False, mapping_seed=0) == "deep_sea_stochastic/20"
    assert bsuite_id(11, True, 42) is None and bsuite_id(60, True, 42) is None
    # each experiment's own mapping seed: 42 for deep_sea, 0 for deep_sea_stochastic
    assert bsuite_id(10, True, 7) is None and bsuite_id(10, True, 0) is None
    assert bsuite_id(10, False, 42) is None and bsuite_id(10, True, None) is None
    assert csv_name("deep_sea_stochastic/20") == "bsuite_id_-_deep_sea_stochastic-20.csv"


def test_rows_hold_bsuites_columns_and_the_solve_episode_is_the_last_row(tmp_path):
    """A run that stops at its solve episode (here 517 of a 10-step chain): bsuite's rule
    finds that episode in the rows, and every column is the running total bsuite logs."""
    bad = np.arange(517) < 465  # 465 bad episodes, then good ones: 465 / e < 0.9 from e = 517
    assert envs.solve_episode(bad) == 517
    returns = np.where(bad, -0.001, 0.99)
    denoised = np.cumsum(~bad).astype(float)
    (tmp_path / "deep_sea-0.csv").write_text(episode_rows(10, returns, bad, denoised))
    with open(tmp_path / "deep_sea-0.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    last = {k: float(v) for k, v in rows[-1].items()}
    assert (last["episode"], last["steps"], last["episode_len"]) == (517, 5170, 10)
    assert last["total_bad_episodes"] == bad.sum()
    assert last["total_return"] == pytest.approx(returns.sum())
    assert last["denoised_return"] == denoised[-1]
    parsed = [{k: float(v) for k, v in r.items()} for r in rows]
    assert _bsuite_solution("deep_sea/0", parsed) == (517, True)


def test_a_sweeps_logs_read_back_with_bsuites_rules_give_the_summarys_score(tmp_path):
    """Deep Sea N = 10 and 12, both variants (30 and 100 episodes: bsuite reads the stochastic
    variant from episode 100 on), two seeds: bsuite's score computed from the CSVs alone
    equals the runner's score for every agent and experiment (the rows' solve rule is checked
    on a solved run above)."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'out = "{tmp_path / "out"}"\nseeds = 2\nstop_when_solved = true\n'
        '[[envs]]\nid = "ivi_rl/DeepSea-v0"\nlabel = "deep_sea"\nepisodes = 30\n'
        "sweep = { size = [10, 12] }\n"
        '[[envs]]\nid = "ivi_rl/DeepSeaStochastic-v0"\nlabel = "stochastic"\nepisodes = 100\n'
        "sweep = { size = [10, 12] }\n"
        '[[agents]]\nname = "ivi_dqn"\n'
        '[[agents]]\nname = "dqn"\nwhy = "dithering"\nlearning_starts = 32\n'
    )
    run_rl(config, quiet=True, executor="in_process")
    summary = (tmp_path / "out" / "summary.md").read_text()
    for agent in ("ivi_dqn", "dqn"):
        for seed in (0, 1):
            folder = tmp_path / "out" / "bsuite" / agent / f"seed_{seed}"
            names = sorted(p.name for p in folder.glob("*.csv"))
            assert names == [
                "bsuite_id_-_deep_sea-0.csv",
                "bsuite_id_-_deep_sea-1.csv",
                "bsuite_id_-_deep_sea_stochastic-0.csv",
                "bsuite_id_-_deep_sea_stochastic-1.csv",
            ]
        for experiment in ("deep_sea", "deep_sea_stochastic"):
            per_seed = []
            for seed in (0, 1):
                folder = tmp_path / "out" / "bsuite" / agent / f"seed_{seed}"
                keep = tmp_path / "only" / agent / experiment / str(seed)
                keep.mkdir(parents=True)
                for path in folder.glob(f"bsuite_id_-_{experiment}-*.csv"):
                    (keep / path.name).write_text(path.read_text())
                per_seed.append(_bsuite_score(keep))
            assert f"| {agent} | {experiment} | {np.mean(per_seed):.2f} |" in summary
