"""The Deep Sea posterior-draw diagnostic: shapes, ranges, reproducibility, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.deep_sea_draws import draw_report, main

CONFIG = str(
    Path(__file__).resolve().parents[2]
    / "experiments"
    / "archive"
    / "ablations"
    / "deep_sea_input.toml"
)


def test_report_is_reproducible_and_its_fractions_count_draws():
    # N = 8 for 30 episodes: 240 steps, past learning_starts = 128
    first, again = (draw_report(CONFIG, 8, seed=3, episodes=30, draws=16) for _ in range(2))
    np.testing.assert_array_equal(first.p_right_diagonal, again.p_right_diagonal)
    assert (first.p_action0, first.mean_q_gap, first.good_episodes) == (
        again.p_action0,
        again.mean_q_gap,
        again.good_episodes,
    )
    assert first.episodes == 30 and 0 <= first.good_episodes <= 30
    assert first.p_right_diagonal.shape == (8,)
    assert all(0 <= p <= 1 for p in [*first.p_right_diagonal, first.p_action0])
    # every diagonal fraction is a count of the 16 draws
    counts = first.p_right_diagonal * 16
    np.testing.assert_allclose(counts, np.round(counts))
    assert first.draw_spread > 0  # a diagonal posterior: draws differ


def test_cli_prints_the_report_and_names_bad_input(capsys):
    main(["--config", CONFIG, "--size", "8", "--episodes", "5", "--draws", "4"])
    out = capsys.readouterr().out
    assert "P(right) along the diagonal:" in out and "good of 5" in out
    with pytest.raises(SystemExit):
        main(["--config", CONFIG, "--size", "9"])
    assert (
        "needs an IVIDQN agent (ivi_dqn or a variant) and a Deep Sea of size 9"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["--draws", "0"])
    with pytest.raises(SystemExit):
        main(["--seed", "-1"])
    assert "--seed -1 must be >= 0" in capsys.readouterr().err
