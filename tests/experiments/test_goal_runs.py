"""The per-run goal table of a sparse-reward classic-control benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.goal_runs import goal_facts, main, rows


def test_goal_facts_count_the_first_goal_and_the_goals():
    assert goal_facts(np.array([-500, -500, -499, -500, -120.0]), 500) == dict(first=3, goals=2)
    assert goal_facts(np.array([-200.0, -200.0]), 200) == dict(first=0, goals=0)
    assert goal_facts(np.array([-150.0]), 200) == dict(first=1, goals=1)


def _write(folder, env, agent, seed, returns, evaluations):
    path = folder / "results" / env / agent / f"seed_{seed}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, returns=np.asarray(returns, float), eval_returns=np.asarray(evaluations, float),
             seed=seed)  # fmt: skip


def test_rows_per_agent_and_seed_with_the_greedy_final_and_best(tmp_path, capsys):
    _write(tmp_path, "acrobot", "ivi_dqn", 21, [-500, -90, -80], [[-500, -500], [-100, -80]])
    _write(tmp_path, "acrobot", "ivi_dqn", 20, [-500] * 4, [[-500, -500], [-500, -500]])
    _write(tmp_path, "acrobot", "dqn", 20, [-300], [[-70, -90], [-200, -100]])
    _write(tmp_path, "mountaincar", "ivi_dqn", 20, [-150], [[-150, -150]])  # another env
    assert rows(tmp_path, "acrobot", 500) == [
        ("dqn", 20, 1, 1, 1, -150.0, -80.0),
        ("ivi_dqn", 20, 4, "-", 0, -500.0, -500.0),
        ("ivi_dqn", 21, 3, 2, 2, -90.0, -90.0),
    ]
    main([str(tmp_path), "--env", "acrobot", "--limit", "500"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| agent | seed | episodes | first goal | goals | final | best |"
    assert lines[3] == "| ivi_dqn | 20 | 4 | - | 0 | -500.0 | -500.0 |" and len(lines) == 5


def test_no_results_or_a_bad_limit_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--env", "acrobot", "--limit", "500"])
    assert stop.value.code == 2
    assert "no results for env 'acrobot'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--env", "acrobot", "--limit", "0"])
    assert stop.value.code == 2
    assert "--limit=0 is not accepted" in capsys.readouterr().err
