"""The Deep Sea posterior-draw probe: it leaves the run as it is, its counts agree with the
run's, its fractions count draws, and bad input gets one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.deep_sea_draws import draw_reports, main

CONFIG = str(Path(__file__).resolve().parents[2] / "experiments" / "deep_sea.toml")
SMALL = ["agents=[{name = 'ivi_dqn', learning_starts = 16, batch_size = 16}]"]


def test_probing_leaves_the_run_as_it_is_and_counts_what_it_saw():
    checkpoints = [7, 25, 38, 40]
    reports, bad = draw_reports(CONFIG, 5, seed=1, checkpoints=checkpoints, draws=16, sets=SMALL)
    _, unprobed = draw_reports(CONFIG, 5, seed=1, checkpoints=[40], draws=16, sets=SMALL)
    assert bad == unprobed and len(bad) == 40
    assert [r.episodes for r in reports] == checkpoints
    # episodes 7 and 38 reached the treasure: their last step is not yet in the replay when
    # the probe runs, and is counted all the same
    assert not bad[6] and not bad[37]
    for r in reports:
        # deterministic chain, replay not yet full: one stored 'right' at the last cell per
        # treasure, and a treasure exactly when an episode is not bad
        assert r.replay_treasures == r.treasures == r.episodes - sum(bad[: r.episodes])
        assert r.p_right_diagonal.shape == (5,)
        counts = np.array([*r.p_right_diagonal, r.p_all_right]) * 16
        np.testing.assert_allclose(counts, np.round(counts))
        assert r.p_all_right <= r.p_right_diagonal.min()
        assert 0 <= r.p_action0 <= 1 and r.draw_spread > 0
        assert r.p_right_diagonal[r.weakest_row] == r.p_right_diagonal.min()


def test_cli_prints_a_row_per_checkpoint_and_names_bad_input(capsys):
    args = ["--config", CONFIG, "--size", "4", "--checkpoints", "5,10", "--draws", "4"]
    main([*args, "--env", "stochastic", "--set", SMALL[0]])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Deep Sea stochastic, N = 4, seed 0, 4 draws"
    assert out[1].startswith("| episodes | treasures | in replay | P(all right) |")
    assert [line.split(" | ")[0] for line in out[3:]] == ["| 5", "| 10"]
    with pytest.raises(SystemExit):
        main([*args, "--env", "cartpole"])
    assert "a Deep Sea env labelled 'cartpole'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", CONFIG, "--checkpoints", "0,5"])
    assert "--checkpoints '0,5': accepted: comma-separated episode counts >= 1" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["--config", CONFIG, "--checkpoints", "10,x"])
    assert "--checkpoints '10,x': accepted" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--draws", "0"])
    assert "--draws 0 must be >= 1" in capsys.readouterr().err
