"""Aggregate finished RL runs: summary.csv / summary.md (episodes to solve, bsuite score,
final and greedy returns, cost per step) and solve.png. Rebuilt from the result files.

Deep Sea rows count two kinds of episode: ``good_episodes`` are bsuite's not-bad ones (the
agent never moved left on the diagonal; its solve rule counts these) and ``treasures`` the
ones that reached the treasure. They are the same in the deterministic chain; in the
stochastic one a failed move right leaves the diagonal without a bad episode, so an agent can
meet bsuite's rule with few treasures.

A diverged run (:mod:`ivi_rl.pipeline.store`) is left out of every mean, counted in the
``diverged`` column, listed with its step and error in summary.md, named in the TensorBoard
mean run's note, and counts as not solved in the Deep Sea columns and the bsuite score."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, replace

import numpy as np

from ivi_rl import envs

from . import bsuite_logs
from .atomic import write_bytes, write_text
from .rl_config import RLConfig, agent_on, known_optimal_return, make_env
from .store import diverged_lines, figure_bytes, load_runs, split_diverged
from .tb_compare import MeanRun, layout, write_mean_run

__all__ = ["report"]


@dataclass(frozen=True)
class EnvFacts:
    """What the report needs to know of an env spec, read from one built env: the optimal
    return per episode where known, and for Deep Sea (size, deterministic, mapping seed or
    None)."""

    optimal: float | None
    deep_sea: tuple[int, bool, int | None] | None

    @property
    def experiment(self) -> str | None:
        """bsuite's experiment name for a Deep Sea env ('deep_sea' or 'deep_sea_stochastic')."""
        return None if self.deep_sea is None else bsuite_logs.experiment_name(self.deep_sea[1])


def _env_facts(config: RLConfig) -> dict[str, EnvFacts]:
    """Each env label's facts, building each env once."""
    facts = {}
    for e in config.envs:
        with contextlib.closing(make_env(e)) as env:
            base = env.unwrapped
            deep_sea = None
            if isinstance(base, envs.DeepSeaEnv):
                deep_sea = (base.size, base.deterministic, base.mapping_seed)
            facts[e.label] = EnvFacts(known_optimal_return(env), deep_sea)
    return facts


def _load(config: RLConfig) -> tuple[RLConfig, dict[tuple[str, str], list[dict]]]:
    """The stored runs of every agent of the config, and the config whose agents are its
    selected ones and, after them, those ``select_agents`` left out that have a stored
    result, so that a sweep run one agent at a time is reported whole."""
    envs_ = [e.label for e in config.envs]
    every = [a.label for a in (*config.agents, *config.unselected)]
    runs = load_runs(config.out, envs_, every, config.seeds)
    stored = [a for a in config.unselected if any(runs[(e, a.label)] for e in envs_)]
    return replace(config, agents=[*config.agents, *stored], unselected=()), runs


def _rows(config: RLConfig, runs) -> list[dict]:
    rows = []
    for e in config.envs:
        for a in config.agents:
            if runs[e.label, a.label]:
                rows.append(_row(e.label, a.label, *split_diverged(runs[e.label, a.label])))
    return rows


def _row(env: str, agent: str, found: list[dict], diverged: list[dict]) -> dict:
    size = int((found or diverged)[0]["size"])
    solved = [int(r["solved"]) for r in found if int(r["solved"]) > 0]
    runs = len(found) + len(diverged)  # a diverged run solved nothing
    returns = [r["returns"][-100:].mean() for r in found if r["returns"].size]
    deep_sea = size > 0
    return {
        "env": env,
        "agent": agent,
        "size": size if deep_sea else "",
        "seeds": len(found),
        "diverged": len(diverged),
        "solved": f"{len(solved)}/{runs}" if deep_sea else "",
        "solved_runs": len(solved) if deep_sea else None,
        "runs": runs,
        "good_episodes": float(np.mean([(~r["bad"]).sum() for r in found]))
        if deep_sea and found
        else "",
        "treasures": _mean_treasures(found) if deep_sea else "",
        "episodes_to_solve": float(np.median(solved)) if solved else "",
        "final_return": float(np.mean(returns)) if returns else "",
        "eval_return": _mean_eval(found),
        "best_eval_return": _mean_eval(found, best=True),
        "steps": int(np.mean([r["steps"] for r in found])) if found else "",
        "us_per_step": float(1e6 * np.mean([r["wall_s"] / max(int(r["steps"]), 1) for r in found]))
        if found
        else "",
    }


def _mean_treasures(found: list[dict]) -> float | str:
    """Mean over seeds of the episodes that reached the treasure (bsuite's denoised return at
    the end; '' where a result predates it)."""
    counts = [r["denoised"][-1] if r["denoised"].size else 0.0 for r in found if "denoised" in r]
    return float(np.mean(counts)) if counts and len(counts) == len(found) else ""


def _mean_eval(found: list[dict], best: bool = False) -> float | str:
    """Mean over seeds of the greedy policy's mean return: the final evaluation's, or the best
    evaluation's with ``best`` ('' without evaluations)."""
    means = [r["eval_returns"].mean(1) for r in found if r.get("eval_returns", np.zeros(0)).size]
    if not means:
        return ""
    return float(np.mean([m.max() if best else m[-1] for m in means]))


def _scores(config: RLConfig, runs, facts: dict[str, EnvFacts]) -> dict[tuple[str, str], float]:
    """bsuite's score per (agent, experiment: 'deep_sea' or 'deep_sea_stochastic'), averaged
    over seeds over the sizes in the config; a diverged run counts as not solved."""
    found: dict[tuple[str, str, int], dict[int, int | None]] = {}
    for e in config.envs:
        experiment = facts[e.label].experiment
        if experiment is None:
            continue
        size = facts[e.label].deep_sea[0]
        for a in config.agents:
            for r in runs[e.label, a.label]:
                solved = int(r["solved"]) if int(r.get("solved", -1)) > 0 else None
                found.setdefault((a.label, experiment, int(r["seed"])), {})[size] = solved
    per_seed: dict[tuple[str, str], list[float]] = {}
    for (agent, experiment, _), sizes in found.items():
        per_seed.setdefault((agent, experiment), []).append(envs.deep_sea_score(sizes))
    return {key: float(np.mean(values)) for key, values in per_seed.items()}


def _write_bsuite_logs(config: RLConfig, runs, facts: dict[str, EnvFacts]) -> None:
    """Every finished Deep Sea run of bsuite's sweep as bsuite's CSV log
    (:mod:`ivi_rl.pipeline.bsuite_logs`), at ``bsuite/<agent>/seed_<s>/``."""
    for e in config.envs:
        deep_sea = facts[e.label].deep_sea
        experiment = None if deep_sea is None else bsuite_logs.bsuite_id(*deep_sea)
        if experiment is None:
            continue
        for a in config.agents:
            for r in split_diverged(runs[e.label, a.label])[0]:
                if "denoised" not in r:  # a result written before bsuite's counters
                    continue
                text = bsuite_logs.episode_rows(deep_sea[0], r["returns"], r["bad"], r["denoised"])
                folder = config.out / "bsuite" / a.label / f"seed_{int(r['seed'])}"
                write_text(folder / bsuite_logs.csv_name(experiment), text)


def _write_solve_runs(config: RLConfig, rows: list[dict], scores) -> None:
    """TensorBoard's Deep Sea view: per agent a run ``tb/deep_sea_solve/<agent>`` with the
    median episode to solve at step N (the sizes some seed solved), the fraction of seeds
    solved at step N and bsuite's score, and a run ``2^N`` (dithering's episodes)."""
    from torch.utils.tensorboard import SummaryWriter

    sizes = sorted({r["size"] for r in rows if r["size"] != ""})
    root = config.out / "tb" / "deep_sea_solve"
    shutil.rmtree(root, ignore_errors=True)
    with SummaryWriter(str(root / "2^N")) as writer:
        for n in sizes:
            writer.add_scalar("deep_sea/episodes_to_solve", float(2**n), n)
    for agent in config.agents:
        mine = [r for r in rows if r["agent"] == agent.label and r["size"] != ""]
        with SummaryWriter(str(root / agent.label)) as writer:
            for r in sorted(mine, key=lambda r: r["size"]):
                if r["episodes_to_solve"] != "":
                    writer.add_scalar(
                        "deep_sea/episodes_to_solve", r["episodes_to_solve"], r["size"]
                    )
                fraction = r["solved_runs"] / r["runs"]
                writer.add_scalar("deep_sea/solved_fraction", fraction, r["size"])
            for (label, experiment), score in scores.items():
                if label == agent.label:
                    writer.add_scalar(f"deep_sea/bsuite_score/{experiment}", score, 0)


RETURN_WINDOW = 10
"""Episodes in the moving mean of the return that the comparison charts show."""


def _write_mean_runs(config: RLConfig, runs, rows: list[dict], facts: dict[str, EnvFacts]) -> None:
    """TensorBoard's comparison view (:mod:`ivi_rl.pipeline.tb_compare`), by episode: the
    return (moving mean over 10 episodes) and, where the optimal return is known (Deep Sea),
    the cumulative regret, mean ± s.e. over seeds. A run stopped at its solve episode ends
    early, so a mean run covers the episodes every seed ran."""
    by_key = {(r["env"], r["agent"]): r for r in rows}
    specs = {a.label: a for a in config.agents}
    optimal = {label: f.optimal for label, f in facts.items()}
    charts = []
    for e in config.envs:
        charts.append((f"{e.label} return", e.label, "return"))
        if optimal[e.label] is not None:
            charts.append((f"{e.label} cumulative regret", e.label, "cumulative_regret"))
    title = "by episode, mean ± s.e. over seeds, one line per agent"
    custom = layout(title, charts)
    if any(f.deep_sea is not None for f in facts.values()):
        custom[next(iter(custom))]["Deep Sea: episodes to solve vs N (2^N: dithering)"] = [
            "Multiline",
            ["deep_sea/episodes_to_solve"],
        ]
    envs_by_label = {e.label: e for e in config.envs}
    for (env_label, agent_label), records in runs.items():
        found, diverged = split_diverged(records)
        n = min((r["returns"].size for r in found), default=0)
        if n == 0:
            continue
        env = envs_by_label[env_label]
        returns = np.array([r["returns"][:n] for r in found], dtype=float)
        curves = {"rollout/episode_return": _moving_mean(returns, RETURN_WINDOW)}
        banded = {"rollout/episode_return": "return"}
        if optimal[env_label] is not None:
            curves["regret/cumulative"] = np.cumsum(optimal[env_label] - returns, axis=1)
            banded["regret/cumulative"] = "cumulative_regret"
        agent = specs[agent_label]
        params = {"env": env_label, "agent": agent.name, "label": agent.label}
        params |= dict(sorted(agent_on(agent, env).settings.items()))
        run = MeanRun(
            env_label,
            np.arange(1, n + 1),
            curves,
            banded,
            params,
            _metrics(by_key[env_label, agent_label]),
            _left_out(len(found), diverged),
        )
        write_mean_run(config.out / "tb" / env_label / agent_label / "mean", run, custom)
        custom = None  # the layout is read from any run; written once


def _moving_mean(curves: np.ndarray, window: int) -> np.ndarray:
    """Mean of each row's last ``window`` values (fewer at the start)."""
    sums = np.cumsum(curves, axis=1)
    lagged = np.concatenate([np.zeros((len(curves), window)), sums], axis=1)[:, : sums.shape[1]]
    counts = np.minimum(np.arange(1, sums.shape[1] + 1), window)
    return (sums - lagged) / counts


def _metrics(row: dict) -> dict[str, float]:
    """The summary row's final numbers that exist, for the HParams table."""
    metrics = {"final/diverged_seeds": float(row["diverged"])}
    keys = ("final_return", "us_per_step", "eval_return", "episodes_to_solve", "good_episodes")
    for key in (*keys, "treasures"):
        if row[key] != "":
            metrics[f"final/{key.removeprefix('final_')}"] = float(row[key])
    if row["solved_runs"] is not None:
        metrics["final/solved_fraction"] = row["solved_runs"] / row["runs"]
    return metrics


def report(config: RLConfig) -> list[dict]:
    """Write the summary (CSV and markdown), TensorBoard's mean runs and, on Deep Sea sweeps,
    the solve plot and bsuite's logs, of every agent with stored results; returns the rows."""
    config, runs = _load(config)
    facts = _env_facts(config)
    rows = _rows(config, runs)
    _write_mean_runs(config, runs, rows, facts)
    cols = [
        "env",
        "agent",
        "size",
        "seeds",
        "diverged",
        "solved",
        "episodes_to_solve",
        "good_episodes",
        "treasures",
        "final_return",
        "eval_return",
        "best_eval_return",
        "steps",
        "us_per_step",
    ]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    write_text(config.out / "summary.csv", "\n".join(lines) + "\n")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += [
        "| "
        + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
        + " |"
        for r in rows
    ]
    scores = _scores(config, runs, facts)
    if scores:
        md += ["", "| agent | bsuite experiment | score |", "|---|---|---|"] + [
            f"| {a} | {experiment} | {s:.2f} |" for (a, experiment), s in scores.items()
        ]
    md += _diverged_lines(config, runs)
    write_text(config.out / "summary.md", "\n".join(md) + "\n")
    if any(r["size"] != "" for r in rows):
        _plot_solve(config, rows, facts)
        _write_solve_runs(config, rows, scores)
        _write_bsuite_logs(config, runs, facts)
    return rows


def _left_out(finished: int, diverged: list[dict]) -> str:
    """The mean run's note on the seeds it leaves out ('' when none diverged)."""
    if not diverged:
        return ""
    seeds = ", ".join(str(int(r["seed"])) for r in diverged)
    return (
        f"{len(diverged)} of {finished + len(diverged)} seeds diverged and are left out of "
        f"this mean (seeds {seeds}); summary.md lists their errors"
    )


def _diverged_lines(config: RLConfig, runs) -> list[str]:
    """summary.md's list of diverged runs (none: no lines)."""
    return diverged_lines(
        runs,
        [e.label for e in config.envs],
        [a.label for a in config.agents],
        "env",
        "Diverged runs",
        "Left out of the means above (and not solved); the same command runs them again.",
    )


def _plot_solve(config: RLConfig, rows: list[dict], facts: dict[str, EnvFacts]) -> None:
    """solve.png: the median episode to solve over the seeds that solved, against N, per
    agent (a panel per bsuite experiment), with 2^N, the episodes dithering needs; a size
    that not every seed solved is labelled with the fraction that did, and one that no seed
    solved leaves a gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {label: f.experiment for label, f in facts.items() if f.experiment is not None}
    experiments = sorted(set(kinds.values()))
    fig, axes = plt.subplots(1, len(experiments), figsize=(6 * len(experiments), 4), squeeze=False)
    for ax, experiment in zip(axes[0], experiments, strict=True):
        mine = [r for r in rows if kinds.get(r["env"]) == experiment]
        sizes = sorted({r["size"] for r in mine})
        ax.plot(sizes, [2.0**n for n in sizes], "k--", label="2^N (dithering)")
        for a in config.agents:
            own = [r for r in mine if r["agent"] == a.label]
            pts = [(r["size"], r["episodes_to_solve"]) for r in own if r["episodes_to_solve"] != ""]
            if pts:
                ax.plot(*zip(*sorted(pts), strict=True), "o-", label=a.label)
            _label_partly_solved(ax, own)
        ax.set(title=experiment, xlabel="size N", ylabel="episodes to solve (median of solved)")
        ax.set(yscale="log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_bytes(config.out / "solve.png", figure_bytes(fig))


def _label_partly_solved(ax, rows: list[dict]) -> None:
    """Write 'k/n' above each plotted size that only k of its n seeds solved."""
    for r in rows:
        if r["episodes_to_solve"] != "" and r["solved_runs"] != r["runs"]:
            point = (r["size"], r["episodes_to_solve"])
            ax.annotate(r["solved"], point, xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=7)  # fmt: skip
