"""IVI-TS variants measured in experiments/RESULTS.md ("What the variants did") and not adopted.

- :class:`NoiseAwareIVITS` (``ivi_ts_noise``): noise-aware IVI (:mod:`.noise_aware`) with a
  reward-noise model per arm (``noise``): per-datum loss weights 1 / sigma_n^2, a proximal
  pull towards the trial's prior draw (``anchor``), draw-coupled targets (``perturb``) or
  trained per-datum noise variables (``slack``). On the Showdown datasets it won mushroom at
  sigma = 1 and lost every deterministic dataset.
- :class:`FullFactorIVITS` (``ivi_ts_full``): stochastic layers with at most ``full_below``
  parameters take a full covariance factor. It found the wheel's rare arms and cost 1.2-3.3x
  the regret elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

import ivi_rl
from ivi_rl.agents.bandits.ivi_ts import IVITS, IVITSSettings
from ivi_rl.agents.bandits.streams import TrialStreams

from .neighbour_noise import NeighbourNoise
from .noise_aware import anchor_proximal_, noise_weights, prior_variances, sgd_step_size

__all__ = ["BANDIT_VARIANTS", "FullFactorIVITS", "NoiseAwareIVITS"]

NEIGHBOUR_WINDOW = 4096
"""Earlier steps searched for a datum's nearest neighbour (bounds the per-step cost)."""


@dataclasses.dataclass(frozen=True)
class NoiseAwareSettings(IVITSSettings):
    noise: Literal["none", "fixed", "estimated"] = "fixed"
    """The reward-noise model. 'none': plain IVI. 'fixed': every arm's noise std is
    ``noise_std``. 'estimated': per arm, half the mean squared reward difference to the
    nearest earlier context of the same arm (``NeighbourNoise``), floored at
    ``noise_floor``. In standardised reward units when rewards are standardised."""
    noise_std: float = 1.0
    """The noise std of every arm under noise='fixed'."""
    noise_floor: float = 0.1
    """Smallest noise std under noise='estimated'."""
    anchor: bool = True
    """Pull every parameter towards the trial's prior draw at strength sigma_bar^2 / t (the
    Bayesian posterior mean instead of an interpolant); off under slack=true."""
    prior_scale: float = 10.0
    """The anchor's prior std as a multiple of the init std."""
    perturb: bool = False
    """Shift each datum's target by sigma_n c_n^T z under draw z (fixed codes per datum)."""
    slack: bool = False
    """Noise variables instead of the anchor: datum n's target becomes y_n - sigma_n m_n,
    with m_n (from 0) trained by the same SGD at ``slack_rate`` times ``lr``. Refuses
    ``perturb``."""
    slack_rate: float = 10.0
    """Learning rate of the noise variables as a multiple of ``lr``."""


class NoiseAwareIVITS(IVITS):
    """IVI-TS with a reward-noise model (module docstring)."""

    name = "ivi_ts_noise"
    settings_class = NoiseAwareSettings

    def __init__(self, num_actions, context_dim, seeds, horizon, **kwargs) -> None:
        super().__init__(num_actions, context_dim, seeds, horizon, **kwargs)
        s = self.settings
        if s.noise_std < 0 or s.noise_floor <= 0 or s.prior_scale <= 0:
            raise ValueError(
                f"agent {self.name!r}: noise_std={s.noise_std!r} must be >= 0, "
                f"noise_floor={s.noise_floor!r} > 0 and prior_scale={s.prior_scale!r} > 0"
            )
        if s.slack and (s.noise == "none" or s.perturb or s.slack_rate <= 0):
            raise ValueError(
                f"agent {self.name!r}: slack=true needs noise='fixed' or 'estimated' (got "
                f"{s.noise!r}), perturb=false (got {s.perturb!r}) and slack_rate > 0 (got "
                f"{s.slack_rate!r})"
            )
        kw = {"device": self.device, "dtype": self.dtype}
        self.noise_model = (
            NeighbourNoise(self.num_trials, num_actions, NEIGHBOUR_WINDOW, self.device)
            if s.noise == "estimated"
            else None
        )
        self.slack = self.slack_opt = None
        if s.slack:
            self.slack = torch.zeros(self.num_trials, horizon, **kw, requires_grad=True)
            self.slack_opt = torch.optim.SGD(
                [self.slack], lr=s.lr * s.slack_rate, momentum=s.momentum
            )
        self.codes = None
        if s.perturb and s.noise != "none":
            streams = TrialStreams(self.seeds, "codes", self.device)
            self.codes = streams.normal(horizon, self.net.noise_dim, dtype=self.dtype)
            self.codes /= self.net.noise_dim**0.5
        self._variances = prior_variances(self.net.first)

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

    def _start_retrain(self) -> None:
        s = self.settings
        if self.slack is not None:
            if not s.warm_start:
                with torch.no_grad():
                    self.slack.zero_()
            self.slack_opt.state.clear()
        self._noise_std = self.arm_noise_std().gather(1, self.buffer.actions[:, : self.t])
        weights, scale = noise_weights(self._noise_std)
        self._weights = torch.ones_like(weights) if self.slack is not None else weights
        anchored = s.anchor and s.noise != "none" and self.slack is None
        self._strength = scale / (s.prior_scale**2 * self.t) if anchored else None

    def _minibatch(self, targets, idx, actions, z) -> tuple[Tensor, Tensor]:
        y = torch.gather(targets, 1, idx)
        if self.codes is not None:
            codes = torch.gather(self.codes, 1, idx[..., None].expand(-1, -1, self.codes.shape[-1]))
            shift = (codes @ z[..., None].to(self.dtype))[..., 0]
            y = y + torch.gather(self._noise_std, 1, idx) * shift
        if self.slack is not None:
            y = y - torch.gather(self._noise_std, 1, idx) * torch.gather(self.slack, 1, idx)
        y = y[..., None].expand(-1, -1, self.num_actions)
        mask = torch.nn.functional.one_hot(actions, self.num_actions).to(self.dtype)
        return y, mask * torch.gather(self._weights, 1, idx)[..., None]

    def _after_step(self) -> None:
        if self.slack_opt is not None:
            self.slack_opt.step()
            self.slack_opt.zero_grad(set_to_none=True)
        if self._strength is not None:
            self._anchor_step(self._strength)

    def _anchor_step(self, strength: Tensor) -> None:
        """Each trial's exact proximal step towards its prior draw at ``strength`` [S]
        (``PriorAnchor.proximal_step``, per trial)."""
        params, priors, steps = [], [], []
        for group in self.opt.param_groups:
            rate = sgd_step_size(group)
            for name in group["names"]:
                key = f"model.{name}"
                p = self.net.params[key]
                step = 2.0 * rate / self._variances[name] * strength
                params.append(p)
                priors.append(self.net.prior[key])
                steps.append(step.view(-1, *[1] * (p.dim() - 1)))
        anchor_proximal_(params, priors, steps)


@dataclasses.dataclass(frozen=True)
class FullFactorSettings(IVITSSettings):
    full_below: int = 1000
    """A stochastic layer with at most this many weights and biases takes a full covariance
    factor whatever ``cov`` says."""


class FullFactorIVITS(IVITS):
    """IVI-TS whose small stochastic layers take a full covariance factor."""

    name = "ivi_ts_full"
    settings_class = FullFactorSettings

    def _network(self) -> ivi_rl.VariationalMLP:
        s = self.settings
        if s.full_below < 0:
            raise ValueError(f"agent {self.name!r}: full_below={s.full_below} must be >= 0")
        widths = [self.context_dim, *s.hidden, self.num_actions]
        chosen = {
            "input_output": {0, len(widths) - 2},
            "last": {len(widths) - 2},
            "all": set(range(len(widths) - 1)),
        }[s.stochastic]
        family = s.cov if s.cov != "auto" else "diagonal" if s.stochastic == "all" else "lowrank"
        sizes = [(widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1)]
        covs = [
            ("full" if sizes[i] <= s.full_below else family) if i in chosen else None
            for i in range(len(widths) - 1)
        ]
        ranks = [min(s.rank, sizes[i]) if c == "lowrank" else None for i, c in enumerate(covs)]
        return ivi_rl.VariationalMLP(
            self.context_dim,
            self.num_actions,
            s.hidden,
            covs=covs,
            ranks=ranks,
            parametrization=s.parametrization,
            device=self.device,
            dtype=self.dtype,
        )


BANDIT_VARIANTS = {cls.name: cls for cls in (NoiseAwareIVITS, FullFactorIVITS)}
"""The bandit variants by name (``ivi_rl.agents.bandits.make_agent`` finds them)."""
