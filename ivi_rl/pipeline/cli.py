"""The ``ivi-rl`` command line.

    ivi-rl bandit CONFIG [--out DIR] [--seeds N] [--horizon N] [--device cpu|cuda]
                         [--data-dir DIR] [--workers N] [--no-vectorize] [--quiet]
                         [--executor in_process|local|ray] [--address HOST:PORT]
                         [--set KEY=VALUE ...] [--fail-fast]
    ivi-rl rl CONFIG [--out DIR] [--seeds N] [--device cpu|cuda] [--workers N] [--quiet]
                     [--executor in_process|local|ray] [--address HOST:PORT]
                     [--set KEY=VALUE ...] [--fail-fast]
    ivi-rl demo [--out DIR] [--no-plot]

A config that cannot run (unknown agent or dataset, bad setting, missing data file) is
reported as one line on stderr with exit status 2, before anything runs.
"""

from __future__ import annotations

import argparse
import sys

from ivi_rl import demo as ivi_regression


def _reporting_config_errors(prog: str, run) -> int:
    """Run; a config that cannot run is one line on stderr and exit status 2, a run with
    diverged trials (reported, the rest finished) or stopped by one (``--fail-fast``) one line
    and exit status 1, Ctrl-C one line and 130."""
    from ivi_rl.pipeline.errors import ConfigError

    try:
        run()
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; finished runs are stored, the same command resumes",
            file=sys.stderr,
        )
        return 130
    return 0


def _add_run_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """The arguments both runners take."""
    p.add_argument("config", help=f"TOML config, e.g. {example}")
    p.add_argument("--out", help="output directory (default: the config's 'out')")
    p.add_argument("--seeds", type=int, help="use seeds 0..N-1")
    p.add_argument("--device", help="'cpu' or 'cuda'")
    p.add_argument("--workers", type=int, help="local pool processes (default: CPU count)")
    p.add_argument(
        "--executor",
        help="where tasks run: in_process, local (a process pool, the default) or ray",
    )
    p.add_argument("--address", help="Ray cluster address (host:port), with --executor ray")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="override a config key, e.g. seeds=2, defaults.agents.learning_rate=0.01 or "
        "agents.ivi_ts.lr=0.05 (VALUE as in TOML; repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first trial whose training diverges (default: record it, run the "
        "rest, report it and exit with status 1)",
    )


COMMON = (
    "out",
    "seeds",
    "device",
    "workers",
    "executor",
    "address",
    "sets",
    "quiet",
    "fail_fast",
)
"""The arguments both runners take (:func:`_add_run_arguments`), by keyword."""


def _common(args: argparse.Namespace) -> dict:
    return {key: getattr(args, key) for key in COMMON}


def _bandit(argv: list[str]) -> int:
    from ivi_rl.pipeline.bandit import run_bandit

    p = argparse.ArgumentParser(
        prog="ivi-rl bandit", description="Run a bandit benchmark config.", allow_abbrev=False
    )
    _add_run_arguments(p, "experiments/default.toml")
    p.add_argument("--horizon", type=int, help="steps per trial for every dataset")
    p.add_argument("--data-dir", help="data directory (default: $IVI_RL_DATA or ~/.cache/ivi_rl)")
    p.add_argument("--no-vectorize", action="store_true", help="run seeds one at a time")
    args = p.parse_args(argv)
    return _reporting_config_errors(
        "ivi-rl bandit",
        lambda: run_bandit(
            args.config,
            horizon=args.horizon,
            data_dir=args.data_dir,
            vectorize=False if args.no_vectorize else None,
            **_common(args),
        ),
    )


def _rl(argv: list[str]) -> int:
    from ivi_rl.pipeline.rl import run_rl

    p = argparse.ArgumentParser(
        prog="ivi-rl rl", description="Run an RL benchmark config.", allow_abbrev=False
    )
    _add_run_arguments(p, "experiments/deep_sea.toml")
    args = p.parse_args(argv)
    return _reporting_config_errors("ivi-rl rl", lambda: run_rl(args.config, **_common(args)))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ivi-rl")
    except PackageNotFoundError:  # running from a source tree that is not installed
        import ivi_rl

        return ivi_rl.__version__


COMMANDS = {
    "bandit": (_bandit, "run a bandit benchmark config (TensorBoard, summary, plot)"),
    "rl": (_rl, "run an RL benchmark config (SB3 agents, Deep Sea sweeps)"),
    "demo": (ivi_regression.main, "IVI regression demo with the Wasserstein check"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ivi-rl", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"ivi-rl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    run, _ = COMMANDS[args.command]
    return run(rest)


if __name__ == "__main__":
    raise SystemExit(main())
