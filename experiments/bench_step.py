"""Time one IVI training step against the same deterministic MLP.

    python -m experiments.bench_step [--repeats 15] [--steps 50] [--threads 1] [--noise-aware]

One step = one weight draw, forward, masked-MSE backward, SGD (momentum 0.9, muP groups).
Networks: in_features -> W -> W -> out_features for W in --widths, batch --batch; the
variational one is ``make_mlp``'s default (input and output layers low-rank, rank 10), the
deterministic one is ``make_mlp(stochastic='none')``. Each timing is the median over
``--repeats`` blocks of ``--steps`` steps, after a warm-up, with the two networks' blocks
interleaved; the ratio column is the median of the per-block ratios. The last line printed is
``ratio <median variational / deterministic step time at the first width>``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

import ivi_rl
from ivi_rl.contrib import noise_aware


def make_step(
    model: ivi_rl.VariationalMLP, batch: int, noise_aware_step: bool = False
) -> Callable[[], None]:
    """One IVI training step on fixed synthetic data (masked MSE, one arm per row).

    ``noise_aware_step``: the noise-aware step of ``ivi_rl.contrib.noise_aware`` (noise std 1
    for every row): per-row weights, draw-coupled target codes, and the proximal step to the
    prior draw."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, model.in_features, generator=gen)
    y = torch.randn(batch, model.out_features, generator=gen)
    arms = torch.randint(0, model.out_features, (batch,), generator=gen)
    mask = torch.nn.functional.one_hot(arms, model.out_features).bool()
    opt = ivi_rl.make_optimizer(model, 1e-3)
    loss_fn, extra, anchor, strength = ivi_rl.expected_loss, {}, None, 0.0
    if noise_aware_step:
        std = torch.ones(batch)
        weights, scale = noise_aware.noise_weights(std)
        codes = noise_aware.perturbation_codes((batch,), model.noise_dim, generator=gen)
        extra = {"weights": weights, "perturbation": codes, "target_std": std}
        anchor, strength = noise_aware.PriorAnchor(model), float(scale) / batch
        loss_fn = noise_aware.noise_aware_loss

    def step() -> None:
        loss = loss_fn(model, x, y, mask=mask, generator=gen, **extra)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if anchor is not None:
            anchor.proximal_step(opt, strength)

    return step


def time_block(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def time_pair(
    det: Callable[[], None], var: Callable[[], None], steps: int, repeats: int
) -> tuple[float, float, float]:
    """Median step times of both, and the median of per-block ratios.

    Blocks alternate between the two networks, so slow drifts of the machine (other load,
    frequency changes) hit both alike instead of biasing the ratio.
    """
    for step in (det, var):  # warm-up: allocator, kernels, momentum buffers
        time_block(step, steps)
    t_det, t_var = [], []
    for _ in range(repeats):
        t_det.append(time_block(det, steps))
        t_var.append(time_block(var, steps))
    ratios = [v / d for v, d in zip(t_var, t_det, strict=True)]
    return statistics.median(t_det), statistics.median(t_var), statistics.median(ratios)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[100, 512])
    parser.add_argument("--in-features", type=int, default=117, help="117 = mushroom contexts")
    parser.add_argument("--out-features", type=int, default=2, help="2 = mushroom arms")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=21, help="timed blocks (median taken)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--rank", type=int, default=None, help="low-rank factor rank (default: make_mlp's)"
    )
    parser.add_argument(
        "--noise-aware",
        action="store_true",
        help="time the noise-aware step (weights, target codes, proximal anchor) instead",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), batch {args.batch}, {args.in_features}->W->W->"
        f"{args.out_features}, rank {args.rank or ivi_rl.DEFAULT_RANK}, "
        f"{'noise-aware' if args.noise_aware else 'plain'} IVI step, "
        f"median of {args.repeats} x {args.steps} steps"
    )
    print(f"{'width':>6} {'deterministic ms':>17} {'variational ms':>15} {'ratio':>6}")
    ratios = []
    for width in args.widths:
        hidden = (width, width)
        det = ivi_rl.make_mlp(args.in_features, args.out_features, hidden, stochastic="none")
        var = ivi_rl.make_mlp(args.in_features, args.out_features, hidden, rank=args.rank)
        t_det, t_var, ratio = time_pair(
            make_step(det, args.batch),
            make_step(var, args.batch, args.noise_aware),
            args.steps,
            args.repeats,
        )
        ratios.append(ratio)
        print(f"{width:>6} {t_det * 1e3:>17.3f} {t_var * 1e3:>15.3f} {ratio:>6.2f}")
    print(f"ratio {ratios[0]:.3f}")
    return ratios[0]


if __name__ == "__main__":
    main()
