"""Stable-baselines3 policies whose Q-network is an ``ivi_rl`` variational network.

The Q-network keeps SB3's attribute ``q_net`` and holds one posterior draw per environment
(an explicit ``ivi_rl.Noise``), redrawn only when asked. Sampling is chosen by an explicit
argument, never by ``module.training`` (SB3 acts in eval mode). The optimizer is SGD over the
parametrization's parameter groups, each carrying its learning-rate multiplier.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

import ivi_rl

__all__ = ["IVIDQNPolicy", "PosteriorQNetwork", "QNetworkSettings"]

_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.GELU: "gelu", nn.SiLU: "silu", nn.ELU: "elu"}

DEFAULT_BIAS_STD = 0.0
"""Prior std of the biases: 0, a point mass. A bias's prior is the same in every state, and
with the muP table's 1 it would dominate Q's prior predictive: every draw would prefer one
action in all states."""


DEFAULT_NET_ARCH = (32,)
"""Hidden widths of each action's network by default (``per_action``: 32 ReLU units per
action)."""


def _input_scale(input_scale: float | str, features_dim: int) -> float:
    """Resolve ``input_scale``: a positive number, or 'sqrt_dim' = sqrt(features_dim)."""
    if input_scale == "sqrt_dim":
        return math.sqrt(features_dim)
    if (
        isinstance(input_scale, bool)
        or not isinstance(input_scale, (int, float))
        or not input_scale > 0
    ):
        raise ValueError(
            f"input_scale={input_scale!r} is not accepted; accepted: a number > 0 or 'sqrt_dim'"
        )
    return float(input_scale)


NO_BOUND = float(np.finfo(np.float32).max) / 2
"""A declared bound at least this large is read as none: environments write float32's largest
value where they mean "unbounded"."""


def bound_scale(
    observation_space: spaces.Space, features_extractor: BaseFeaturesExtractor
) -> torch.Tensor | None:
    """Per-feature factors 1 / max(|low|, |high|) of a Box observation's declared bounds, so
    that every bounded coordinate spans at most [-1, 1] whatever its units; a coordinate whose
    bound is infinite, 0 or at least :data:`NO_BOUND` keeps factor 1. None (no scaling) where
    the factors would all be 1, or where the features are not the flattened observation (an
    image, which SB3 scales itself, a non-Box space, or another features extractor)."""
    if (
        not isinstance(observation_space, spaces.Box)
        or is_image_space(observation_space)
        or type(features_extractor) is not FlattenExtractor
    ):
        return None
    low = np.abs(observation_space.low.astype(np.float64)).reshape(-1)
    high = np.abs(observation_space.high.astype(np.float64)).reshape(-1)
    bound = np.maximum(low, high)
    bounded = np.isfinite(bound) & (bound > 0) & (bound < NO_BOUND)
    factors = np.ones_like(bound)
    factors[bounded] = 1.0 / bound[bounded]
    return None if np.all(factors == 1.0) else torch.as_tensor(factors).float()


def _parametrization(name: str | ivi_rl.Parametrization, bias_std: float) -> ivi_rl.Parametrization:
    if isinstance(name, ivi_rl.Parametrization):
        return name
    kind = type(ivi_rl.get_parametrization(name))
    return kind(bias_std=bias_std)


@dataclasses.dataclass(frozen=True)
class QNetworkSettings:
    """What a :class:`PosteriorQNetwork` is, beyond SB3's ``net_arch`` and activation: the
    policy's extra ``policy_kwargs`` (see :class:`IVIDQNPolicy` for each), checked here."""

    stochastic: str = "last"
    cov: str = "full"
    rank: int | None = None
    parametrization: str | ivi_rl.Parametrization = "sp"
    bias_std: float = DEFAULT_BIAS_STD
    input_scale: float | str = "sqrt_dim"
    input_bounds: bool = True
    bias: bool = True
    per_action: bool = True

    def __post_init__(self) -> None:
        for name in ("bias", "per_action", "input_bounds"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not accepted; accepted: True, False"
                )
        _input_scale(self.input_scale, 1)  # the check; the value depends on the input size

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> QNetworkSettings:
        """The settings from ``policy_kwargs``; an unknown key is one error naming all."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(
                f"policy_kwargs {unknown} are not accepted; accepted: SB3's DQNPolicy "
                f"arguments and {', '.join(sorted(known))}"
            )
        return cls(**kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PosteriorQNetwork(QNetwork):
    """Q(s, .) from a variational MLP; ``held`` holds the current draw of every environment."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        settings: QNetworkSettings | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor,
            features_dim,
            net_arch,
            activation_fn,
            normalize_images,
        )
        if activation_fn not in _ACTIVATIONS:
            raise ValueError(
                f"activation_fn={activation_fn.__name__} is not supported; accepted: "
                + ", ".join(a.__name__ for a in _ACTIVATIONS)
            )
        self.settings = settings = settings or QNetworkSettings()
        self.input_scale = _input_scale(settings.input_scale, features_dim)
        # recomputed from the settings and the observation space, so not saved with the weights
        self.register_buffer(
            "input_factors",
            self._input_factors(observation_space, features_extractor, features_dim),
            persistent=False,
        )
        n_actions = int(action_space.n)
        if settings.per_action:
            self.q_net = ivi_rl.SplitMLP(
                [self._make_net(features_dim, 1, activation_fn) for _ in range(n_actions)]
            )
        else:
            self.q_net = self._make_net(features_dim, n_actions, activation_fn)
        self.held: ivi_rl.Noise | None = None
        self.generator: torch.Generator | None = None

    def _input_factors(
        self,
        observation_space: spaces.Space,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
    ) -> torch.Tensor | None:
        """Factors [features_dim] on the network's input, or None where they would all be 1."""
        bounds = None
        if self.settings.input_bounds:
            bounds = bound_scale(observation_space, features_extractor)
        if bounds is not None:
            return bounds * self.input_scale
        if self.input_scale == 1.0:
            return None
        return torch.full((features_dim,), self.input_scale)

    def _make_net(
        self, features_dim: int, n_out: int, activation_fn: type[nn.Module]
    ) -> ivi_rl.VariationalMLP:
        """One variational MLP whose stochastic layers' weight means start at 0: the prior
        is N(0, covariance) there, with no random mean function that every draw shares, so
        at a state never trained on each action is preferred by half the draws (deterministic
        layers keep their random means: zero ones would be dead units)."""
        settings = self.settings
        net = ivi_rl.make_mlp(
            features_dim,
            n_out,
            self.net_arch,
            activation=_ACTIVATIONS[activation_fn],
            stochastic=settings.stochastic,
            cov=settings.cov,
            rank=settings.rank,
            parametrization=_parametrization(settings.parametrization, settings.bias_std),
            bias=settings.bias,
        )
        self._set_prior_means(net)
        return net

    def _set_prior_means(self, net: ivi_rl.VariationalMLP) -> None:
        """Zero the stochastic layers' weight means (see :meth:`_make_net`)."""
        with torch.no_grad():
            for layer in net.stochastic_layers:
                layer.weight.zero_()

    def seed(self, seed: int | None) -> None:
        """Seed the generator of held draws (on the network's device)."""
        device = next(self.parameters()).device
        self.generator = torch.Generator(device=device)
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()

    def resample(self, env_indices=None, n_envs: int | None = None) -> None:
        """Draw fresh networks for ``env_indices`` (or ``n_envs`` fresh ones for all)."""
        if self.generator is None:
            self.seed(None)
        if n_envs is not None or self.held is None:
            n = n_envs or 1
            self.held = self.q_net.sample_noise((n,), self.generator)
            return
        fresh = self.q_net.sample_noise((len(env_indices),), self.generator)
        idx = torch.as_tensor(env_indices, device=fresh.tensors[0].device, dtype=torch.long)
        tensors = tuple(
            t.index_copy(0, idx, f) for t, f in zip(self.held.tensors, fresh.tensors, strict=True)
        )
        self.held = ivi_rl.Noise(tensors, self.held.sample_shape)

    def features(self, obs) -> torch.Tensor:
        """The network's input: extracted features divided by their declared bounds
        (``input_bounds``, :func:`bound_scale`), times ``input_scale``."""
        features = self.extract_features(obs, self.features_extractor)
        return features if self.input_factors is None else features * self.input_factors

    def forward(
        self, obs, noise: ivi_rl.Noise | None = None, generator: torch.Generator | None = None
    ):
        """Q-values [B, A] of one draw shared by the batch: ``noise``, or a fresh one."""
        return self.q_net(self.features(obs), noise, generator=generator)

    def output_moments(self, obs, noise: ivi_rl.Noise) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance [B, A] of Q over the output layer's noise, the earlier layers at
        the draw ``noise`` (see ``ivi_rl.VariationalMLP.output_moments``)."""
        return self.q_net.output_moments(self.features(obs), noise)

    def mean_q(self, obs) -> torch.Tensor:
        return self.q_net.posterior_mean(self.features(obs))

    def sampled_q(
        self, obs, sample_shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Q-values [*sample_shape, B, A] of fresh independent draws."""
        return self.q_net(self.features(obs), sample_shape=sample_shape, generator=generator)

    def held_q(self, obs) -> torch.Tensor:
        """Q-values [n_envs, A]: row i under environment i's held draw."""
        features = self.features(obs)
        if self.held is None or self.held.sample_shape[0] != features.shape[0]:
            self.resample(n_envs=features.shape[0])  # e.g. predict() on a new batch size
        return self.q_net(features[:, None, :], self.held, x_has_sample_dims=True)[:, 0]

    def _predict(self, observation, deterministic: bool = True) -> torch.Tensor:
        q = self.mean_q(observation) if deterministic else self.held_q(observation)
        return q.argmax(dim=1).reshape(-1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "settings": self.settings}


class IVIDQNPolicy(DQNPolicy):
    """DQN policy with a :class:`PosteriorQNetwork`; ``deterministic=True`` acts on the
    posterior mean, ``deterministic=False`` on each environment's held draw.

    The default network, for every action its own MLP (``per_action=True``): one hidden layer
    of 32 ReLU units (``net_arch=[32]``) whose weights are trained point estimates
    (``stochastic='last'``), and a Gaussian readout with a full covariance factor
    (``cov='full'``) whose prior has mean 0 and the standard parametrization's std
    (``parametrization='sp'``); the biases' prior is a point mass at 0 (``bias_std=0``). The
    network's input is the observation, each Box coordinate divided by its declared bound
    (``input_bounds=True``), times sqrt(its dimension) (``input_scale='sqrt_dim'``).

    ``policy_kwargs`` (one :class:`QNetworkSettings`): ``stochastic``, ``cov``, ``rank``,
    ``parametrization`` (``ivi_rl.make_mlp``); ``bias_std``; ``input_scale``, a number or
    ``'sqrt_dim'``: the input layer's prior (std 1/sqrt(fan_in)) assumes inputs of norm about
    sqrt(dim), which a one-hot or sparse observation of norm 1 does not have; for dense inputs
    of order 1 per coordinate use ``input_scale=1``; ``input_bounds``: divide each coordinate
    of a Box observation by max(|low|, |high|) of its declared bounds (:func:`bound_scale`),
    so that the prior and SGD's steps see every bounded coordinate on the same scale whatever
    its units (plain SGD has no per-weight step size to make up for a coordinate of scale
    0.07, MountainCar's velocity); unbounded coordinates are left as they are; ``bias``;
    ``per_action`` (False: one MLP with an output per action, whose hidden units all actions
    share). ``optimizer_class`` is SGD: IVI's implicit bias is SGD's (``ivi_rl.contrib`` has
    the Adam variant).
    """

    accepted_optimizers: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.SGD,)
    """Optimizers this policy takes (each needs a muP learning-rate rule)."""
    q_network_class: type[PosteriorQNetwork] = PosteriorQNetwork
    settings_class: type[QNetworkSettings] = QNetworkSettings

    q_net: PosteriorQNetwork
    q_net_target: PosteriorQNetwork

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.SGD,
        optimizer_kwargs: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        if net_arch is None:
            net_arch = list(DEFAULT_NET_ARCH)
        if optimizer_class not in self.accepted_optimizers:
            accepted = ", ".join(f"torch.optim.{o.__name__}" for o in self.accepted_optimizers)
            raise ValueError(
                f"optimizer_class={optimizer_class.__name__} is not accepted; accepted: {accepted}"
            )
        # set before super().__init__, which calls _build
        self.settings = self.settings_class.from_kwargs(settings)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
        )

    def make_q_net(self) -> PosteriorQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return self.q_network_class(**net_args, settings=self.settings).to(self.device)

    def _build(self, lr_schedule) -> None:
        self.q_net = self.make_q_net()
        self.q_net_target = self.make_q_net()
        self.q_net_target.load_state_dict(self.q_net.state_dict())
        self.q_net_target.set_training_mode(False)
        kind = "sgd" if self.optimizer_class is torch.optim.SGD else "adam"
        groups = ivi_rl.param_groups(self.q_net, lr_schedule(1), kind)
        self.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **self._optimizer_kwargs())

    def _optimizer_kwargs(self) -> dict[str, Any]:
        """The user's optimizer kwargs; by default the fused kernel on cpu and cuda (a
        variational layer has two to three times a plain layer's parameter tensors, and
        PyTorch's per-tensor loop is a measurable part of a small network's step)."""
        kwargs = dict(self.optimizer_kwargs)
        if not {"fused", "foreach"} & kwargs.keys() and self.device.type in ("cpu", "cuda"):
            kwargs["fused"] = True
        return kwargs

    def set_training_mode(self, mode: bool) -> None:
        """SB3's (the policy's flag and every module of ``q_net``), without its walk.

        SB3 sets the mode before every action and every update, and ``Module.train`` walks
        the module tree each time, a measurable part of a small network's step. Nothing in
        a variational network depends on the mode (sampling is an explicit argument), but a
        user's features extractor may, so every flag is still set: from a list of ``q_net``'s
        modules made once (the tree is fixed once the policy is built), a module whose class
        overrides ``train`` through its own ``train(mode)``. A call that changes nothing
        returns at once.
        """
        if self.q_net.training == mode:
            return
        if not isinstance(mode, bool):
            raise ValueError(f"mode={mode!r} is not accepted; accepted: True, False")
        modules = self.__dict__.get("_mode_modules")
        if modules is None:
            modules = self.__dict__["_mode_modules"] = list(self.q_net.modules())
        for module in modules:
            if type(module).train is nn.Module.train:
                module.__dict__["training"] = mode  # what Module.train sets, minus the walk
            else:
                module.train(mode)
        self.training = mode

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self.settings.as_kwargs()}
