"""Exact Bayesian linear regression per (trial, arm) with a Normal-Inverse-Gamma prior.

    sigma^2 ~ InvGamma(a0, b0),  beta | sigma^2 ~ N(0, sigma^2 / lambda I)

Posterior after rows X (with y): precision P = lambda I + X^T X, mean mu = P^{-1} X^T y,
a = a0 + n / 2, b = b0 + (y^T y - mu^T P mu) / 2. Thompson sampling draws sigma^2 and then
beta ~ N(mu, sigma^2 P^{-1}) jointly (the Showdown's LinFullPost). Everything is float64
(the Showdown reproductions note float32 is not enough), kept as sufficient statistics, with
the Cholesky factor of P refreshed only for the arm each trial pulled.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .streams import TrialStreams

__all__ = ["LinearPosterior"]


class LinearPosterior:
    def __init__(
        self,
        num_trials: int,
        num_actions: int,
        dim: int,
        *,
        a0: float,
        b0: float,
        lambda_prior: float,
        intercept: bool,
        device: torch.device,
    ) -> None:
        for name, value in (("a0", a0), ("b0", b0), ("lambda_prior", lambda_prior)):
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be positive")
        self.intercept = intercept
        self.dim = dim + int(intercept)
        self.a0, self.b0, self.lam = a0, b0, lambda_prior
        s, k, d = num_trials, num_actions, self.dim
        kw = {"device": device, "dtype": torch.float64}
        self.xtx = torch.zeros(s, k, d, d, **kw)
        self.xty = torch.zeros(s, k, d, **kw)
        self.yty = torch.zeros(s, k, **kw)
        self.count = torch.zeros(s, k, **kw)
        self.eye = torch.eye(d, **kw)
        self.chol = torch.linalg.cholesky(self.lam * self.eye).expand(s, k, d, d).clone()
        self.mean = torch.zeros(s, k, d, **kw)

    def _augment(self, x: Tensor) -> Tensor:
        x = x.to(torch.float64)
        if self.intercept:
            x = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
        return x

    def update(self, x: Tensor, actions: Tensor, y: Tensor) -> None:
        """Add one row per trial, x [S, d] with reward y [S], to the pulled arm."""
        x, y = self._augment(x), y.to(torch.float64)
        rows = torch.arange(x.shape[0], device=x.device)
        self.xtx[rows, actions] += x[:, :, None] * x[:, None, :]
        self.xty[rows, actions] += x * y[:, None]
        self.yty[rows, actions] += y * y
        self.count[rows, actions] += 1
        self._refresh(rows, actions)

    def rebuild(self, x: Tensor, actions: Tensor, y: Tensor) -> None:
        """Recompute every arm from all rows: x [S, n, d], actions [S, n], y [S, n]."""
        x, y = self._augment(x), y.to(torch.float64)
        onehot = torch.nn.functional.one_hot(actions, self.xtx.shape[1]).to(torch.float64)
        self.xtx = torch.einsum("snk,snd,sne->skde", onehot, x, x)
        self.xty = torch.einsum("snk,snd,sn->skd", onehot, x, y)
        self.yty = torch.einsum("snk,sn->sk", onehot, y * y)
        self.count = onehot.sum(1)
        s, k = self.count.shape
        rows = torch.arange(s, device=x.device).repeat_interleave(k)
        arms = torch.arange(k, device=x.device).repeat(s)
        self._refresh(rows, arms)

    def _refresh(self, rows: Tensor, arms: Tensor) -> None:
        precision = self.lam * self.eye + self.xtx[rows, arms]
        chol = torch.linalg.cholesky(precision)
        self.chol[rows, arms] = chol
        self.mean[rows, arms] = torch.cholesky_solve(self.xty[rows, arms][..., None], chol)[..., 0]

    @property
    def shape_a(self) -> Tensor:
        return self.a0 + self.count / 2

    @property
    def scale_b(self) -> Tensor:
        fit = (self.mean * self.xty).sum(-1)  # mu^T P mu = mu^T X^T y
        return self.b0 + 0.5 * (self.yty - fit).clamp_min(0.0)

    def covariance(self) -> Tensor:
        """P^{-1} for every (trial, arm): [S, k, D, D] (for tests and inspection)."""
        return torch.cholesky_inverse(self.chol)

    def sample(self, streams: TrialStreams, num_samples: int = 1) -> Tensor:
        """Joint draws (sigma^2, beta): betas [K, S, k, D]."""
        s, k, d = self.mean.shape
        a = self.shape_a[:, None, :].expand(s, num_samples, k).contiguous()
        sigma2 = self.scale_b[None] / streams.gamma(a).transpose(0, 1)  # b / Gamma(a): [K, S, k]
        eps = streams.normal(num_samples, k, d, dtype=torch.float64).transpose(0, 1)  # [K, S, k, D]
        # beta = mu + sigma L^{-T} eps has covariance sigma^2 (L L^T)^{-1} = sigma^2 P^{-1}
        white = torch.linalg.solve_triangular(
            self.chol.transpose(-1, -2).expand(num_samples, s, k, d, d), eps[..., None], upper=True
        )[..., 0]
        return self.mean + sigma2.sqrt()[..., None] * white

    def values(self, x: Tensor, betas: Tensor) -> Tensor:
        """Arm values [K, S, k] of contexts x [S, d] under betas [K, S, k, D]."""
        return torch.einsum("sd,jskd->jsk", self._augment(x), betas)
