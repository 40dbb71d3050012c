"""What a restoration audit runs: the degradation grid and the built-in methods (torch-free).

Imported by the CLI before any heavy module, so that an unknown degradation, a bad severity or
an unknown built-in method is refused at once (exit 2 naming the option).

Degradations (the severity's unit in brackets; applied by :mod:`.degradations`):

==============  =====================================================  ==========================
``blur``        Gaussian blur, σ [pixels of the audited image]         σ in (0, 16]
``downsample``  bicubic downsampling by an integer factor s            s in 2..16, ≤ image side
``noise``       additive Gaussian noise, sd [pixel levels of 0..255]   sd in (0, 255]
``jpeg``        JPEG compression, quality [1..100] (lower is worse)    q in 1..100, whole numbers
==============  =====================================================  ==========================

``--degradation KIND`` takes the default severities of :data:`DEFAULT_SEVERITIES`;
``--degradation KIND:S1,S2`` names them. The default grid is every kind at its defaults.

Built-in methods (:data:`BUILTINS`; no weights, run by :mod:`.baselines`) and the degradations
each restores (the paired reference of every comparison is ``builtin:none``):

- ``builtin:none`` — no restoration: the degraded image itself (a downsampled image brought back
  to size by pixel replication, nearest neighbour);
- ``builtin:bicubic`` — bicubic upsampling (downsampling only);
- ``builtin:richardson_lucy``, ``builtin:wiener`` — deconvolution with the known Gaussian PSF
  (blur only; scikit-image ``restoration``);
- ``builtin:tv``, ``builtin:nl_means`` — total-variation (Chambolle) and non-local-means
  denoising given the known noise sd (noise only; scikit-image ``restoration``).

The classical methods are given the degradation's true parameters (PSF, noise level): they are
oracle baselines, stronger than the same methods used blind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gan_eval.errors import InputError

__all__ = [
    "BUILTINS",
    "DEFAULT_SEVERITIES",
    "KINDS",
    "NONE",
    "BuiltinMethod",
    "Condition",
    "DegradationKind",
    "default_grid",
    "parse_degradations",
]


@dataclass(frozen=True)
class DegradationKind:
    """One kind of degradation: its severity's name, unit and valid range."""

    name: str
    parameter: str
    unit: str
    low: float
    high: float
    integer: bool
    worse_when_higher: bool
    low_open: bool = False  # the low end itself is excluded (a blur of σ = 0 is no blur)


KINDS: dict[str, DegradationKind] = {
    k.name: k for k in (
        DegradationKind("blur", "sigma", "pixels", 0.0, 16.0, False, True, low_open=True),
        DegradationKind("downsample", "scale", "integer factor", 2.0, 16.0, True, True),
        DegradationKind("noise", "sd", "pixel levels of 0..255", 0.0, 255.0, False, True,
                        low_open=True),
        DegradationKind("jpeg", "quality", "JPEG quality 1..100", 1.0, 100.0, True, False),
    )
}
"""The degradation kinds, in report order."""

DEFAULT_SEVERITIES: dict[str, tuple[float, ...]] = {
    "blur": (1.0, 2.0, 3.0),
    "downsample": (2.0, 4.0),
    "noise": (10.0, 25.0, 50.0),
    "jpeg": (50.0, 20.0, 10.0),
}
"""Severities of each kind when ``--degradation KIND`` names none, mildest first."""


@dataclass(frozen=True, order=True)
class Condition:
    """One degradation at one severity (``key``: ``"blur:2"``, ``"jpeg:10"``)."""

    kind: str
    severity: float

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.severity:g}"

    @property
    def spec(self) -> DegradationKind:
        return KINDS[self.kind]

    def describe(self) -> str:
        """A reader's label, e.g. ``"blur σ = 2 px"``, ``"jpeg quality 10"``."""
        kind = self.spec
        if self.kind == "blur":
            return f"blur σ = {self.severity:g} px"
        if self.kind == "downsample":
            return f"downsample ×{self.severity:g}"
        if self.kind == "noise":
            return f"noise sd = {self.severity:g}/255"
        return f"{kind.name} {kind.parameter} {self.severity:g}"

    def to_json(self) -> dict[str, object]:
        kind = self.spec
        return {"key": self.key, "kind": self.kind, "severity": self.severity,
                "parameter": kind.parameter, "unit": kind.unit, "label": self.describe()}


def _severity(kind: DegradationKind, text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{option}: severity {text!r} of {kind.name} is not a number; expected "
                         f"{kind.parameter} in {kind.unit}") from None
    too_low = value <= kind.low if kind.low_open else value < kind.low
    if not math.isfinite(value) or too_low or value > kind.high \
            or (kind.integer and value != int(value)):
        bound = "(" if kind.low_open else "["
        whole = " as whole numbers" if kind.integer else ""
        raise InputError(f"{option}: {kind.name} severity {text} is out of range; expected "
                         f"{kind.parameter} ({kind.unit}){whole} in "
                         f"{bound}{kind.low:g}, {kind.high:g}]")
    return value


def parse_degradations(values: list[str] | tuple[str, ...] | None,
                       option: str = "--degradation") -> tuple[Condition, ...]:
    """``KIND`` or ``KIND:S1,S2,…`` strings → the grid (kinds in :data:`KINDS` order, each kind's
    severities mildest first, duplicates merged); None or empty: :func:`default_grid`.
    :class:`InputError` naming ``option`` for an unknown kind or a severity out of range."""
    if not values:
        return default_grid()
    found: set[Condition] = set()
    for value in values:
        name, sep, rest = value.strip().partition(":")
        kind = KINDS.get(name.strip().lower())
        if kind is None:
            raise InputError(f"{option} {value!r}: unknown degradation {name!r}; expected one "
                             f"of {', '.join(KINDS)} (optionally KIND:S1,S2)")
        if sep and not rest.strip():
            raise InputError(f"{option} {value!r}: no severity after ':'; expected "
                             f"{kind.name}:S1,S2 with {kind.parameter} in {kind.unit}")
        texts = [t for t in rest.split(",")] if sep else []
        severities = ([_severity(kind, t.strip(), option) for t in texts] if texts
                      else list(DEFAULT_SEVERITIES[kind.name]))
        found |= {Condition(kind.name, s) for s in severities}
    return _ordered(found)


def _ordered(conditions: set[Condition]) -> tuple[Condition, ...]:
    order = list(KINDS)

    def rank(c: Condition) -> tuple[int, float]:
        return order.index(c.kind), c.severity if c.spec.worse_when_higher else -c.severity

    return tuple(sorted(conditions, key=rank))


def default_grid() -> tuple[Condition, ...]:
    """Every kind at its :data:`DEFAULT_SEVERITIES` (11 conditions)."""
    return _ordered({Condition(k, s) for k, values in DEFAULT_SEVERITIES.items() for s in values})


@dataclass(frozen=True)
class BuiltinMethod:
    """A built-in restoration method: its spec, the kinds it restores, what it does."""

    spec: str
    kinds: tuple[str, ...]
    label: str

    def applies(self, condition: Condition) -> bool:
        return condition.kind in self.kinds


NONE = "builtin:none"
"""No restoration: every comparison is paired against it."""

BUILTINS: dict[str, BuiltinMethod] = {
    m.spec: m for m in (
        BuiltinMethod(NONE, tuple(KINDS), "no restoration (degraded image; nearest-neighbour "
                      "upsampling after downsampling)"),
        BuiltinMethod("builtin:bicubic", ("downsample",), "bicubic upsampling"),
        BuiltinMethod("builtin:richardson_lucy", ("blur",),
                      "Richardson–Lucy deconvolution, known PSF, 30 iterations (scikit-image)"),
        BuiltinMethod("builtin:wiener", ("blur",),
                      "Wiener deconvolution, known PSF, balance 0.01 (scikit-image)"),
        BuiltinMethod("builtin:tv", ("noise",),
                      "total-variation denoising (Chambolle), weight = known noise sd "
                      "(scikit-image)"),
        BuiltinMethod("builtin:nl_means", ("noise",),
                      "non-local-means denoising, h = 0.8 × known noise sd (scikit-image)"),
    )
}
"""Built-in methods, in report order."""


def check_method_spec(spec: str, option: str = "MODEL") -> None:
    """Torch-free check of a MODEL string: a known ``builtin:`` name, a ``py:`` spec, or a
    path (``file.py:attr``'s file) that exists. :class:`InputError` naming ``option``."""
    if spec.startswith("builtin:"):
        if spec not in BUILTINS:
            raise InputError(f"{option} {spec}: unknown built-in method; expected one of "
                             f"{', '.join(BUILTINS)}, or a model (py:pkg.mod:attr, file.py:attr, "
                             "a TorchScript archive, an .onnx model, a gan-eval restoration "
                             "checkpoint)")
        return
    if spec.startswith("py:"):
        return
    from pathlib import Path

    path_text, sep, _ = spec.rpartition(":")
    path = Path(path_text if sep and path_text.endswith(".py") else spec).expanduser()
    if not path.exists():
        raise InputError(f"{option} {spec}: no such file or folder {path}")
