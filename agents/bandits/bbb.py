"""BBB: mean-field Gaussian Bayes-by-Backprop (Blundell et al. 2015), the Showdown's
'Variational' baseline. Trained on the per-datum negative ELBO, Gaussian likelihood with a
fixed noise std, KL(q || p) weighted by 1 / N for the N data points so far; one weight draw
per decision. The posterior std starts small (``init_posterior_std``), as BBB usually does,
while the prior is N(0, init std^2) of the standard parametrization."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

import ivi_rl

from .base import BanditAgent, NeuralSettings
from .models import VmappedVariational
from .streams import BlockedNormal, TrialStreams

__all__ = ["BBB", "BBBSettings"]


@dataclasses.dataclass(frozen=True)
class BBBSettings(NeuralSettings):
    lr: float = 0.001
    """Adam learning rate. Keep it below ``init_posterior_std``: Adam's first step has size lr,
    and a scale stepped onto exactly 0 makes log det infinite."""
    noise_std: float = 0.1
    """Likelihood noise std (the Showdown's setting)."""
    prior_std: float = 0.0
    """Std of the N(0, prior_std^2) prior; 0 uses each weight's init std."""
    init_posterior_std: float = 0.01
    """Initial std of every weight's posterior."""


class BBB(BanditAgent):
    name = "bbb"
    settings_class = BBBSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        prior = s.prior_std or None

        def elbo(model, pred: Tensor, y: Tensor, mask: Tensor, num_data: float) -> Tensor:
            nll = ivi_rl.per_datum_loss(pred, y, "gaussian", mask=mask, noise_std=s.noise_std)
            return nll.mean() + ivi_rl.kl_divergence(model, prior) / num_data

        def make() -> ivi_rl.VariationalMLP:
            return ivi_rl.make_mlp(
                context_dim,
                num_actions,
                s.hidden,
                stochastic="all",
                cov="diagonal",
                parametrization="sp",
                device=self.device,
                dtype=self.dtype,
            )

        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = VmappedVariational(make, elbo, init)
        with torch.no_grad():
            for name, p in self.net.params.items():
                if name.endswith("_scale"):
                    p.fill_(s.init_posterior_std)
        self.decision_noise = BlockedNormal(self.act_streams, [self.net.noise_dim], self.dtype)
        self.opt = self.net.optimizer(s.lr, "adam")

    def posterior_values(self, contexts: Tensor, num_samples: int, streams) -> Tensor:
        z = streams.normal(num_samples, self.net.noise_dim, dtype=self.dtype)
        with torch.no_grad():
            return self.net.predict(contexts[:, None, :], z)[:, :, 0].transpose(0, 1)

    def _act(self, contexts: Tensor) -> Tensor:
        with torch.no_grad():
            return self.net.predict(contexts[:, None, :], self.decision_noise())[:, 0].argmax(-1)

    def _train(self) -> Tensor:
        s = self.settings
        total = torch.zeros(self.num_trials, device=self.device)
        for _ in range(s.train_steps):
            idx = self.buffer.sample_indices(self.train_streams, s.batch_size)
            ctx, actions, rewards = self.buffer.gather(idx)
            mask = torch.nn.functional.one_hot(actions, self.num_actions).to(self.dtype)
            y = rewards[..., None].expand(-1, -1, self.num_actions)
            z = self.train_streams.normal(self.net.noise_dim, dtype=self.dtype)
            loss = self.net.loss(ctx, z, y, mask, float(self.t))
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opt.step()
            total += loss.detach()
        return total / s.train_steps
