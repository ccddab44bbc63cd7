"""What IVIDQN's posterior draws do on Deep Sea as it trains: a row per checkpoint.

    python -m experiments.deep_sea_draws [--config experiments/deep_sea.toml] [--env deep_sea]
        [--size 18] [--seed 0] [--checkpoints 100,200,400] [--draws 256] [--set KEY=VALUE]

Trains the config's ``ivi_dqn`` agent on its Deep Sea env ``--env`` (a label of the config,
e.g. 'deep_sea' or 'stochastic', at size ``--size``) exactly as ``ivi-rl rl`` runs seed
``--seed``, and after each checkpoint (episodes trained so far) evaluates ``--draws`` fresh
posterior draws on every cell. The draws come from a generator of their own, so the probes
leave the run as it would be without them. A row holds:

- ``treasures``: episodes so far that reached the treasure; ``in replay``: the replay's
  transitions that move right from the last diagonal cell (on the deterministic chain each is
  a treasure reached);
- ``P(all right)``: the fraction of draws that choose right in every diagonal cell (the draws
  that would walk to the treasure); the diagonal cell (row) where the fewest draws choose
  right, and that fraction;
- the posterior mean of Q(start, right) and Q(start, left), in the agent's value units;
- ``spread``: the std over draws of Q(right) - Q(left), averaged over the diagonal;
- ``P(a0)``: the fraction of choices of action 0 over all cells and draws, where 'right' is
  action 0 or 1 at random (bsuite's mapping), so anything far from 0.5 is a preference for an
  action *index* shared by all cells.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from experiments.deep_sea_runs import treasure_facts
from ivi_rl import envs
from ivi_rl.agents import IVIDQN
from ivi_rl.pipeline.configs import ConfigError
from ivi_rl.pipeline.rl_config import (
    ALGORITHMS,
    agent_on,
    build_agent,
    load_rl_config,
    make_env,
)
from ivi_rl.pipeline.rl_runner import EpisodeLogger

PROBE_SEED = 12345
"""The probes' own generator seed (added to the run's seed)."""


@dataclasses.dataclass(frozen=True)
class DrawReport:
    episodes: int
    treasures: int
    replay_treasures: int
    p_all_right: float
    p_right_diagonal: np.ndarray  # [size]
    q_start_right: float
    q_start_left: float
    draw_spread: float
    p_action0: float

    @property
    def weakest_row(self) -> int:
        return int(np.argmin(self.p_right_diagonal))


def _setup(config: str, env_label: str, size: int, sets: list[str]):
    loaded = load_rl_config(config, sets=sets)
    spec = next((e for e in loaded.envs if e.label.rpartition("_")[0] == env_label), None)
    spec = spec or next((e for e in loaded.envs if e.label == env_label), None)
    agent = next((a for a in loaded.agents if issubclass(ALGORITHMS[a.name], IVIDQN)), None)
    if agent is None or spec is None or "size" not in spec.kwargs:
        raise ConfigError(
            f"{config} needs an IVIDQN agent (ivi_dqn or a variant) and a Deep Sea env "
            f"labelled {env_label!r}"
        )
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, "size": size})
    return spec, agent_on(agent, spec)


def probe(model, env, logger: EpisodeLogger, draws: int, generator, pending_action) -> DrawReport:
    """The checkpoint's row (module docstring) for the model as it is now, at the step that
    took ``pending_action`` (not yet in the replay)."""
    base = env.unwrapped
    n, rows = base.size, np.arange(base.size)
    device = model.device
    right = torch.as_tensor(base.optimal_actions()[rows, rows], dtype=torch.long, device=device)
    q_net, cells = model.policy.q_net, torch.eye(n * n, device=device)
    with torch.no_grad():
        q = q_net.sampled_q(cells, (draws,), generator=generator)  # [draws, n*n, 2]
        start = q_net.mean_q(cells[:1])[0]  # [2], the posterior mean at the first cell
    diagonal = q.reshape(draws, n, n, 2)[:, rows, rows, :]  # [draws, n, 2]
    q_right = diagonal.gather(2, right.expand(draws, n)[..., None])[..., 0]
    q_left = diagonal.gather(2, (1 - right).expand(draws, n)[..., None])[..., 0]
    goes_right = (q_right > q_left).cpu().numpy()
    start_right = int(right[0])
    return DrawReport(
        episodes=len(logger.bad),
        treasures=treasure_facts(logger.denoised)["treasures"],
        replay_treasures=_replay_treasures(model, n, int(right[-1]), pending_action),
        p_all_right=float(goes_right.all(1).mean()),
        p_right_diagonal=goes_right.mean(0),
        q_start_right=float(start[start_right]),
        q_start_left=float(start[1 - start_right]),
        draw_spread=float((q_right - q_left).std(0).mean()),
        p_action0=float((q[..., 0] > q[..., 1]).double().mean().item()),
    )


def _replay_treasures(model, size: int, right: int, pending_action) -> int:
    """Replay transitions that take 'right' in the last diagonal cell, counting the step just
    taken (a callback runs before SB3 stores it): ``pending_action`` from ``_last_obs``."""
    buffer = model.replay_buffer
    stored = buffer.buffer_size if buffer.full else buffer.pos
    last_cell = buffer.observations[:stored, 0, size * size - 1] > 0
    found = int(np.sum(last_cell & (buffer.actions[:stored, 0, 0] == right)))
    pending = model._last_obs[0, size * size - 1] > 0 and int(pending_action[0]) == right
    return found + int(pending)


class _Probes(BaseCallback):
    """Probe at each checkpoint's episode end; stop training after the last."""

    def __init__(self, env, logger: EpisodeLogger, checkpoints, draws: int, seed: int, on_row):
        super().__init__()
        self.env, self.episode_logger, self.draws, self.on_row = env, logger, draws, on_row
        self.pending = sorted(set(checkpoints))
        self.seed = seed
        self.generator: torch.Generator | None = None  # on the model's device, at the start
        self.reports: list[DrawReport] = []

    def _on_training_start(self) -> None:
        self.generator = torch.Generator(device=self.model.device).manual_seed(
            self.seed + PROBE_SEED
        )

    def _on_step(self) -> bool:
        if self.pending and len(self.episode_logger.bad) == self.pending[0]:
            self.pending.pop(0)
            action = self.locals["buffer_actions"]
            report = probe(
                self.model, self.env, self.episode_logger, self.draws, self.generator, action
            )
            self.reports.append(report)
            self.on_row(report)
        return bool(self.pending)


def draw_reports(
    config: str,
    size: int,
    seed: int,
    checkpoints: list[int],
    draws: int,
    env_label: str = "deep_sea",
    sets: list[str] | None = None,
    on_row: Callable[[DrawReport], None] = lambda row: None,
) -> tuple[list[DrawReport], list[bool]]:
    """The rows at ``checkpoints`` (each also passed to ``on_row`` as it is made) and the run's
    bad-episode flags up to the last one."""
    spec, agent = _setup(config, env_label, size, sets or [])
    return _run(spec, agent, seed, checkpoints, draws, on_row)


def _run(spec, agent, seed: int, checkpoints: list[int], draws: int, on_row):
    """:func:`draw_reports` for a resolved env spec and agent."""
    size = spec.kwargs["size"]
    env = make_env(spec)
    model = build_agent(agent, env, seed=seed)
    rule = envs.solve_rule(env.unwrapped.deterministic)
    logger = EpisodeLogger(None, False, lambda n: None, rule)
    probes = _Probes(env, logger, checkpoints, draws, seed, on_row)
    budget = size * max(checkpoints) + 1
    model.learn(budget, callback=CallbackList([logger, probes]), log_interval=10_000_000)
    return probes.reports, list(logger.bad)


def _checkpoints(text: str) -> list[int]:
    error = argparse.ArgumentTypeError(
        f"--checkpoints {text!r}: accepted: comma-separated episode counts >= 1"
    )
    try:
        values = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise error from None
    if not values or min(values) < 1:
        raise error
    return values


COLUMNS = (
    "episodes",
    "treasures",
    "in replay",
    "P(all right)",
    "fewest right: row, P",
    "Q(start, right)",
    "Q(start, left)",
    "spread",
    "P(a0)",
)


def _line(r: DrawReport) -> str:
    cells = (
        f"{r.episodes:,}",
        str(r.treasures),
        str(r.replay_treasures),
        f"{r.p_all_right:.3f}",
        f"{r.weakest_row}, {r.p_right_diagonal[r.weakest_row]:.2f}",
        f"{r.q_start_right:+.3f}",
        f"{r.q_start_left:+.3f}",
        f"{r.draw_spread:.3f}",
        f"{r.p_action0:.2f}",
    )
    return "| " + " | ".join(cells) + " |"


def _print_row(r: DrawReport) -> None:
    print(_line(r), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/deep_sea.toml")
    parser.add_argument("--env", default="deep_sea", help="the config's Deep Sea env label")
    parser.add_argument("--size", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", type=_checkpoints, default=[100, 200, 400])
    parser.add_argument("--draws", type=int, default=256)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, as ivi-rl rl's --set")  # fmt: skip
    args = parser.parse_args(argv)
    for flag, least in (("draws", 1), ("size", 2), ("seed", 0)):
        if getattr(args, flag) < least:
            parser.error(f"--{flag} {getattr(args, flag)} must be >= {least}")
    torch.set_num_threads(1)
    header = [
        f"Deep Sea {args.env}, N = {args.size}, seed {args.seed}, {args.draws} draws",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    try:
        spec, agent = _setup(args.config, args.env, args.size, args.set)
    except ConfigError as err:
        parser.error(str(err))  # bad input: one line, before the header
    print("\n".join(header), flush=True)
    _run(spec, agent, args.seed, args.checkpoints, args.draws, on_row=_print_row)


if __name__ == "__main__":
    main()
