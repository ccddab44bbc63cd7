"""A replay buffer whose transitions carry a perturbation code each (draw-coupled TD targets).

Every stored transition n gets a code c_n ~ N(0, I / R) once, when it is added, from the
buffer's own seeded generator; a minibatch returns each transition's code with it, so a
transition keeps its code for as long as it is replayed, and through
``save_replay_buffer`` / ``load_replay_buffer`` (the codes and the generator are pickled with
the buffer). See ``ivi_rl.contrib.noise_aware.perturbation_codes`` and :class:`VariantIVIDQN`'s
``target_noise``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer

__all__ = ["CodedReplayBuffer", "CodedReplayBufferSamples"]


class CodedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` plus ``codes`` [batch, R]."""

    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor
    discounts: torch.Tensor | None
    codes: torch.Tensor


class CodedReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` plus one code per transition. ``set_codes(code_dim, seed)``
    must be called before the first ``add`` (the code size is the Q-network's noise size,
    known only once the policy is built)."""

    codes: np.ndarray | None = None

    def set_codes(self, code_dim: int, seed: int) -> None:
        """Allocate codes of size ``code_dim`` and seed their generator (empties the codes)."""
        if isinstance(code_dim, bool) or not isinstance(code_dim, int) or code_dim < 1:
            raise ValueError(f"code_dim={code_dim!r} is not accepted; accepted: an int >= 1")
        self.code_dim = code_dim
        self.codes = np.zeros((self.buffer_size, self.n_envs, code_dim), dtype=np.float32)
        self.code_generator = np.random.default_rng(seed)

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        if self.codes is None:
            raise RuntimeError("CodedReplayBuffer.add before set_codes(code_dim, seed)")
        draw = self.code_generator.standard_normal((self.n_envs, self.code_dim))
        self.codes[self.pos] = draw / math.sqrt(self.code_dim)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> CodedReplayBufferSamples:
        # SB3 draws each sample's env index from numpy's global generator inside
        # _get_samples; the same draw is repeated here from the same state, so the codes
        # belong to the transitions returned and the global generator ends where SB3 leaves it
        state = np.random.get_state()
        samples = super()._get_samples(batch_inds, env)
        after = np.random.get_state()
        np.random.set_state(state)
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        np.random.set_state(after)
        codes = self.to_torch(self.codes[batch_inds, env_indices])
        return CodedReplayBufferSamples(*samples, codes=codes)
