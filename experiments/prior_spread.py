"""How the prior predictive of a Q-network splits into state-dependent and state-independent
parts (the reason IVIDQN's biases have prior std 0).

    python -m experiments.prior_spread

For the default variational MLP (one-hot inputs of Deep Sea N = 8, hidden [50, 50], two
actions) under muP and SP, with bias prior std 1 and 0, over 400 draws: the total std of Q,
the std that remains after removing each draw's average over states, and how often a draw
prefers the same action in every state (1 = always, 0.5 = as often as chance).
"""

from __future__ import annotations

import torch

import ivi_rl


def measure(
    parametrization: ivi_rl.Parametrization, size: int = 8, draws: int = 400
) -> tuple[float, float, float]:
    torch.manual_seed(0)
    model = ivi_rl.make_mlp(size * size, 2, (50, 50), parametrization=parametrization)
    q = model(torch.eye(size * size), sample_shape=(draws,))  # [draws, states, 2]
    total = q.std(0).mean().item()
    state_dependent = (q - q.mean(1, keepdim=True)).std(0).mean().item()
    prefers_0 = (q[..., 0] > q[..., 1]).float().mean(1)  # per draw: share of states
    consistency = ((prefers_0 - 0.5).abs() * 2).mean().item()
    return total, state_dependent, consistency


def main() -> None:
    header = ("parametrization", "bias std", "total sd", "state-dep. sd", "same action")
    print("{:>16} {:>8} {:>9} {:>13} {:>11}".format(*header))
    for name, kind in (("mup", ivi_rl.MaximalUpdate), ("sp", ivi_rl.Standard)):
        for bias_std in (1.0, 0.0):
            total, dep, same = measure(kind(bias_std=bias_std))
            print(f"{name:>16} {bias_std:>8.1f} {total:>9.3f} {dep:>13.3f} {same:>11.2f}")


if __name__ == "__main__":
    main()
