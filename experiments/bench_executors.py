"""Wall time of the same configs on the local process pool and on a two-node Ray cluster.

    python -m experiments.bench_executors [--cpus 2] [--repeats 1]

Starts a Ray cluster on this machine with Ray's own commands (a head and a second node,
``--cpus`` split between them), then runs ``experiments/default.toml`` and
``experiments/deep_sea_small.toml`` (deep_sea.toml's agents, N = 6 and 8, 300 episodes,
2 seeds) with ``ivi-rl`` once on
``--executor local --workers CPUS`` and once on ``--executor ray``, each into a fresh output
folder (nothing resumed), and prints the wall times and Ray's overhead. The cluster's start
is not counted (a cluster outlives many runs); connecting to it is. Every Ray command runs with
a new empty home folder, in which the head makes the cluster's token as docs/cluster.md says
(the user's own ``~/.ray`` is not touched). Stops the cluster at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _sh(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", type=int, default=2, help="CPUs in all (split over two nodes)")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="bench_executors_home_")
    env = {**os.environ, "CI": "true", "RAY_AUTH_MODE": "token", "HOME": home}
    ray, ivi = str(BIN / "ray"), str(BIN / "ivi-rl")
    port = _free_port()
    head, rest = (args.cpus + 1) // 2, args.cpus // 2
    common = ["--disable-usage-stats"]
    _sh([ray, "get-auth-token", "--generate"], env)
    _sh([ray, "start", "--head", f"--port={port}", f"--num-cpus={head}", *common], env)
    results = {}
    try:
        _sh([ray, "start", f"--address=127.0.0.1:{port}", f"--num-cpus={rest}", *common], env)
        with tempfile.TemporaryDirectory() as tmp:
            configs = {
                "default.toml (bandit)": ["bandit", str(ROOT / "experiments" / "default.toml")],
                "deep_sea_small.toml (rl)": [
                    "rl",
                    str(ROOT / "experiments" / "deep_sea_small.toml"),
                ],
            }
            for name, (kind, config) in configs.items():
                times = {"local": [], "ray": []}
                for r in range(args.repeats):
                    for executor in ("local", "ray"):
                        out = Path(tmp) / f"{kind}_{executor}_{r}"
                        extra = (
                            ["--workers", str(args.cpus)]
                            if executor == "local"
                            else ["--address", f"127.0.0.1:{port}"]
                        )
                        cmd = [ivi, kind, config, "--out", str(out), "--executor", executor]
                        times[executor].append(_sh(cmd + extra, env))
                local, on_ray = min(times["local"]), min(times["ray"])
                results[name] = (local, on_ray)
                print(
                    f"{name:24s} local pool {local:6.1f} s   ray {on_ray:6.1f} s   "
                    f"overhead {100 * (on_ray / local - 1):+.1f}%"
                )
    finally:
        _sh([ray, "stop"], env)
        shutil.rmtree(home, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
