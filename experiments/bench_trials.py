"""Throughput of S trials of one bandit agent: vectorized (one batched task) versus one trial
at a time, both through the runner's own task execution (TensorBoard logging included,
2 log points).

    python -m experiments.bench_trials --dataset mushroom --agent ivi_ts --horizon 2000 \\
        --seeds 10 --device cpu [--data-dir DIR] [--threads N] [--setting key=value ...]

Prints each mode's wall time and throughput in agent-steps per second (seeds x horizon /
wall), and as its last line ``speedup <vectorized / one-at-a-time throughput>``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from experiments import parse_setting
from ivi_rl import envs
from ivi_rl.checks import resolve_device
from ivi_rl.pipeline.bandit_config import AgentSpec, DatasetSpec
from ivi_rl.pipeline.bandit_runner import Task, execute


def time_mode(
    dataset: DatasetSpec,
    agent: AgentSpec,
    seeds: list[int],
    horizon: int,
    device: str,
    data_dir: str | None,
    vectorized: bool,
) -> float:
    groups = [tuple(seeds)] if vectorized else [(s,) for s in seeds]
    start = time.perf_counter()
    for group in groups:
        execute(Task(dataset, agent, group, horizon, device, 2, data_dir))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mushroom")
    p.add_argument("--agent", default="ivi_ts")
    p.add_argument("--horizon", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--setting", action="append", default=[], type=parse_setting, help="agent key=value"
    )
    args = p.parse_args(argv)
    resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = DatasetSpec(args.dataset, args.dataset, {})
    envs.make_problem(args.dataset, data_dir=args.data_dir)  # fail early on missing data
    agent = AgentSpec(args.agent, args.agent, dict(args.setting))
    seeds = list(range(args.seeds))
    steps = args.seeds * args.horizon
    print(
        f"# {args.agent} on {args.dataset}, horizon {args.horizon}, {args.seeds} seeds, "
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{platform.machine()}"
    )
    rates = {}
    for name, vectorized in (("one-at-a-time", False), ("vectorized", True)):
        wall = time_mode(
            dataset, agent, seeds, args.horizon, args.device, args.data_dir, vectorized
        )
        rates[name] = steps / wall
        print(f"{name:>14}: wall {wall:8.1f} s, {rates[name]:9.1f} agent-steps/s")
    speedup = rates["vectorized"] / rates["one-at-a-time"]
    print(f"speedup {speedup:.2f}")
    return speedup


if __name__ == "__main__":
    main()
