"""IVI regression demo: the Wasserstein check and uncertainty away from the data.

    ivi-rl demo [--out DIR] [--quiet]

Part 1 trains an overparametrised linear model (P = 50 weights, N = 10 points, full-rank
factor covariance) by SGD on the expected loss, one weight sample per step, from the prior,
and compares it with the closed-form limit of Theorem 1 (Wenger et al.): the distribution
2-Wasserstein-closest to the prior among those that fit the data. Part 2 fits sin(3x) on
[-1, 1] with the default variational MLP and prints the predictive spread on and off the data.
A plot of part 2 is written to ``DIR/ivi_regression.png``. Exit status 1 if the check fails.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import ivi_rl

W2_TOLERANCE = 1e-6


class LinearModel(nn.Module):
    """f_w(x) = x^T w with w ~ N(mu, S S^T) and a full-rank factor S."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.layer = ivi_rl.VariationalLinear(
            num_features, 1, bias=False, cov="full", dtype=torch.float64
        )

    def forward(self, x, sample_shape=(), generator=None):
        return self.layer(x, sample_shape=sample_shape, generator=generator)


def fit_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float = 0.05,
    momentum: float = 0.0,
    steps: int = 12_000,
    weight_decay: float = 0.0,
    seed: int = 1,
    callback: Callable[[int, LinearModel], None] | None = None,
) -> tuple[ivi_rl.Gaussian, ivi_rl.Gaussian]:
    """Train a fresh :class:`LinearModel` by full-batch SGD, one weight sample per step.

    Returns (prior, trained distribution). ``callback(step, model)`` runs at step 0 (the
    prior) and after every step.
    """
    model = LinearModel(x.shape[1])
    prior = ivi_rl.layer_gaussian(model.layer)
    opt = ivi_rl.make_optimizer(model, lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    if callback is not None:
        callback(0, model)
    for step in range(1, steps + 1):
        loss = ivi_rl.expected_loss(model, x, y[:, None], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if callback is not None:
            callback(step, model)
    return prior, ivi_rl.layer_gaussian(model.layer)


def wasserstein_check(num_features: int = 50, num_points: int = 10, seed: int = 0) -> bool:
    """Part 1: print the distance to the theorem's limit along training; True if it holds."""
    torch.manual_seed(seed)
    x = torch.randn(num_points, num_features, dtype=torch.float64)
    y = torch.randn(num_points, dtype=torch.float64)
    print(f"Part 1: linear model, P={num_features} weights, N={num_points} points, full factor")
    print(f"{'step':>7} {'max|mu-mu*|':>12} {'max|S-S*|':>10} {'W2(q_t, q*)':>12}")
    limit: list[ivi_rl.Gaussian] = []

    def report(step: int, model: LinearModel) -> None:
        if step == 0:
            limit.append(ivi_rl.linear_ivi_limit(x, y, ivi_rl.layer_gaussian(model.layer)))
        if step in (0, 100, 1000, 3000, 6000, 12_000):
            q = ivi_rl.layer_gaussian(model.layer)
            mean_err = (q.mean - limit[0].mean).abs().max().item()
            factor_err = (q.factor - limit[0].factor).abs().max().item()
            w2 = ivi_rl.wasserstein2(q, limit[0]).item()
            print(f"{step:>7} {mean_err:>12.2e} {factor_err:>10.2e} {w2:>12.2e}")

    prior, q = fit_linear(x, y, callback=report)
    limit_q = ivi_rl.linear_ivi_limit(x, y, prior)
    w2_prior = ivi_rl.wasserstein2(prior, limit_q).item()
    w2_fit = ivi_rl.wasserstein2(q, limit_q).item()
    ok = w2_fit < W2_TOLERANCE
    print(f"W2(prior, q*) = {w2_prior:.3f};  W2(trained, q*) = {w2_fit:.1e}  (resolution ~1e-8)")
    print(f"Wasserstein check: {'PASS' if ok else 'FAIL'} (tolerance {W2_TOLERANCE:g})\n")
    return ok


def spread_demo(out: Path | None, steps: int = 3000, seed: int = 0) -> dict[float, float]:
    """Part 2: predictive std of the default MLP on and off the training interval.

    Returns the posterior std at x = -3, -2, ..., 3 (the data cover [-1, 1]).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 1, generator=gen) * 2 - 1
    y = torch.sin(3 * x)
    model = ivi_rl.make_mlp(1, 1, (64, 64))
    grid = torch.linspace(-3, 3, 121)[:, None]
    prior = model.predictive(grid, 500, torch.Generator().manual_seed(1))
    opt = ivi_rl.make_optimizer(model, 1e-2)
    for _ in range(steps):
        loss = ivi_rl.expected_loss(model, x, y, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    post = model.predictive(grid, 500, torch.Generator().manual_seed(1))
    print("Part 2: sin(3x) on [-1, 1], 64 points, make_mlp(1, 1, (64, 64)), 3000 SGD steps")
    print(f"{'x':>6} {'prior std':>10} {'posterior std':>14}")
    spread = {}
    for v in (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0):
        i = round((v + 3) * 20)
        spread[v] = post.std[i, 0].item()
        print(f"{v:>6.1f} {prior.std[i, 0].item():>10.3f} {spread[v]:>14.3f}")
    if out is not None:
        path = _plot(grid, post, x, y, model, out)
        print(f"plot: {path}")
    return spread


def _plot(grid, post, x, y, model, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draws = model(grid, sample_shape=(8,), generator=torch.Generator().manual_seed(2))
    fig, ax = plt.subplots(figsize=(7, 4))
    g, m, s = grid[:, 0], post.mean[:, 0].detach(), post.std[:, 0].detach()
    ax.fill_between(g, m - 2 * s, m + 2 * s, alpha=0.25, label="mean ± 2 std")
    ax.plot(g, draws[..., 0].detach().T, lw=0.7, alpha=0.6, color="C1")
    ax.plot(g, m, color="C0", label="predictive mean")
    ax.scatter(x[:, 0], y[:, 0], s=8, color="k", label="data", zorder=3)
    ax.set(
        xlabel="x",
        ylabel="f(x)",
        title="IVI posterior: certain on the data, uncertain away from it",
    )
    ax.set_ylim(-4, 4)
    ax.legend(loc="upper left")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ivi_regression.png"
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees a half-written plot
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ivi_regression"))
    parser.add_argument("--no-plot", action="store_true", help="skip part 2's plot")
    args = parser.parse_args(argv)
    ok = wasserstein_check()
    spread_demo(None if args.no_plot else args.out)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
