"""IVI Thompson sampling: Thompson sampling from an implicitly regularized variational
posterior.

A variational network with one output per arm (``ivi_rl.make_mlp``: by default input and
output layers with rank-10 Gaussian factors, muP) is trained by SGD with momentum on the
*expected* squared error of the pulled arm's output only (no KL, no prior term, no weight
decay), starting from the prior, which is the initialisation. Every decision draws one
network from the posterior and acts greedily on it. Retraining follows the Showdown schedule
(every ``train_every`` steps, ``train_steps`` minibatch steps on all data so far), continuing
from the current posterior (``warm_start``) or restarting from the trial's prior draw.

Where the defaults depart from plain IVI (experiments/RESULTS.md measures the stable step;
the scalings' measurements are in its history at the tag archive/experiments-2026-12-06): the
rewards are standardised and the inputs centred and scaled (``reward_scaling``,
``input_scaling``), and every learning rate is scaled down by one factor per retrain where a
step would leave SGD-with-momentum's stability bound (``stable_lr``, ``ivi_rl.stability``);
one factor for all groups keeps the rate ratios, and with them the implicit-bias limit.

Variants (``ivi_rl.contrib``) change one ingredient through the hooks :meth:`_network`,
:meth:`_start_retrain`, :meth:`_minibatch` and :meth:`_after_step`.
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

STABILITY_ROWS = 512
"""Rows of the buffer (drawn with replacement) on which each retrain measures curvature."""
STABILITY_DRAWS = 2
"""Weight draws the curvature is averaged over."""


@dataclasses.dataclass(frozen=True)
class IVITSSettings(NeuralSettings):
    lr: float = 0.01
    """Base SGD learning rate; each parameter group scales it by its muP multiplier."""
    momentum: float = 0.9
    """SGD momentum (the paper's setting)."""
    stochastic: Literal["input_output", "last", "all"] = "input_output"
    """Which layers carry a covariance (``ivi_rl.make_mlp``)."""
    cov: Literal["auto", "lowrank", "diagonal", "full"] = "auto"
    """Their family: 'auto' is 'lowrank', or 'diagonal' with stochastic='all'."""
    rank: int = 10
    """Rank of 'lowrank' factors (capped at each layer's parameter count)."""
    parametrization: Literal["mup", "sp"] = "mup"
    warm_start: bool = True
    """Continue each retrain from the current posterior; False restarts from the prior draw."""
    reward_scaling: Literal["none", "standardize", "scale"] = "standardize"
    """'standardize': fit (r - mean) / std of all rewards so far (argmax is unchanged);
    'scale': fit r / std (the prior's mean value of every arm stays a reward of 0)."""
    input_scaling: Literal["none", "standardize", "scale"] = "scale"
    """Input normalisation from all contexts seen at the latest retrain (used for decisions
    too): 'standardize' z-scores every feature; 'scale' centres every feature and divides by
    one scalar, the root mean per-feature variance (rare one-hot categories stay small)."""
    stable_lr: bool = True
    """Cap every learning rate, by one factor per retrain and trial, at SGD-with-momentum's
    stability bound measured on the data (``ivi_rl.stability``): the top Gauss-Newton
    eigenvalue kappa of every layer, in the metric of the group rates, on up to 512 rows and
    2 weight draws, must stay within 0.8 (1 - momentum) (layers with a covariance) or
    0.8 * 2 (1 + momentum) (deterministic layers). The factor is exactly 1 where no bound
    binds; where one does, the run is IVI with a smaller step (same rate ratios, same limit)."""


def _expected_mse(model, pred: Tensor, y: Tensor, mask: Tensor, extra: float) -> Tensor:
    return ivi_rl.per_datum_loss(pred, y, "mse", mask=mask).mean()


class IVITS(BanditAgent):
    name = "ivi_ts"
    settings_class = IVITSSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = VmappedVariational(self._network, _expected_mse, init)
        self.decision_noise = BlockedNormal(self.act_streams, [self.net.noise_dim], self.dtype)
        self.opt = self.net.optimizer(s.lr, "sgd", momentum=s.momentum)
        self.stability_streams = TrialStreams(self.seeds, "stability", self.device)
        self._top_vectors: list[Tensor] | None = None
        self.last_step_scale: Tensor | None = None
        """[S] the learning-rate factor of the latest retrain (``stable_lr``)."""
        self.last_curvature: Tensor | None = None
        """[S, layers] the curvatures kappa it was set from (``ivi_rl.layer_curvatures``)."""
        kw = {"device": self.device, "dtype": self.dtype}
        self.x_mean = torch.zeros(self.num_trials, 1, context_dim, **kw)
        self.x_std = torch.ones(self.num_trials, 1, context_dim, **kw)

    def _network(self) -> ivi_rl.VariationalMLP:
        """One trial's network (built once per trial, its prior drawn from the trial's seed)."""
        s = self.settings
        family = s.cov if s.cov != "auto" else "diagonal" if s.stochastic == "all" else "lowrank"
        return ivi_rl.make_mlp(
            self.context_dim,
            self.num_actions,
            s.hidden,
            stochastic=s.stochastic,
            cov=family,
            rank=s.rank if family == "lowrank" else None,
            parametrization=s.parametrization,
            device=self.device,
            dtype=self.dtype,
        )

    def _inputs(self, contexts: Tensor) -> Tensor:
        """Contexts [S, B, d] in the network's input scale."""
        return (contexts - self.x_mean) / self.x_std

    def posterior_values(self, contexts: Tensor, num_samples: int, streams) -> Tensor:
        z = streams.normal(num_samples, self.net.noise_dim, dtype=self.dtype)
        with torch.no_grad():
            return self.net.predict(self._inputs(contexts[:, None, :]), z)[:, :, 0].transpose(0, 1)

    def mean_values(self, contexts: Tensor) -> Tensor:
        """[S, k] arm values of the posterior-mean network (every weight at its mean: the
        draw z = 0) at contexts [S, d]."""
        z = torch.zeros(self.num_trials, self.net.noise_dim, device=self.device, dtype=self.dtype)
        with torch.no_grad():
            return self.net.predict(self._inputs(contexts[:, None, :]), z)[:, 0]

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

    def _train(self) -> Tensor:
        s = self.settings
        if not s.warm_start:
            self.net.reset_to_prior()
        self.opt.state.clear()  # fresh momentum for every retrain
        if s.input_scaling != "none":
            self._fit_input_scale()
        step_scale = self._stable_scale() if s.stable_lr else None
        self._start_retrain()
        # All random numbers of the retrain at once: S generator calls per retrain instead of
        # per step (kernel launches on a GPU), same per-trial streams batched or alone.
        steps, batch = s.train_steps, s.batch_size
        indices = self.buffer.sample_indices(self.train_streams, steps * batch)
        indices = indices.view(-1, steps, batch)
        noise = self.train_streams.normal(steps, self.net.noise_dim, dtype=self.dtype)
        targets = self.training_targets(self.buffer.rewards[:, : self.t])
        total = torch.zeros(self.num_trials, device=self.device)
        for step in range(steps):
            idx, z = indices[:, step], noise[:, step]
            ctx, actions, _ = self.buffer.gather(idx)
            y, mask = self._minibatch(targets, idx, actions, z)
            loss = self.net.loss(self._inputs(ctx), z, y, mask)
            self.opt.zero_grad(set_to_none=True)
            (loss if step_scale is None else loss * step_scale).sum().backward()
            self.opt.step()
            self._after_step()
            total += loss.detach()
        return total / steps

    # ------------------------------------------------------------------ hooks for variants
    def _start_retrain(self) -> None:
        """Called at the start of every retrain, after the input scale is fitted."""

    def _minibatch(
        self, targets: Tensor, idx: Tensor, actions: Tensor, z: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Targets y [S, B, k] and loss mask [S, B, k] of the minibatch ``idx`` [S, B] under
        the step's draw z [S, R]: the pulled arm's training target, mask one-hot."""
        y = torch.gather(targets, 1, idx)[..., None].expand(-1, -1, self.num_actions)
        mask = torch.nn.functional.one_hot(actions, self.num_actions).to(self.dtype)
        return y, mask

    def _after_step(self) -> None:
        """Called after every optimizer step."""

    # ------------------------------------------------------------------ the stable step
    def _stable_scale(self) -> Tensor:
        """[S] the factor <= 1 that keeps this retrain's steps within SGD-with-momentum's
        stability bound (``stable_lr``), from the curvature on a sample of the buffer."""
        rows = min(self.t, STABILITY_ROWS)
        idx = self.buffer.sample_indices(self.stability_streams, rows)
        ctx, actions, _ = self.buffer.gather(idx)
        z = self.stability_streams.normal(STABILITY_DRAWS, self.net.noise_dim, dtype=self.dtype)
        with torch.no_grad():
            kappa, self._top_vectors = self.net.curvatures(
                self._inputs(ctx), actions, z, self.opt, self._top_vectors
            )
        self.last_curvature = kappa
        stochastic = [layer.is_stochastic for layer in self.net.first.layers]
        self.last_step_scale = ivi_rl.stable_step_scale(kappa, stochastic, self.settings.momentum)
        return self.last_step_scale
