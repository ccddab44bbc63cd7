"""Gaussian helpers for checking IVI against its theory.

For an overparametrised linear model f_w(x) = x^T w started at q0 = N(mu0, S0 S0^T), every
gradient of the expected squared loss w.r.t. mu and S lies in the row space of X, so SGD
converges to q* = N(X^+ y + P_null mu0, P_null S0 S0^T P_null) with P_null = I - X^+ X: the
2-Wasserstein-closest distribution to the prior among those that fit the data (Wenger et al.,
Theorem 1). :func:`linear_ivi_limit` computes it; :func:`wasserstein2` measures distances.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .linear import VariationalLinear

__all__ = ["Gaussian", "layer_gaussian", "linear_ivi_limit", "wasserstein2"]


class Gaussian(NamedTuple):
    mean: Tensor
    """[P]"""
    factor: Tensor
    """[P, R]; the covariance is factor @ factor.T"""

    @property
    def cov(self) -> Tensor:
        return self.factor @ self.factor.T


def layer_gaussian(layer: VariationalLinear) -> Gaussian:
    """The variational distribution of one layer over [vec(W), b] (a copy, no gradient)."""
    if layer.cov is None:
        raise ValueError("layer_gaussian needs a stochastic layer, but cov=None")
    with torch.no_grad():
        parts = [layer.weight.reshape(-1)]
        if layer.bias is not None:
            parts.append(layer.bias)
        return Gaussian(torch.cat(parts).clone(), layer.cov.factor().clone())


def linear_ivi_limit(x: Tensor, y: Tensor, prior: Gaussian) -> Gaussian:
    """Closed-form limit of IVI on a linear model y = x w with P > N, started at ``prior``."""
    if x.dim() != 2 or y.shape != x.shape[:1] or prior.mean.shape != x.shape[1:]:
        raise ValueError(
            f"expected x [N, P], y [N] and a prior over P parameters; got x {tuple(x.shape)}, "
            f"y {tuple(y.shape)}, prior mean {tuple(prior.mean.shape)}"
        )
    pinv = torch.linalg.pinv(x)
    null = torch.eye(x.shape[1], dtype=x.dtype, device=x.device) - pinv @ x
    return Gaussian(pinv @ y + null @ prior.mean, null @ prior.factor)


def wasserstein2(p: Gaussian, q: Gaussian) -> Tensor:
    """2-Wasserstein distance between N(m_p, S_p S_p^T) and N(m_q, S_q S_q^T), in float64.

    W2^2 = |m_p - m_q|^2 + tr(C_p) + tr(C_q) - 2 tr((C_q^{1/2} C_p C_q^{1/2})^{1/2}), and the last
    trace is the nuclear norm of S_q^T S_p (both square roots share its singular values), so
    no matrix square root of a singular covariance is needed. Cancellation limits the
    resolution to about 1e-8 for unit-scale covariances.
    """
    sp, sq = p.factor.double(), q.factor.double()
    if sp.shape[0] != sq.shape[0] or p.mean.shape != q.mean.shape:
        raise ValueError(
            f"the Gaussians live in different spaces: means {tuple(p.mean.shape)} and "
            f"{tuple(q.mean.shape)}, factors {tuple(sp.shape)} and {tuple(sq.shape)}"
        )
    cross = torch.linalg.matrix_norm(sq.T @ sp, ord="nuc")
    w2_sq = (p.mean.double() - q.mean.double()).pow(2).sum() + sp.pow(2).sum() + sq.pow(2).sum()
    return (w2_sq - 2 * cross).clamp_min(0.0).sqrt()
