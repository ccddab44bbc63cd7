"""The ``ivi-rl`` command line.

ivi-rl demo [--out DIR] [--no-plot]     IVI regression demo with the Wasserstein check
"""

from __future__ import annotations

import argparse

from experiments import ivi_regression

COMMANDS = {
    "demo": (ivi_regression.main, "IVI regression demo with the Wasserstein check"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivi-rl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    run, _ = COMMANDS[args.command]
    return run(rest)


if __name__ == "__main__":
    raise SystemExit(main())
