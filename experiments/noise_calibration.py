"""Calibration of IVI's draws on a linear-Gaussian bandit arm, against the exact posterior.

    python -m experiments.noise_calibration [--models K] [--seed S]

A linear reward y = x^T w + noise (P = 20 features, N = 12 observed contexts, noise std
sigma in {0, 0.5}), prior N(mu0, sigma0^2 I) = the model's initialisation (sigma0^2 = 1/P).
For each variant, K models (independent prior draws and codes, same data) are trained to
convergence by gradient descent on the exact expectation over z (the 2R draws +-sqrt(R) e_i).
Printed per variant: the mean absolute error of the draws' predictive mean (over contexts
and models), and the ratio of their predictive sd (the root of the variance averaged over
models: over the prior draw and the codes, as the theory states it) to the exact
posterior's, averaged over contexts, at the N seen contexts and at 200 unseen ones. Exact
posterior: mean (X^T X + sigma^2/sigma0^2 I)^-1 (X^T y +
sigma^2/sigma0^2 mu0), covariance sigma^2 (X^T X + sigma^2/sigma0^2 I)^-1; at sigma = 0 the
noiseless posterior, mean X^+ y + P_null mu0 and covariance sigma0^2 P_null.
"""

from __future__ import annotations

import argparse
import math

import torch

import ivi_rl
from ivi_rl.contrib import noise_aware

P, N, UNSEEN = 20, 12, 200
F64 = torch.float64
VARIANTS = {  # name: (anchor, perturbation)
    "plain IVI": (False, False),
    "perturbation only": (False, True),
    "anchor only": (True, False),
    "noise-aware (anchor + perturbation)": (True, True),
}


def fit(x, y, sigma, anchor, perturb, seed, steps=3000, lr=0.05):
    """One model from its prior draw: returns (prior mean, mean, factor)."""
    g = torch.Generator().manual_seed(seed)
    model = ivi_rl.make_mlp(P, 1, hidden=(), stochastic="last", cov="full", bias=False, dtype=F64)
    model.reset_parameters(g)
    prior_mean = ivi_rl.layer_gaussian(model.layers[0]).mean
    prior_anchor = noise_aware.PriorAnchor(model)
    opt = ivi_rl.make_optimizer(model, lr)
    codes = noise_aware.perturbation_codes((len(y),), model.noise_dim, generator=g, dtype=F64)
    basis = math.sqrt(model.noise_dim) * torch.eye(model.noise_dim, dtype=F64)
    noise = ivi_rl.Noise((torch.cat([basis, -basis]),), torch.Size([2 * model.noise_dim]))
    shift = {"perturbation": codes, "target_std": sigma} if perturb else {}
    for _ in range(steps):
        loss = noise_aware.noise_aware_loss(model, x, y[:, None], noise=noise, **shift)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if anchor:
            prior_anchor.proximal_step(opt, sigma**2 / len(y))
    q = ivi_rl.layer_gaussian(model.layers[0])
    return prior_mean, q.mean, q.factor


def exact(x, y, sigma, prior_mean):
    var0 = 1.0 / P
    if sigma == 0:
        pinv = torch.linalg.pinv(x)
        null = torch.eye(P, dtype=F64) - pinv @ x
        return pinv @ y + null @ prior_mean, var0 * null
    a = x.T @ x + sigma**2 / var0 * torch.eye(P, dtype=F64)
    mean = torch.linalg.solve(a, x.T @ y + sigma**2 / var0 * prior_mean)
    return mean, sigma**2 * torch.linalg.inv(a)


def calibration(sigma: float, models: int, seed: int) -> dict[str, list[float]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(P, generator=g, dtype=F64) / math.sqrt(P)
    x = torch.randn(N, P, generator=g, dtype=F64)
    y = x @ w + sigma * torch.randn(N, generator=g, dtype=F64)
    unseen = torch.randn(UNSEEN, P, generator=g, dtype=F64)
    rows = {}
    for name, (anchor, perturb) in VARIANTS.items():
        if sigma == 0 and (anchor or perturb):
            continue  # sigma = 0: every variant is plain IVI
        errors = torch.zeros(2, dtype=F64)
        variances = [torch.zeros(len(c), dtype=F64) for c in (x, unseen)]
        for k in range(models):
            prior_mean, mean, factor = fit(x, y, sigma, anchor, perturb, seed=1000 * seed + k)
            exact_mean, exact_cov = exact(x, y, sigma, prior_mean)
            for i, ctx in enumerate((x, unseen)):
                errors[i] += (ctx @ (mean - exact_mean)).abs().mean() / models
                variances[i] += (ctx @ factor).pow(2).sum(1) / models
        stats = []
        for i, ctx in enumerate((x, unseen)):
            sd_exact = torch.einsum("np,pq,nq->n", ctx, exact_cov, ctx).clamp_min(0).sqrt()
            sd = variances[i].sqrt()
            ratio = (sd / sd_exact).mean() if sd_exact.min() > 1e-9 else sd.mean()
            stats += [errors[i].item(), ratio.item()]
        rows[name] = stats
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=16, help="models per variant (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default 0)")
    args = parser.parse_args(argv)
    if args.models < 1:
        parser.error(f"--models={args.models} must be >= 1")
    print(
        "| sigma | variant | mean error, seen | sd / exact, seen | mean error, unseen "
        "| sd / exact, unseen |"
    )
    print("|---|---|---|---|---|---|")
    for sigma in (0.0, 0.5):
        for name, s in calibration(sigma, args.models, args.seed).items():
            seen_sd = f"{s[1]:.3f}" if sigma > 0 else f"{s[1]:.1e} (exact 0)"
            print(f"| {sigma} | {name} | {s[0]:.3f} | {seen_sd} | {s[2]:.3f} | {s[3]:.3f} |")


if __name__ == "__main__":
    main()
