"""experiments.divergence_check: the stable step's runs at a huge learning rate stay finite,
the control without it diverges, and the exit status says which."""

from __future__ import annotations

import pytest

from experiments.divergence_check import _seeds, main


def test_seed_ranges_and_lists():
    assert _seeds("0-3") == [0, 1, 2, 3]
    assert _seeds("0,5,11") == [0, 5, 11]


def test_the_stable_step_holds_and_the_control_diverges(capsys):
    common = ["--seeds", "0", "--steps", "300", "--rules", "returns", "--workers", "1"]
    assert main(common) == 0
    line = capsys.readouterr().out.strip()
    assert "stable step, reward_scale='returns': diverged 0 of 1 seeds []" in line
    factor = float(line.rsplit(" ", 1)[-1])
    assert 0 < factor < 1e-9  # the bound binds: the step is 1e12 times too large
    assert main([*common, "--without-stable-step"]) == 1
    line = capsys.readouterr().out.strip()
    assert "without the stable step, reward_scale='returns': diverged 1 of 1 seeds [0]" in line


def test_an_unknown_rule_is_one_line_before_any_run(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--rules", "rewards,auto-scale"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--rules" in error and "'auto-scale'" in error and "'returns'" in error
