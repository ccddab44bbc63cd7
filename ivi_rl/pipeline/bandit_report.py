"""Aggregate finished bandit runs: summary.csv / summary.md / mean_rank.csv, the mean-curve
TensorBoard runs and regret.png. Everything is rebuilt from the per-trial result files, so a
resumed experiment reports exactly what a single uninterrupted one would."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from .atomic import write_bytes, write_text
from .bandit_config import BanditConfig
from .store import figure_bytes, load_runs
from .tb_compare import MeanRun, layout, mean_and_se, write_mean_run

__all__ = ["COLUMNS", "report"]

COLUMNS = [
    "dataset",
    "agent",
    "seeds",
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
        if uniform and runs[ds.label, uniform]:
            base = np.mean([r["cumulative_regret"][-1] for r in runs[ds.label, uniform]])
        block = []
        for ag in config.agents:
            finals = np.array([r["cumulative_regret"][-1] for r in runs[ds.label, ag.label]])
            if not finals.size:
                continue
            se = finals.std(ddof=1) / np.sqrt(finals.size) if finals.size > 1 else float("nan")
            block.append(
                {
                    "dataset": ds.label,
                    "agent": ag.label,
                    "seeds": int(finals.size),
                    "regret_mean": float(finals.mean()),
                    "regret_se": float(se),
                    "normalized": "" if not base else 100 * finals.mean() / base,
                    "normalized_se": "" if not base else 100 * se / base,
                    "wall_s": float(np.mean([r["wall_s"] for r in runs[ds.label, ag.label]])),
                }
            )
        order = np.argsort(
            np.argsort([r["regret_mean"] for r in block], kind="stable"), kind="stable"
        )
        for row, rank in zip(block, order, strict=True):
            row["rank"] = int(rank) + 1
        rows.extend(block)
    return rows


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


def _write_tables(config: BanditConfig, rows: list[dict]) -> None:
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
        lines.append(
            f"| {r['dataset']} | {r['agent']} | {r['seeds']} | {_fmt(r['regret_mean'])} ± "
            f"{_fmt(r['regret_se'])} | {norm} | {r['rank']} | {r['wall_s']:.1f} |"
        )
    lines += ["", "| agent | mean rank | datasets |", "|---|---|---|"]
    lines += [f"| {a} | {m:.2f} | {n} |" for a, m, n in ranks]
    write_text(config.out / "summary.md", "\n".join(lines) + "\n")


LAYOUT_TITLE = "cumulative regret, mean ± s.e. over seeds, one line per agent"


def _write_mean_runs(config: BanditConfig, runs, rows: list[dict]) -> None:
    by_key = {(r["dataset"], r["agent"]): r for r in rows}
    specs = {a.label: a for a in config.agents}
    charts = [(ds.label, ds.label, "cumulative_regret") for ds in config.datasets]
    custom = layout(LAYOUT_TITLE, charts)
    for (ds, ag), found in runs.items():
        if not found:
            continue
        run = MeanRun(
            ds,
            found[0]["log_steps"],
            {
                "regret/cumulative": np.array([r["cumulative_regret"] for r in found]),
                "actions/optimal_fraction": np.array([r["optimal_fraction"] for r in found]),
            },
            {"regret/cumulative": "cumulative_regret"},
            _hparams(ds, specs[ag]),
            _metrics(by_key[ds, ag]),
        )
        write_mean_run(config.out / "tb" / ds / ag / "mean", run, custom)
        custom = None  # the layout is read from any run; written once


def _hparams(dataset: str, agent) -> dict:
    """The agent's settings, defaults included, for TensorBoard's HParams table."""
    from ivi_rl.agents.bandits import AGENTS
    from ivi_rl.agents.bandits.base import build_settings

    settings = build_settings(AGENTS[agent.name].settings_class, agent.name, dict(agent.settings))
    params = {"dataset": dataset, "agent": agent.name, "label": agent.label}
    return params | dict(sorted(dataclasses.asdict(settings).items()))


def _metrics(row: dict) -> dict[str, float]:
    metrics = {"final/regret": row["regret_mean"], "final/rank": float(row["rank"])}
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
        for ag in config.agents:
            found = runs[ds.label, ag.label]
            if not found:
                continue
            mean, se = mean_and_se(np.array([r["cumulative_regret"] for r in found]))
            steps = found[0]["log_steps"]
            ax.plot(steps, mean, label=ag.label)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        ax.set(title=ds.label, xlabel="step", ylabel="cumulative regret")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    write_bytes(config.out / "regret.png", figure_bytes(fig))


def report(config: BanditConfig) -> list[dict]:
    """Write every aggregate of ``config``'s finished runs; returns the summary rows."""
    runs = _load(config)
    rows = _rows(config, runs)
    _write_tables(config, rows)
    _write_mean_runs(config, runs, rows)
    _plot(config, runs)
    return rows


def read_summary(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))
