"""Device resolution, one rule for every command: ``None`` or ``"auto"`` picks CUDA when it is
available, else the CPU; anything else must name a CPU or CUDA device that exists here."""

from __future__ import annotations

import torch

from gan_eval.errors import InputError


def resolve_device(device: str | torch.device | None, *, option: str = "--device") -> torch.device:
    """``device`` as a :class:`torch.device`; :class:`InputError` naming ``option`` otherwise."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(
            f"{option} {device!r}: not a device (expected auto, cpu, cuda or cuda:N)"
        ) from exc
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"{option} {device}: only cpu and cuda devices are supported")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{option} {device}: CUDA is not available on this machine; use cpu")
    if resolved.type == "cuda" and resolved.index is not None \
            and resolved.index >= torch.cuda.device_count():
        raise InputError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA "
                         "device(s)")
    return resolved
