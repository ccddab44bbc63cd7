"""Argument checks shared by the package. Each raises one error that names the argument,
the value it got and what is accepted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = [
    "check_choice",
    "check_generator",
    "check_positive_int",
    "check_same_device",
    "resolve_device",
    "sample_shape_of",
]


_EMPTY = torch.Size()


def check_choice(argument: str, value: object, accepted: Iterable[str]) -> str:
    """``value`` if it is one of the strings ``accepted``; else one ``ValueError`` naming
    the argument, the value and every accepted one. The one check of a string option."""
    options = [str(a) for a in accepted]
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{argument}={value!r} is not accepted; accepted: {', '.join(options)}")
    return value


def check_positive_int(value: object, argument: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument}={value!r} must be an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{argument}={value!r} must be an int >= {minimum}")
    return value


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Parse a device argument; ``None`` means CPU. CUDA must be present when asked for."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device={device!r} must be a str or torch.device, e.g. 'cpu' or 'cuda'")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device={device!r} is not a device; accepted: 'cpu', 'cuda', 'cuda:N'"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch.cuda.is_available() is False; "
            "accepted here: 'cpu'"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not supported; accepted: 'cpu', 'cuda', 'cuda:N'")
    return resolved


def check_same_device(tensor: torch.Tensor, reference: torch.Tensor, argument: str) -> None:
    """Raise unless ``tensor`` is a floating tensor on ``reference``'s device and dtype."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(
            f"{argument} has dtype {tensor.dtype}; expected the module's floating dtype "
            f"{reference.dtype} (convert it with .to({reference.dtype}))"
        )
    if tensor.device != reference.device:
        raise ValueError(
            f"{argument} is on device {tensor.device}, but the module's parameters are on "
            f"{reference.device}; move it with .to({str(reference.device)!r})"
        )
    if tensor.dtype != reference.dtype:
        raise TypeError(
            f"{argument} has dtype {tensor.dtype}, but the module's parameters have "
            f"{reference.dtype}; convert one of them"
        )


def check_generator(generator: object, device: torch.device) -> None:
    """A sampling generator must be a torch.Generator on the device it samples for."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator={generator!r} must be a torch.Generator or None")
    if generator.device.type != device.type:
        raise ValueError(
            f"generator is on device {generator.device}, but sampling happens on {device}; "
            f"create it with torch.Generator(device={str(device)!r})"
        )


def sample_shape_of(sample_shape: object) -> torch.Size:
    """Normalise a sample shape argument (an int, a sequence of ints or a torch.Size)."""
    if sample_shape == ():  # the common case, checked first because it is on every step
        return _EMPTY
    if isinstance(sample_shape, int) and not isinstance(sample_shape, bool):
        sample_shape = (sample_shape,)
    if not isinstance(sample_shape, Sequence) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sample_shape
    ):
        raise ValueError(
            f"sample_shape={sample_shape!r} must be a tuple of positive ints, e.g. () or (16,)"
        )
    return torch.Size(sample_shape)
