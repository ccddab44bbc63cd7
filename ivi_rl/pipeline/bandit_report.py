"""Aggregate finished bandit runs: summary.csv / summary.md / mean_rank.csv, the mean-curve
TensorBoard runs and regret.png. Everything is rebuilt from the per-trial result files, so a
resumed experiment reports exactly what a single uninterrupted one would.

Diverged trials (:mod:`ivi_rl.pipeline.store`) are left out of every mean, and visibly so: a
cell's regret is over its finished seeds with "k of n seeds diverged" next to it, summary.md
lists each diverged trial with its step and error, the plot's legend and the TensorBoard mean
run say how many seeds they leave out. A cell with a diverged seed ranks below every cell of
its dataset whose seeds all finished (a mean over the survivors would flatter it)."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from .atomic import write_bytes, write_text
from .bandit_config import BanditConfig
from .store import diverged_lines, figure_bytes, load_runs, split_diverged
from .tb_compare import MeanRun, layout, mean_and_se, write_mean_run

__all__ = ["COLUMNS", "report"]

COLUMNS = [
    "dataset",
    "agent",
    "seeds",
    "diverged",
    "regret_mean",
    "regret_se",
    "normalized",
    "normalized_se",
    "rank",
    "wall_s",
]


def _load(config: BanditConfig) -> dict[tuple[str, str], list[dict[str, np.ndarray]]]:
    return load_runs(
        config.out,
        [d.label for d in config.datasets],
        [a.label for a in config.agents],
        config.seeds,
    )


def _rows(config: BanditConfig, runs) -> list[dict]:
    uniform = next((a.label for a in config.agents if a.name == "uniform"), None)
    rows = []
    for ds in config.datasets:
        base = None
        if uniform and split_diverged(runs[ds.label, uniform])[0]:
            finished = split_diverged(runs[ds.label, uniform])[0]
            base = np.mean([r["cumulative_regret"][-1] for r in finished])
        block = [
            _row(ds.label, ag.label, *split_diverged(runs[ds.label, ag.label]), base)
            for ag in config.agents
            if runs[ds.label, ag.label]
        ]
        # complete cells first, by regret; then cells with a diverged seed, by regret
        keys = [(r["diverged"] > 0, _or_inf(r["regret_mean"])) for r in block]
        order = sorted(range(len(block)), key=lambda i: keys[i])
        for rank, i in enumerate(order, start=1):
            block[i]["rank"] = rank
        rows.extend(block)
    return rows


def _row(dataset: str, agent: str, finished: list, diverged: list, base) -> dict:
    finals = np.array([r["cumulative_regret"][-1] for r in finished])
    se = finals.std(ddof=1) / np.sqrt(finals.size) if finals.size > 1 else float("nan")
    mean = float(finals.mean()) if finals.size else ""
    return {
        "dataset": dataset,
        "agent": agent,
        "seeds": int(finals.size),
        "diverged": len(diverged),
        "regret_mean": mean,
        "regret_se": float(se) if finals.size else "",
        "normalized": "" if not base or mean == "" else 100 * mean / base,
        "normalized_se": "" if not base or mean == "" else 100 * se / base,
        "wall_s": float(np.mean([r["wall_s"] for r in finished])) if finished else "",
    }


def _or_inf(value) -> float:
    return float("inf") if value == "" else value


def _mean_ranks(rows: list[dict]) -> list[tuple[str, float, int]]:
    agents = dict.fromkeys(r["agent"] for r in rows)
    out = []
    for agent in agents:
        ranks = [r["rank"] for r in rows if r["agent"] == agent]
        out.append((agent, float(np.mean(ranks)), len(ranks)))
    return sorted(out, key=lambda x: x[1])


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.2f}" if abs(value) < 1e5 else f"{value:.4g}"
    return str(value)


def _write_tables(config: BanditConfig, rows: list[dict], runs) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text(config.out / "summary.csv", buffer.getvalue())
    ranks = _mean_ranks(rows)
    write_text(
        config.out / "mean_rank.csv",
        "agent,mean_rank,datasets\n" + "".join(f"{a},{m:.3f},{n}\n" for a, m, n in ranks),
    )
    lines = [
        "| dataset | agent | seeds | regret (mean ± s.e.) | normalized (Uniform = 100) | rank "
        "| wall s / trial |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        norm = (
            "" if r["normalized"] == "" else f"{r['normalized']:.2f} ± {_fmt(r['normalized_se'])}"
        )
        regret = (
            "" if r["regret_mean"] == "" else f"{_fmt(r['regret_mean'])} ± {_fmt(r['regret_se'])}"
        )
        if r["diverged"]:
            regret += f" ({r['diverged']} of {r['seeds'] + r['diverged']} seeds diverged)"
        wall = "" if r["wall_s"] == "" else f"{r['wall_s']:.1f}"
        lines.append(
            f"| {r['dataset']} | {r['agent']} | {r['seeds']} | {regret.strip()} | {norm} "
            f"| {r['rank']} | {wall} |"
        )
    lines += ["", "| agent | mean rank | datasets |", "|---|---|---|"]
    lines += [f"| {a} | {m:.2f} | {n} |" for a, m, n in ranks]
    lines += _diverged_lines(config, runs)
    write_text(config.out / "summary.md", "\n".join(lines) + "\n")


def _diverged_lines(config: BanditConfig, runs) -> list[str]:
    """summary.md's list of diverged trials (none: no lines)."""
    return diverged_lines(
        runs,
        [ds.label for ds in config.datasets],
        [ag.label for ag in config.agents],
        "dataset",
        "Diverged trials",
        "Left out of the means above and ranked below the cells whose seeds all finished; "
        "the same command runs them again.",
    )


LAYOUT_TITLE = "cumulative regret, mean ± s.e. over seeds, one line per agent"


def _write_mean_runs(config: BanditConfig, runs, rows: list[dict]) -> None:
    by_key = {(r["dataset"], r["agent"]): r for r in rows}
    specs = {a.label: a for a in config.agents}
    charts = [(ds.label, ds.label, "cumulative_regret") for ds in config.datasets]
    custom = layout(LAYOUT_TITLE, charts)
    for (ds, ag), found in runs.items():
        finished, diverged = split_diverged(found)
        if not found:
            continue
        curves = {
            "regret/cumulative": np.array([r["cumulative_regret"] for r in finished]),
            "actions/optimal_fraction": np.array([r["optimal_fraction"] for r in finished]),
        }
        run = MeanRun(
            ds,
            finished[0]["log_steps"] if finished else np.zeros(0, dtype=int),
            curves if finished else {},
            {"regret/cumulative": "cumulative_regret"},
            _hparams(ds, specs[ag]),
            _metrics(by_key[ds, ag]),
            _left_out(len(finished), diverged),
        )
        write_mean_run(config.out / "tb" / ds / ag / "mean", run, custom)
        custom = None  # the layout is read from any run; written once


def _left_out(finished: int, diverged: list[dict]) -> str:
    """The mean run's note on the seeds it leaves out ('' when none diverged)."""
    if not diverged:
        return ""
    seeds = ", ".join(str(int(r["seed"])) for r in diverged)
    total = finished + len(diverged)
    return (
        f"{len(diverged)} of {total} seeds diverged and are left out of this mean "
        f"(seeds {seeds}); summary.md lists their errors"
    )


def _hparams(dataset: str, agent) -> dict:
    """The agent's settings, defaults included, for TensorBoard's HParams table."""
    from ivi_rl.agents.bandits import agent_classes
    from ivi_rl.agents.bandits.base import build_settings

    cls = agent_classes()[agent.name]
    settings = build_settings(cls.settings_class, agent.name, dict(agent.settings))
    params = {"dataset": dataset, "agent": agent.name, "label": agent.label}
    return params | dict(sorted(dataclasses.asdict(settings).items()))


def _metrics(row: dict) -> dict[str, float]:
    metrics = {"final/rank": float(row["rank"]), "final/diverged_seeds": float(row["diverged"])}
    if row["regret_mean"] != "":
        metrics["final/regret"] = row["regret_mean"]
    if row["normalized"] != "":
        metrics["final/normalized_regret"] = float(row["normalized"])
    return metrics


def _plot(config: BanditConfig, runs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(config.datasets)
    cols = min(n, 3)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols,
        cols,
        figsize=(5 * cols, 3.6 * ((n + cols - 1) // cols)),
        squeeze=False,
    )
    for ax, ds in zip(axes.flat, config.datasets, strict=False):
        any_diverged = False
        for ag in config.agents:
            finished, diverged = split_diverged(runs[ds.label, ag.label])
            any_diverged = any_diverged or bool(diverged)
            label = ag.label
            if diverged:
                label += f" ({len(diverged)} of {len(finished) + len(diverged)} seeds diverged)"
            if not finished:
                ax.plot([], [], linestyle="none", label=label)  # in the legend, with no line
                continue
            mean, se = mean_and_se(np.array([r["cumulative_regret"] for r in finished]))
            steps = finished[0]["log_steps"]
            ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        ax.set(title=ds.label, xlabel="step", ylabel="cumulative regret")
        if any_diverged or ax is axes.flat[0]:  # the first legend, and each naming divergence
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    write_bytes(config.out / "regret.png", figure_bytes(fig))


def report(config: BanditConfig) -> list[dict]:
    """Write every aggregate of ``config``'s finished runs; returns the summary rows."""
    runs = _load(config)
    rows = _rows(config, runs)
    _write_tables(config, rows, runs)
    _write_mean_runs(config, runs, rows)
    _plot(config, runs)
    return rows


def read_summary(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))
