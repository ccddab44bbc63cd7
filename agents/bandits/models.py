"""Networks for S parallel trials.

:class:`StackedMLP` holds M independent deterministic MLPs (M = trials, or trials x heads)
with parameters stacked on a leading dimension and runs them with batched matmuls; it
supports per-model dropout masks and exposes the last hidden layer (for NeuralLinear).
:class:`VmappedVariational` runs S copies of an ``ivi_rl`` variational network through
``torch.func.vmap``: the core module is the single source of truth, and every trial is the
same computation it would be alone.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

import ivi_rl
from ivi_rl.stability import POWER_ITERATIONS, layer_curvatures

__all__ = ["StackedMLP", "VmappedVariational", "clip_grad_norm_per_model"]

WARM_ITERATIONS = 5
"""Power iterations per curvature measurement after the first, which warm-start from the
previous top vectors (the curvature drifts slowly between retrains)."""


class StackedMLP:
    """M ReLU MLPs in -> hidden... -> out; weights [M, out, in], PyTorch's default init
    (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases), one generator per model."""

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        in_features: int,
        out_features: int,
        hidden: Sequence[int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        widths = [in_features, *hidden, out_features]
        m = len(generators)
        self.weights = [
            torch.empty(m, o, i, device=device, dtype=dtype) for i, o in itertools.pairwise(widths)
        ]
        self.biases = [torch.empty(m, o, device=device, dtype=dtype) for o in widths[1:]]
        self.reset(generators)

    def reset(self, generators: Sequence[torch.Generator]) -> None:
        with torch.no_grad():
            for w, b in zip(self.weights, self.biases, strict=True):
                bound = 1.0 / math.sqrt(w.shape[-1])
                for k, g in enumerate(generators):
                    w[k].uniform_(-bound, bound, generator=g)
                    b[k].uniform_(-bound, bound, generator=g)
        for p in self.parameters():
            p.requires_grad_(True)

    def parameters(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

    def features(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """Last hidden layer [M, B, h] for inputs [M, B, in]; ``masks`` (one per hidden layer,
        [M, B, h], already scaled by 1/keep) apply dropout."""
        h = x
        for layer, (w, b) in enumerate(zip(self.weights[:-1], self.biases[:-1], strict=True)):
            h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)))
            if masks is not None:
                h = h * masks[layer]
        return h

    def head(self, features: Tensor) -> Tensor:
        return torch.baddbmm(
            self.biases[-1].unsqueeze(1), features, self.weights[-1].transpose(1, 2)
        )

    def __call__(self, x: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        return self.head(self.features(x, masks))


def clip_grad_norm_per_model(params: Sequence[Tensor], max_norm: float) -> None:
    """Clip each model's gradient (all tensors' slices k together) to ``max_norm``."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    # elementwise adds over the layers in a fixed order: a reduction over a stacked [L, M]
    # tensor sums in an order that depends on M, and batched trials must equal lone ones
    norms = sum(g.pow(2).flatten(1).sum(1) for g in grads).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


class _Objective(nn.Module):
    """Wraps the network so ``functional_call`` can evaluate predictions or a loss per trial."""

    def __init__(self, model: ivi_rl.VariationalMLP, loss: Callable[..., Tensor]) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.dims = list(model._noise_dims)

    def forward(
        self,
        x: Tensor,
        z: Tensor,
        y: Tensor | None = None,
        mask: Tensor | None = None,
        extra: float = 0.0,
    ):
        shape = z.shape[:-1]
        noise = ivi_rl.Noise(tuple(z.split(self.dims, dim=-1)), shape)
        pred = self.model(x, noise)
        if y is None:
            return pred
        return self.loss(self.model, pred, y, mask, extra)


class _Curvature(nn.Module):
    """Wraps the network so ``functional_call`` can measure its curvature per trial
    (:func:`ivi_rl.stability.layer_curvatures`)."""

    def __init__(self, model: ivi_rl.VariationalMLP) -> None:
        super().__init__()
        self.model = model
        self.dims = list(model._noise_dims)
        self.rates: list[tuple[float, float | None]] = []
        self.iterations = POWER_ITERATIONS

    def forward(self, x: Tensor, outputs: Tensor, z: Tensor, vectors: tuple[Tensor, ...]):
        noise = z.split(self.dims, dim=-1)
        kappa, found = layer_curvatures(
            self.model, x, outputs, noise, self.rates, vectors, self.iterations
        )
        return kappa, tuple(found)


class VmappedVariational:
    """S copies of a variational network, one per trial, each initialised (its prior drawn)
    from that trial's generator; parameters stacked [S, ...] and run with ``vmap``.

    Args:
        make: builds one network (on the right device and dtype).
        loss: ``loss(model, pred, y, mask, extra) -> scalar`` for one trial.
        generators: one per trial, for the prior draw.
    """

    def __init__(
        self,
        make: Callable[[], ivi_rl.VariationalMLP],
        loss: Callable[..., Tensor],
        generators: Sequence[torch.Generator],
    ) -> None:
        wrappers = []
        for g in generators:
            model = make()
            model.reset_parameters(generator=g)
            wrappers.append(_Objective(model, loss))
        stacked, _ = stack_module_state(wrappers)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items()}
        self.prior = {k: v.detach().clone() for k, v in stacked.items()}
        self.template = copy.deepcopy(wrappers[0]).to("meta")
        self.first = wrappers[0].model  # for parameter groups and noise sizes
        self.noise_dim = sum(self.first._noise_dims)
        call = lambda p, *args: functional_call(self.template, p, args)  # noqa: E731
        self._predict = vmap(call, in_dims=(0, 0, 0))
        self._loss = vmap(call, in_dims=(0, 0, 0, 0, 0, None))
        self._curvature_template = _Curvature(copy.deepcopy(wrappers[0].model)).to("meta")
        curvature = lambda p, *args: functional_call(self._curvature_template, p, args)  # noqa: E731
        self._curvature = vmap(curvature)

    def predict(self, x: Tensor, z: Tensor) -> Tensor:
        """x [S, B, d], z [S, R] (one draw per trial) or [S, K, R] (K draws): [S, (K,) B, k]."""
        return self._predict(self.params, x, z)

    def loss(self, x: Tensor, z: Tensor, y: Tensor, mask: Tensor, extra: float = 0.0) -> Tensor:
        """Per-trial losses [S]."""
        return self._loss(self.params, x, z, y, mask, extra)

    def optimizer(self, lr: float, kind: str = "sgd", **kwargs) -> torch.optim.Optimizer:
        """The core's muP/SP parameter groups, mapped onto the stacked parameters."""
        groups = []
        for group in ivi_rl.param_groups(self.first, lr, kind):
            params = [self.params[f"model.{n}"] for n in group["names"]]
            groups.append({**group, "params": params})
        if kind == "sgd":
            return torch.optim.SGD(groups, lr=lr, **kwargs)
        return torch.optim.Adam(groups, lr=lr, **kwargs)

    def curvatures(
        self,
        x: Tensor,
        outputs: Tensor,
        z: Tensor,
        optimizer: torch.optim.Optimizer,
        vectors: list[Tensor] | None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Per-trial Gauss-Newton curvature of every layer in the metric of ``optimizer``'s
        rates (:func:`ivi_rl.stability.layer_curvatures`): inputs x [S, N, d], pulled arms
        [S, N], K weight draws z [S, K, R], warm-start vectors of the previous call (None at
        first). Returns kappa [S, L] and the vectors for the next call."""
        template = self._curvature_template
        template.rates = ivi_rl.stability.layer_rates(self.first, optimizer.param_groups)
        if vectors is None:
            starts = ivi_rl.stability.initial_vectors(self.first, x.dtype)
            vectors = [v.to(x.device).expand(x.shape[0], *v.shape) for v in starts]
            template.iterations = POWER_ITERATIONS
        else:
            template.iterations = WARM_ITERATIONS
        kappa, found = self._curvature(self.params, x, outputs, z, tuple(vectors))
        return kappa, list(found)

    def reset_to_prior(self) -> None:
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(self.prior[k])
