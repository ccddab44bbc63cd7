"""Crash safety and determinism of both runners, end to end.

    python -m experiments.crash_check [--config experiments/default.toml] [--kills 5]
        [--data-dir DIR] [--seed 0]

Runs the config (a bandit config, or an RL one: told apart by its ``envs``) into fresh
folders: (A) uninterrupted; (B1..Bk) each started, killed with SIGKILL (the whole process
group, workers included) at a random moment, then rerun to completion, which resumes;
(C) uninterrupted on ``--executor in_process`` and, for bandits, (D) with ``--no-vectorize``.
Then compares every stored result array of each B, C and D with A (wall times excepted) and
prints one line per comparison with the kill times. Exit status 1 if any array differs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SKIP = {"wall_s"}


def _kind(config: str) -> str:
    from ivi_rl.pipeline.configs import read_config

    return "rl" if "envs" in read_config(Path(config)) else "bandit"


def _command(config: str, out: Path, data_dir: str | None, *extra: str) -> list[str]:
    kind = _kind(config)
    cmd = [sys.executable, "-m", "ivi_rl.pipeline.cli", kind, config, "--out", str(out)]
    cmd += ["--quiet", *extra]
    return cmd + (["--data-dir", data_dir] if data_dir and kind == "bandit" else [])


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _killed_run(cmd: list[str], after: float) -> bool:
    """Start the run and SIGKILL its process group after ``after`` seconds; False if it
    finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _differences(a: Path, b: Path) -> list[str]:
    files = sorted(p.relative_to(a) for p in (a / "results").rglob("*.npz"))
    other = sorted(p.relative_to(b) for p in (b / "results").rglob("*.npz"))
    if files != other:
        return [f"different result files: {len(files)} against {len(other)}"]
    bad = []
    for rel in files:
        with np.load(a / rel) as za, np.load(b / rel) as zb:
            for key in sorted(set(za.files) - SKIP):
                if key not in zb.files or not np.array_equal(za[key], zb[key]):
                    bad.append(f"{rel}:{key}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/default.toml")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = parser.parse_args(argv)
    if args.kills < 0:
        parser.error(f"--kills {args.kills} must be >= 0")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        full = _run(_command(args.config, root / "a", args.data_dir))
        print(f"uninterrupted run: {full:.1f} s")
        compared = []
        for k in range(args.kills):
            cmd = _command(args.config, root / f"b{k}", args.data_dir)
            after = rng.uniform(0.1, 0.9) * full
            killed = _killed_run(cmd, after)
            _run(cmd)  # resume to completion
            name = (
                f"killed after {after:.1f} s and resumed" if killed else "finished before the kill"
            )
            compared.append((name, f"b{k}"))
        variants = [("--executor", "in_process")]
        if _kind(args.config) == "bandit":
            variants.append(("--no-vectorize",))
        for i, extra in enumerate(variants):
            _run(_command(args.config, root / f"c{i}", args.data_dir, *extra))
            compared.append((" ".join(extra), f"c{i}"))
        failed = False
        n = len(list((root / "a" / "results").rglob("*.npz")))
        for name, folder in compared:
            bad = _differences(root / "a", root / folder)
            failed |= bool(bad)
            verdict = "identical" if not bad else f"DIFFERENT in {', '.join(bad[:5])}"
            print(f"{name}: {n} result files, every array {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
