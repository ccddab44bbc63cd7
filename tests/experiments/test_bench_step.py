"""The step benchmark runs both steps and reports a ratio (timings are not asserted)."""

from experiments.bench_step import main


def test_bench_step_times_the_plain_and_the_noise_aware_step(capsys):
    for flags, name in (([], "plain IVI step"), (["--noise-aware"], "noise-aware IVI step")):
        ratio = main(["--widths", "16", "--repeats", "1", "--steps", "2", *flags])
        out = capsys.readouterr().out
        assert name in out.splitlines()[0]
        assert out.splitlines()[-1] == f"ratio {ratio:.3f}" and ratio > 0
