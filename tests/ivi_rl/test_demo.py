from ivi_rl.demo import main, spread_demo


def test_spread_collapses_on_the_data_and_stays_wide_away_from_it(tmp_path):
    """The README demo's claim, seeded: measured stds are ~0.03-0.06 on [-1, 1] and 0.3-0.4
    at |x| = 3 (prior ~1.0); we require a factor of 3 between the two regions."""
    spread = spread_demo(tmp_path)
    on_data = max(spread[-1.0], spread[0.0], spread[1.0])
    off_data = min(spread[-3.0], spread[3.0])
    assert on_data < 0.1
    assert off_data > 3 * on_data
    assert (tmp_path / "ivi_regression.png").stat().st_size > 10_000


def test_demo_passes_its_wasserstein_check(capsys):
    assert main(["--no-plot"]) == 0
    assert "Wasserstein check: PASS" in capsys.readouterr().out
