"""Aggregate finished RL runs: summary.csv / summary.md (episodes to solve, bsuite score,
final and greedy returns, cost per step) and solve.png. Rebuilt from the result files.

A diverged run (:mod:`ivi_rl.pipeline.store`) is left out of every mean, counted in the
``diverged`` column, listed with its step and error in summary.md, named in the TensorBoard
mean run's note, and counts as not solved in the Deep Sea columns and the bsuite score."""

from __future__ import annotations

import contextlib

import numpy as np

from ivi_rl import envs

from .atomic import write_bytes, write_text
from .rl_config import RLConfig, agent_on, known_optimal_return, make_env
from .store import figure_bytes, load_runs, split_diverged
from .tb_compare import MeanRun, layout, write_mean_run

__all__ = ["report"]


def _load(config: RLConfig) -> dict[tuple[str, str], list[dict]]:
    envs_, agents = [e.label for e in config.envs], [a.label for a in config.agents]
    return load_runs(config.out, envs_, agents, config.seeds)


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
    return {
        "env": env,
        "agent": agent,
        "size": "" if size < 0 else size,
        "seeds": len(found),
        "diverged": len(diverged),
        "solved": f"{len(solved)}/{runs}" if size > 0 else "",
        "good_episodes": float(np.mean([(~r["bad"]).sum() for r in found]))
        if size > 0 and found
        else "",
        "episodes_to_solve": float(np.median(solved)) if solved else "",
        "final_return": float(np.mean(returns)) if returns else "",
        "eval_return": _mean_eval(found),
        "best_eval_return": _mean_eval(found, best=True),
        "steps": int(np.mean([r["steps"] for r in found])) if found else "",
        "us_per_step": float(1e6 * np.mean([r["wall_s"] / max(int(r["steps"]), 1) for r in found]))
        if found
        else "",
    }


def _mean_eval(found: list[dict], best: bool = False) -> float | str:
    """Mean over seeds of the greedy policy's mean return: the final evaluation's, or the best
    evaluation's with ``best`` ('' without evaluations)."""
    means = [r["eval_returns"].mean(1) for r in found if r.get("eval_returns", np.zeros(0)).size]
    if not means:
        return ""
    return float(np.mean([m.max() if best else m[-1] for m in means]))


def _scores(config: RLConfig, runs) -> dict[str, float]:
    """bsuite Deep Sea score per agent, averaged over seeds (over the sizes in the config)."""
    scores = {}
    for a in config.agents:
        per_seed = []
        for seed in config.seeds:
            sizes = {
                int(r["size"]): int(r["solved"]) if int(r.get("solved", -1)) > 0 else None
                for e in config.envs
                for r in runs[e.label, a.label]  # a diverged record has no solve: None
                if int(r["seed"]) == seed and int(r["size"]) > 0
            }
            if sizes:
                per_seed.append(envs.deep_sea_score(sizes))
        if per_seed:
            scores[a.label] = float(np.mean(per_seed))
    return scores


RETURN_WINDOW = 10
"""Episodes in the moving mean of the return that the comparison charts show."""


def _write_mean_runs(config: RLConfig, runs, rows: list[dict]) -> None:
    """TensorBoard's comparison view (:mod:`ivi_rl.pipeline.tb_compare`), by episode: the
    return (moving mean over 10 episodes) and, where the optimal return is known (Deep Sea),
    the cumulative regret, mean ± s.e. over seeds. A run stopped at its solve episode ends
    early, so a mean run covers the episodes every seed ran."""
    by_key = {(r["env"], r["agent"]): r for r in rows}
    specs = {a.label: a for a in config.agents}
    optimal = {e.label: _optimal(e) for e in config.envs}
    charts = []
    for e in config.envs:
        charts.append((f"{e.label} return", e.label, "return"))
        if optimal[e.label] is not None:
            charts.append((f"{e.label} cumulative regret", e.label, "cumulative_regret"))
    custom = layout("by episode, mean ± s.e. over seeds, one line per agent", charts)
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


def _optimal(spec) -> float | None:
    with contextlib.closing(make_env(spec)) as env:
        return known_optimal_return(env)


def _moving_mean(curves: np.ndarray, window: int) -> np.ndarray:
    """Mean of each row's last ``window`` values (fewer at the start)."""
    sums = np.cumsum(curves, axis=1)
    lagged = np.concatenate([np.zeros((len(curves), window)), sums], axis=1)[:, : sums.shape[1]]
    counts = np.minimum(np.arange(1, sums.shape[1] + 1), window)
    return (sums - lagged) / counts


def _metrics(row: dict) -> dict[str, float]:
    """The summary row's final numbers that exist, for the HParams table."""
    metrics = {"final/diverged_seeds": float(row["diverged"])}
    for key in ("final_return", "us_per_step", "eval_return", "episodes_to_solve", "good_episodes"):
        if row[key] != "":
            metrics[f"final/{key.removeprefix('final_')}"] = float(row[key])
    if row["solved"]:
        solved, seeds = row["solved"].split("/")
        metrics["final/solved_fraction"] = int(solved) / int(seeds)
    return metrics


def report(config: RLConfig) -> list[dict]:
    runs = _load(config)
    rows = _rows(config, runs)
    _write_mean_runs(config, runs, rows)
    cols = [
        "env",
        "agent",
        "size",
        "seeds",
        "diverged",
        "solved",
        "episodes_to_solve",
        "good_episodes",
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
    scores = _scores(config, runs)
    if scores:
        md += ["", "| agent | bsuite Deep Sea score |", "|---|---|"] + [
            f"| {a} | {s:.2f} |" for a, s in scores.items()
        ]
    md += _diverged_lines(config, runs)
    write_text(config.out / "summary.md", "\n".join(md) + "\n")
    if any(r["size"] != "" for r in rows):
        _plot_solve(config, rows)
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
    found = [
        (e.label, a.label, r)
        for e in config.envs
        for a in config.agents
        for r in split_diverged(runs[e.label, a.label])[1]
    ]
    if not found:
        return []
    lines = [
        "",
        f"## Diverged runs ({len(found)})",
        "",
        "Left out of the means above (and not solved); the same command runs them again.",
        "",
        "| env | agent | seed | step | error |",
        "|---|---|---|---|---|",
    ]
    for env, agent, r in found:
        lines.append(f"| {env} | {agent} | {int(r['seed'])} | {int(r['step'])} | {r['message']} |")
    return lines


def _plot_solve(config: RLConfig, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = sorted({r["size"] for r in rows if r["size"] != ""})
    ax.plot(sizes, [2.0**n for n in sizes], "k--", label="2^N (dithering)")
    for a in config.agents:
        pts = [
            (r["size"], r["episodes_to_solve"])
            for r in rows
            if r["agent"] == a.label and r["episodes_to_solve"] != ""
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=a.label)
    ax.set(xlabel="Deep Sea size N", ylabel="episodes to solve (median)", yscale="log")
    ax.legend(fontsize=8)
    write_bytes(config.out / "solve.png", figure_bytes(fig))
