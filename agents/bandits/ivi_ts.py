"""IVI Thompson sampling: the hero agent.

A variational network with one output per arm (``ivi_rl.make_mlp``: by default input and
output layers low-rank Gaussian, muP) is trained by SGD on the *expected* masked squared
error only (the pulled arm's output; no KL, no prior term, no weight decay), starting from
the prior, which is the initialisation. Every decision draws one network from the posterior
and acts greedily on it. Retraining follows the Showdown schedule (every ``train_every``
steps, ``train_steps`` minibatch steps on all data so far), either continuing from the current
posterior (``warm_start``) or restarting from the trial's prior draw.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

import ivi_rl

from .base import BanditAgent, NeuralSettings
from .models import VmappedVariational
from .streams import BlockedNormal, TrialStreams

__all__ = ["IVITS", "IVITSSettings"]


@dataclasses.dataclass(frozen=True)
class IVITSSettings(NeuralSettings):
    lr: float = 0.01
    """Base SGD learning rate; each parameter group scales it by its muP multiplier."""
    momentum: float = 0.9
    """SGD momentum (the paper's setting)."""
    stochastic: Literal["input_output", "last", "all"] = "input_output"
    """Which layers carry a covariance (``ivi_rl.make_mlp``)."""
    cov: Literal["auto", "lowrank", "diagonal", "full"] = "auto"
    rank: int = 10
    """Rank of 'lowrank' factors (capped at each layer's size)."""
    parametrization: Literal["mup", "sp"] = "mup"
    warm_start: bool = True
    """Continue each retrain from the current posterior; False restarts from the prior draw."""
    reward_scaling: Literal["none", "standardize"] = "standardize"
    """'standardize': fit (r - mean) / std of all rewards so far (argmax is unchanged)."""
    input_scaling: Literal["none", "standardize", "scale"] = "scale"
    """Input normalisation from all contexts seen at the latest retrain (used for decisions
    too): 'standardize' z-scores every feature; 'scale' centres every feature and divides by
    one scalar, the root mean per-feature variance (rare one-hot categories stay small). muP
    assumes O(1) inputs: raw jester ratings (+-10) or price changes (+-50) otherwise make the
    input layer's SGD step (x fan_out) diverge."""
    num_samples: int = 1
    """Weight samples per training step (M; the paper uses 1)."""


def _expected_mse(model, pred: Tensor, y: Tensor, mask: Tensor, extra: float) -> Tensor:
    return ivi_rl.per_datum_loss(pred, y, "mse", mask=mask).mean()


class IVITS(BanditAgent):
    name = "ivi_ts"
    settings_class = IVITSSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        cov = s.cov if s.cov != "auto" else ("diagonal" if s.stochastic == "all" else "lowrank")
        rank = s.rank if cov == "lowrank" else None

        def make() -> ivi_rl.VariationalMLP:
            return _make_capped(context_dim, num_actions, s, cov, rank, self.device, self.dtype)

        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = VmappedVariational(make, _expected_mse, init)
        self.decision_noise = BlockedNormal(self.act_streams, [self.net.noise_dim], self.dtype)
        self.opt = self.net.optimizer(s.lr, "sgd", momentum=s.momentum)
        kw = {"device": self.device, "dtype": self.dtype}
        self.x_mean = torch.zeros(self.num_trials, 1, context_dim, **kw)
        self.x_std = torch.ones(self.num_trials, 1, context_dim, **kw)

    def _inputs(self, contexts: Tensor) -> Tensor:
        """Contexts [S, B, d] in the network's input scale."""
        return (contexts - self.x_mean) / self.x_std

    def posterior_values(self, contexts: Tensor, num_samples: int, streams) -> Tensor:
        z = streams.normal(num_samples, self.net.noise_dim, dtype=self.dtype)
        with torch.no_grad():
            return self.net.predict(self._inputs(contexts[:, None, :]), z)[:, :, 0].transpose(0, 1)

    def _act(self, contexts: Tensor) -> Tensor:
        with torch.no_grad():
            values = self.net.predict(self._inputs(contexts[:, None, :]), self.decision_noise())
        return values[:, 0].argmax(-1)

    def _fit_input_scale(self) -> None:
        seen = self.buffer.contexts[:, : self.t]
        self.x_mean = seen.mean(1, keepdim=True)
        var = seen.var(1, keepdim=True)
        if self.settings.input_scaling == "scale":
            var = var.mean(-1, keepdim=True).expand_as(var)
        std = var.sqrt()
        self.x_std = torch.where(std > 1e-8, std, torch.ones_like(std))

    def _targets(self, rewards: Tensor) -> Tensor:
        if self.settings.reward_scaling == "none":
            return rewards
        seen = self.buffer.rewards[:, : self.t]
        mean, std = seen.mean(1, keepdim=True), seen.std(1, keepdim=True)
        return (rewards - mean) / torch.where(std > 0, std, torch.ones_like(std))

    def _train(self) -> Tensor:
        s = self.settings
        if not s.warm_start:
            self.net.reset_to_prior()
        self.opt.state.clear()  # fresh momentum for every retrain
        if s.input_scaling != "none":
            self._fit_input_scale()
        # All random numbers of the retrain at once: S generator calls per retrain instead of
        # per step (kernel launches on a GPU), same per-trial streams batched or alone.
        steps, batch = s.train_steps, s.batch_size
        indices = self.buffer.sample_indices(self.train_streams, steps * batch).view(
            -1, steps, batch
        )
        sample_shape = () if s.num_samples == 1 else (s.num_samples,)
        noise = self.train_streams.normal(
            steps, *sample_shape, self.net.noise_dim, dtype=self.dtype
        )
        targets = self._targets(self.buffer.rewards[:, : self.t])
        total = torch.zeros(self.num_trials, device=self.device)
        for step in range(steps):
            ctx, actions, _ = self.buffer.gather(indices[:, step])
            y = torch.gather(targets, 1, indices[:, step])[..., None].expand(
                -1, -1, self.num_actions
            )
            mask = torch.nn.functional.one_hot(actions, self.num_actions).to(self.dtype)
            loss = self.net.loss(self._inputs(ctx), noise[:, step], y, mask)
            self.opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            self.opt.step()
            total += loss.detach()
        return total / steps


def _make_capped(d, k, s, cov, rank, device, dtype) -> ivi_rl.VariationalMLP:
    """make_mlp with the rank capped per layer (a rank above a small layer's size is legal
    as a setting: it means 'full rank' there)."""
    widths = [d, *s.hidden, k]
    kinds = {
        "input_output": {0, len(widths) - 2},
        "last": {len(widths) - 2},
        "all": set(range(len(widths) - 1)),
    }
    chosen = kinds[s.stochastic]
    covs = [cov if i in chosen else None for i in range(len(widths) - 1)]
    ranks = [
        min(rank, widths[i] * widths[i + 1] + widths[i + 1]) if covs[i] == "lowrank" else None
        for i in range(len(widths) - 1)
    ]
    return ivi_rl.VariationalMLP(
        d,
        k,
        s.hidden,
        covs=covs,
        ranks=ranks,
        parametrization=s.parametrization,
        device=device,
        dtype=dtype,
    )
