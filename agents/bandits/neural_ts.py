"""NeuralTS: Thompson sampling with the network's gradient as features (Zhang, Zhou, Li, Gu,
"Neural Thompson Sampling", ICLR 2021), with the diagonal approximation of the design matrix
that its reference code and common libraries use.

For arm a at context x the value is drawn from N(f_a(x), nu^2 lambda sum_j g_j^2 / U_j),
g = d f_a(x) / d theta, and after each decision U += g_{a_t}^2 for the pulled arm, starting
from U = lambda. The network (one output per arm) is trained on the Showdown schedule with the
same RMSProp trainer as the other point-estimate baselines (``rms.py``); the reference code
trains with plain SGD and weight decay instead, a difference in the mean network only.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .rms import RMSNetworkAgent, RMSSettings

__all__ = ["NeuralTS", "NeuralTSSettings"]


@dataclasses.dataclass(frozen=True)
class NeuralTSSettings(RMSSettings):
    nu: float = 0.1
    """Exploration scale: the sampled value's std is nu times the gradient-feature std."""
    lam: float = 1.0
    """lambda: the initial diagonal of U and the factor of the variance."""


class NeuralTS(RMSNetworkAgent):
    name = "neural_ts"
    settings_class = NeuralTSSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        if not (s.nu > 0 and s.lam > 0):
            raise ValueError(f"agent 'neural_ts': nu={s.nu!r} and lam={s.lam!r} must be > 0")
        self.design = [torch.full_like(p, s.lam) for p in self.net.parameters()]
        """Diagonal of U per parameter tensor, stacked over trials like the network."""
        self._eye = torch.eye(num_actions, device=self.device, dtype=self.dtype)

    def _mean_and_gradients(self, contexts: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Values [S, k] and, per parameter tensor, every arm's gradient [k, S, ...]: one
        backward pass batched over arms (trials are independent models, so each trial's
        slice of the gradient of sum_s f_s,a is its own)."""
        params = self.net.parameters()
        with torch.enable_grad():
            values = self.net(contexts[:, None, :])[:, 0]
            seeds = self._eye[:, None, :].expand(-1, self.num_trials, -1)
            grads = torch.autograd.grad(values, params, seeds, is_grads_batched=True)
        return values.detach(), list(grads)

    def _spread(self, grads: list[Tensor]) -> Tensor:
        """[S, k] std of every arm's sampled value."""
        var = sum(
            (g.pow(2) / u).flatten(2).sum(-1) for g, u in zip(grads, self.design, strict=True)
        )
        return (self.settings.nu**2 * self.settings.lam * var).sqrt().T

    def posterior_values(self, contexts, num_samples, streams) -> Tensor:
        mean, grads = self._mean_and_gradients(contexts)
        eps = streams.normal(num_samples, self.num_actions, dtype=self.dtype).transpose(0, 1)
        return mean + self._spread(grads) * eps

    def _act(self, contexts: Tensor) -> Tensor:
        mean, grads = self._mean_and_gradients(contexts)
        eps = self.act_streams.normal(self.num_actions, dtype=self.dtype)
        actions = (mean + self._spread(grads) * eps).argmax(-1)
        rows = torch.arange(self.num_trials, device=self.device)
        for u, g in zip(self.design, grads, strict=True):
            u += g[actions, rows].pow(2)
        return actions
