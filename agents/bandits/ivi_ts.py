"""IVI Thompson sampling: the hero agent.

A variational network with one output per arm (``ivi_rl.make_mlp``: by default input and
output layers low-rank Gaussian, muP) is trained by SGD on the *expected* masked squared
error only (the pulled arm's output; no KL, no prior term, no weight decay), starting from
the prior, which is the initialisation. Every decision draws one network from the posterior
and acts greedily on it. Retraining follows the Showdown schedule (every ``train_every``
steps, ``train_steps`` minibatch steps on all data so far), either continuing from the current
posterior (``warm_start``) or restarting from the trial's prior draw.

Noise-aware options (``noise``, ``anchor``, ``prior_scale``, ``perturb``, ``slack``;
``ivi_rl.anchor``) depart from plain IVI: per-arm loss weights, a proximal pull towards the
prior draw, draw-coupled target shifts, or trained per-datum noise variables. They are off
by default: on the Showdown datasets none beat plain IVI (RESULTS.md, "Noise-aware IVI")."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

import ivi_rl

from .base import BanditAgent, NeuralSettings
from .models import VmappedVariational
from .noise import NeighbourNoise
from .streams import BlockedNormal, TrialStreams

__all__ = ["IVITS", "IVITSSettings"]

_NEIGHBOUR_WINDOW = 4096
"""Earlier steps searched for a datum's nearest neighbour (bounds the per-step cost)."""
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
    rank: int = 10
    """Rank of 'lowrank' factors (capped at each layer's size)."""
    full_below: int = 0
    """A stochastic layer with at most this many weights and biases takes a full covariance
    factor whatever ``cov`` says (0: never)."""
    parametrization: Literal["mup", "sp"] = "mup"
    warm_start: bool = True
    """Continue each retrain from the current posterior; False restarts from the prior draw
    (and the noise variables of ``slack`` from 0)."""
    reward_scaling: Literal["none", "standardize", "scale"] = "standardize"
    """'standardize': fit (r - mean) / std of all rewards so far (argmax is unchanged);
    'scale': fit r / std (the prior's mean value of every arm stays a reward of 0)."""
    input_scaling: Literal["none", "standardize", "scale"] = "scale"
    """Input normalisation from all contexts seen at the latest retrain (used for decisions
    too): 'standardize' z-scores every feature; 'scale' centres every feature and divides by
    one scalar, the root mean per-feature variance (rare one-hot categories stay small). muP
    assumes O(1) inputs: raw jester ratings (+-10) or price changes (+-50) otherwise make the
    input layer's SGD step (x fan_out) diverge."""
    num_samples: int = 1
    """Weight samples per training step (M; the paper uses 1)."""
    stable_lr: bool = True
    """Cap every learning rate, by one factor per retrain and trial, at SGD-with-momentum's
    stability bound measured on the data (``ivi_rl.stability``): the top Gauss-Newton
    eigenvalue kappa of every layer, in the metric of the group rates, on up to 512 rows and
    2 weight draws, must stay below 1 - momentum (layers with a covariance) or
    2 (1 + momentum) (deterministic layers). The factor is exactly 1 where no bound binds;
    where one does, the run is IVI with a smaller step (same rate ratios, same limit)."""
    noise: Literal["none", "fixed", "estimated"] = "none"
    """Reward-noise model of noise-aware IVI (``ivi_rl.anchor``). 'none': plain IVI (the
    mean interpolates the rewards, draws are certain on the data). 'fixed': every arm's noise
    std is ``noise_std``. 'estimated': per arm, half the mean squared reward difference to
    the nearest earlier context of the same arm (``NeighbourNoise``), floored at
    ``noise_floor``. Both in standardised reward units when rewards are standardised."""
    noise_std: float = 1.0
    """The noise std of every arm under noise='fixed'."""
    noise_floor: float = 0.1
    """Smallest noise std under noise='estimated' (a deterministic arm would otherwise take
    all the weight of the loss)."""
    anchor: bool = True
    """Pull every parameter towards the trial's prior draw at strength sigma_bar^2 / t
    (the Bayesian posterior mean instead of an interpolant); no effect under noise='none'
    or slack=true."""
    prior_scale: float = 10.0
    """The anchor's prior std as a multiple of the muP init std. Departure from the exact
    linear-Gaussian objective: muP's prior keeps the context-dependent part of the prior
    predictive small (about 0.6 / sqrt(width)), far narrower than standardised rewards, and
    anchoring to it at scale 1 keeps the network at its prior (RESULTS.md, "Noise-aware IVI")."""
    perturb: bool = False
    """Shift each datum's target by sigma_a c_n^T z under draw z (fixed codes per datum):
    draws as wide as the noise on the data."""
    slack: bool = False
    """Noise variables instead of the anchor: datum n's target becomes y_n - sigma_n m_n,
    with m_n (one number per datum, from 0, prior N(0, 1)) trained by the same SGD at
    ``slack_rate`` times ``lr``; the network fits what the noise variables leave. For a
    linear model with rates matched to the prior variances the fit is the min-norm solution
    of y = X w + sigma m, the Bayesian posterior mean (ridge regression as an interpolation);
    here the rate is a setting (RESULTS.md, "Noise-aware IVI"), and the draws keep plain
    IVI's spread around the mean (the noise variables have no covariance factor). Needs
    noise='fixed' or 'estimated'; replaces ``anchor``, refuses ``perturb``."""
    slack_rate: float = 10.0
    """Learning rate of the noise variables as a multiple of ``lr``. The variables add
    curvature to each SGD step: where plain IVI's steps are near SGD's bound (large
    standardised rewards) a trial can diverge, which stops it with the non-finite-loss
    error (RESULTS.md, "Noise-aware IVI")."""


def _expected_mse(model, pred: Tensor, y: Tensor, mask: Tensor, extra: float) -> Tensor:
    return ivi_rl.per_datum_loss(pred, y, "mse", mask=mask).mean()


class IVITS(BanditAgent):
    name = "ivi_ts"
    settings_class = IVITSSettings
    is_posterior = True

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        if s.full_below < 0:
            raise ValueError(f"agent 'ivi_ts': full_below={s.full_below} must be >= 0")
        cov = s.cov if s.cov != "auto" else ("diagonal" if s.stochastic == "all" else "lowrank")
        rank = s.rank if cov == "lowrank" else None

        def make() -> ivi_rl.VariationalMLP:
            return _make_capped(context_dim, num_actions, s, cov, rank, self.device, self.dtype)

        init = TrialStreams(self.seeds, "init", self.device).generators
        self.net = VmappedVariational(make, _expected_mse, init)
        self.stability_streams = TrialStreams(self.seeds, "stability", self.device)
        self._top_vectors: list[torch.Tensor] | None = None
        self.last_step_scale: torch.Tensor | None = None
        """[S] the learning-rate factor of the latest retrain (``stable_lr``)."""
        self.decision_noise = BlockedNormal(self.act_streams, [self.net.noise_dim], self.dtype)
        self.opt = self.net.optimizer(s.lr, "sgd", momentum=s.momentum)
        kw = {"device": self.device, "dtype": self.dtype}
        self.x_mean = torch.zeros(self.num_trials, 1, context_dim, **kw)
        self.x_std = torch.ones(self.num_trials, 1, context_dim, **kw)
        if s.noise_std < 0 or s.noise_floor <= 0 or s.prior_scale <= 0:
            raise ValueError(
                f"agent 'ivi_ts': noise_std={s.noise_std!r} must be >= 0, "
                f"noise_floor={s.noise_floor!r} > 0 and prior_scale={s.prior_scale!r} > 0"
            )
        self.noise_model = (
            NeighbourNoise(self.num_trials, num_actions, _NEIGHBOUR_WINDOW, self.device)
            if s.noise == "estimated"
            else None
        )
        self.codes = None
        self.slack = self.slack_opt = None
        if s.slack:
            if s.noise == "none" or s.perturb or s.slack_rate <= 0:
                raise ValueError(
                    f"agent 'ivi_ts': slack=true needs noise='fixed' or 'estimated' (got "
                    f"{s.noise!r}), perturb=false (got {s.perturb!r}) and slack_rate > 0 "
                    f"(got {s.slack_rate!r})"
                )
            self.slack = torch.zeros(self.num_trials, horizon, **kw, requires_grad=True)
            self.slack_opt = torch.optim.SGD(
                [self.slack], lr=s.lr * s.slack_rate, momentum=s.momentum
            )
        if s.perturb and s.num_samples != 1:
            raise ValueError(
                f"agent 'ivi_ts': perturb=true needs num_samples=1, got {s.num_samples}"
            )
        if s.perturb and s.noise != "none":
            streams = TrialStreams(self.seeds, "codes", self.device)
            self.codes = streams.normal(horizon, self.net.noise_dim, dtype=self.dtype)
            self.codes /= self.net.noise_dim**0.5

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

    def _observe(self, contexts, actions, rewards) -> None:
        if self.noise_model is not None:
            t = self.t - 1  # the buffer holds this step already
            self.noise_model.add(
                self._inputs(contexts[:, None])[:, 0],
                actions,
                rewards,
                self._inputs(self.buffer.contexts[:, :t]),
                self.buffer.actions[:, :t],
                self.buffer.rewards[:, :t],
            )

    def arm_noise_std(self) -> Tensor:
        """[S, k] the noise std of every arm that training uses now (in target units)."""
        s = self.settings
        shape = (self.num_trials, self.num_actions)
        if s.noise == "none":
            return torch.zeros(shape, device=self.device, dtype=self.dtype)
        if s.noise == "fixed":
            return torch.full(shape, s.noise_std, device=self.device, dtype=self.dtype)
        var = self.noise_model.variance().to(self.dtype)
        if s.reward_scaling != "none":
            var = var / self.reward_moments()[1].pow(2)
        return var.sqrt().clamp_min(s.noise_floor)

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
            if self.slack is not None:
                with torch.no_grad():
                    self.slack.zero_()
        self.opt.state.clear()  # fresh momentum for every retrain
        if self.slack_opt is not None:
            self.slack_opt.state.clear()
        if s.input_scaling != "none":
            self._fit_input_scale()
        step_scale = self._stable_scale() if s.stable_lr else None
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
        targets = self.training_targets(self.buffer.rewards[:, : self.t])
        noise_std = self.arm_noise_std().gather(1, self.buffer.actions[:, : self.t])
        weights, scale = ivi_rl.noise_weights(noise_std)
        if self.slack is not None:  # noise variables carry the noise: unit weights
            weights = torch.ones_like(weights)
        anchored = s.anchor and s.noise != "none" and self.slack is None
        strength = scale / (s.prior_scale**2 * self.t) if anchored else None
        total = torch.zeros(self.num_trials, device=self.device)
        for step in range(steps):
            idx = indices[:, step]
            ctx, actions, _ = self.buffer.gather(idx)
            y = self._perturbed(torch.gather(targets, 1, idx), idx, noise_std, noise[:, step])
            if self.slack is not None:
                y = y - torch.gather(noise_std, 1, idx) * torch.gather(self.slack, 1, idx)
            y = y[..., None].expand(-1, -1, self.num_actions)
            mask = torch.nn.functional.one_hot(actions, self.num_actions).to(self.dtype)
            mask = mask * torch.gather(weights, 1, idx)[..., None]
            loss = self.net.loss(self._inputs(ctx), noise[:, step], y, mask)
            self.opt.zero_grad(set_to_none=True)
            if self.slack_opt is not None:
                self.slack_opt.zero_grad(set_to_none=True)
            (loss if step_scale is None else loss * step_scale).sum().backward()
            self.opt.step()
            if self.slack_opt is not None:
                self.slack_opt.step()
            if strength is not None:
                self.net.anchor_step(self.opt, strength)
            total += loss.detach()
        return total / steps

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
        stochastic = [layer.is_stochastic for layer in self.net.first.layers]
        self.last_step_scale = ivi_rl.stable_step_scale(kappa, stochastic, self.settings.momentum)
        return self.last_step_scale

    def _perturbed(self, y: Tensor, idx: Tensor, noise_std: Tensor, z: Tensor) -> Tensor:
        """Targets y [S, B] of the data ``idx`` shifted by sigma_n c_n^T z under the step's
        draw z [S, R] (unchanged without ``perturb``)."""
        if self.codes is None:
            return y
        codes = torch.gather(self.codes, 1, idx[..., None].expand(-1, -1, self.codes.shape[-1]))
        shift = (codes @ z[..., None].to(self.dtype))[..., 0]
        return y + torch.gather(noise_std, 1, idx) * shift


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
    sizes = [(widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1)]
    covs = [
        ("full" if sizes[i] <= s.full_below else cov) if i in chosen else None
        for i in range(len(widths) - 1)
    ]
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
