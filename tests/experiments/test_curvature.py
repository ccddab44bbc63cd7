"""The curvature trace behind IVI-TS's stable step: what it prints and that it agrees with
the agent's step factor."""

from __future__ import annotations

import numpy as np

from experiments.curvature import main, trace

SMALL = {"hidden": [16, 16], "train_every": 20, "train_steps": 10, "batch_size": 32}


def test_the_factor_is_the_bound_over_the_largest_stochastic_kappa_or_one():
    steps, kappa, factor, _ = trace("stress:kind=feature_scale", [0, 1], 200, 40, SMALL, None)
    assert steps == [40, 80, 120, 160, 200]
    assert kappa.shape == (10, 2, 3) and factor.shape == (10, 2)
    bound = 0.8 * (1 - 0.9)  # input and output layers carry covariances, momentum 0.9
    expected = np.minimum(1.0, bound / kappa[:, :, [0, 2]].max(-1))
    expected = np.minimum(expected, 0.8 * 2 * 1.9 / kappa[:, :, 1])
    np.testing.assert_allclose(factor, expected, rtol=1e-5)
    assert (factor < 1).any()  # the stress problem is built to make it bind


def test_the_script_prints_a_row_per_checkpoint_and_a_summary(capsys):
    main(
        [
            "wheel:delta=0.7",
            "--horizon",
            "100",
            "--every",
            "40",
            *[f"--setting={k}={v}" for k, v in SMALL.items()],
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "seed 0: step, kappa per layer, factor"
    assert [line.split()[0] for line in out[1:3]] == ["40", "80"]
    assert out[-1].startswith("max kappa per layer: ")


def test_command_line_settings_are_literals_where_they_can_be():
    from experiments import parse_setting

    assert parse_setting("lr=0.01") == ("lr", 0.01)
    assert parse_setting("stable_lr=False") == ("stable_lr", False)
    assert parse_setting("cov=full") == ("cov", "full")
    assert parse_setting("kind=a=b") == ("kind", "a=b")
