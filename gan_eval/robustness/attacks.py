"""Registry of the foolbox attacks ``gan-eval attack`` runs, and the rules for ε values.

Each entry names a foolbox attack, its norm and its kind; the CLI's choices come from
:data:`ATTACKS`. Nothing here re-implements an attack: a factory only chooses foolbox's class and
its settings. Importing this module does not import foolbox.

========  ======  ============  ==========================================================
name      norm    kind          foolbox attack (settings from :class:`AttackOptions`)
========  ======  ============  ==========================================================
fgsm      linf    fixed-ε       ``LinfFastGradientAttack()`` (one step of size ε, no random start)
pgd       linf    fixed-ε       ``LinfPGD(steps, rel_stepsize, random_start)``
pgd-l2    l2      fixed-ε       ``L2PGD(steps, rel_stepsize, random_start)``
cw        l2      minimization  ``L2CarliniWagnerAttack(binary_search_steps, steps, stepsize)``
deepfool  l2      minimization  ``L2DeepFoolAttack(steps, candidates=2, overshoot)``
========  ======  ============  ==========================================================

**ε units.** Pixels are in [0, 1] (foolbox bounds (0, 1)); an L∞ ε of 8/255 ≈ 0.031 allows eight
gray levels per pixel. An L2 ε is the Euclidean norm of the perturbation over all 3×H×W values at
the attacked images' own resolution, in the same [0, 1] units.

**ε rules** (:func:`plan_epsilons`; every violation is an :class:`InputError` naming the value):

1. A value is a non-negative finite number or fraction (``0.03``, ``8/255``), optionally tagged
   with a norm: ``linf:8/255``, ``l2:0.5``.
2. Only fixed-ε attacks take ε. Minimization attacks (cw, deepfool) search for the smallest
   adversarial perturbation; giving ε when no fixed-ε attack is selected is an error.
3. An untagged value applies to every selected fixed-ε attack, so they must share one norm;
   mixing L∞ and L2 fixed-ε attacks requires tagged values.
4. A tagged value must match the norm of a selected fixed-ε attack (an ``l2:`` value with only
   fgsm/pgd selected is an attack/norm mismatch).
5. An L∞ ε above 1 is an error: the [0, 1] box has L∞ diameter 1, so such a value is a 0..255
   gray level or an L2 size given to an L∞ attack.
6. A norm without given values uses :data:`DEFAULT_EPSILONS`. Minimization attacks also report
   foolbox's success within ε (the minimal perturbation scaled down to ε) at the default grid of
   their norm plus any given values of that norm.

ε = 0 is allowed: it measures the clean decision (0 for dodging by construction).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from gan_eval.errors import InputError


class Norm(enum.StrEnum):
    """Perturbation norm of an attack."""

    LINF = "linf"
    L2 = "l2"


class AttackKind(enum.StrEnum):
    """Fixed-ε attacks answer "is there an adversarial within ε?"; minimization attacks
    "what is the smallest adversarial perturbation?"."""

    FIXED = "fixed-epsilon"
    MINIMIZATION = "minimization"


class TargetModel(enum.StrEnum):
    """What ``gan-eval attack --model`` attacks."""

    RECOGNIZER = "recognizer"
    DISCRIMINATOR = "discriminator"


NORM_SYMBOL = {Norm.LINF: "L∞", Norm.L2: "L2"}

DEFAULT_EPSILONS: dict[Norm, tuple[float, ...]] = {
    Norm.LINF: (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255),
    Norm.L2: (0.0, 0.25, 0.5, 1.0, 2.0),
}
"""ε grid per norm when none is given ([0, 1] pixel units; L2 over 3×H×W values)."""


@dataclass(frozen=True, kw_only=True)
class AttackOptions:
    """Settings of the registered attacks (defaults sized for CPU runs of a few dozen faces)."""

    steps: int = 10  # PGD / PGD-L2 iterations
    rel_stepsize: float | None = None  # PGD step / ε; None: 2.5 / steps (Madry et al.)
    random_start: bool = True  # PGD starts at a uniform point of the ε-ball (foolbox default)
    cw_binary_search_steps: int = 5  # C&W searches over its constant c this many times
    cw_steps: int = 50  # C&W Adam steps per constant
    cw_stepsize: float = 0.01  # C&W Adam step size (in tanh space)
    cw_initial_const: float = 1.0  # C&W starting c (the margin is a distance, ~0.1–1)
    deepfool_steps: int = 50  # DeepFool iterations at most
    deepfool_overshoot: float = 0.02  # DeepFool steps past the linearized boundary by 2%

    def __post_init__(self) -> None:
        for name in ("steps", "cw_binary_search_steps", "cw_steps", "deepfool_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}: expected a positive integer, got {value!r}")
        if self.rel_stepsize is not None and not self.rel_stepsize > 0:
            raise InputError(f"rel_stepsize: expected a positive number, got {self.rel_stepsize}")

    @property
    def pgd_rel_stepsize(self) -> float:
        """PGD step as a fraction of ε: the given one, else 2.5 / steps."""
        return self.rel_stepsize if self.rel_stepsize is not None else 2.5 / self.steps


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: name, norm, kind and a factory of the foolbox attack object."""

    name: str
    norm: Norm
    kind: AttackKind
    factory: Callable[[AttackOptions], Any]
    description: str

    def build(self, options: AttackOptions | None = None) -> Any:
        """The foolbox attack with ``options`` (default settings when None)."""
        return self.factory(options or AttackOptions())

    def settings(self, options: AttackOptions | None = None) -> dict[str, Any]:
        """The foolbox attack's constructor arguments, for the results (provenance)."""
        attack = self.build(options)
        return {"class": type(attack).__name__,
                **{k.strip("_"): v for k, v in vars(attack).items()}}

    @property
    def minimizes(self) -> bool:
        return self.kind is AttackKind.MINIMIZATION


ATTACKS: dict[str, AttackSpec] = {}
"""Registered attacks by name, in registration order."""

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def register_attack(
    name: str, *, norm: Norm, kind: AttackKind, description: str
) -> Callable[[Callable[[AttackOptions], Any]], Callable[[AttackOptions], Any]]:
    """Decorator registering a factory ``options -> foolbox attack`` under ``name``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"attack name {name!r}: lower-case words joined by '-'")
    if name in ATTACKS:
        raise ValueError(f"attack {name!r} is already registered")
    if not isinstance(norm, Norm) or not isinstance(kind, AttackKind):
        raise TypeError("norm and kind must be Norm and AttackKind members")

    def decorate(factory: Callable[[AttackOptions], Any]) -> Callable[[AttackOptions], Any]:
        ATTACKS[name] = AttackSpec(name, norm, kind, factory, description)
        return factory

    return decorate


@register_attack("fgsm", norm=Norm.LINF, kind=AttackKind.FIXED,
                 description="fast gradient sign method, one step of size ε")
def _fgsm(options: AttackOptions) -> Any:
    import foolbox as fb

    return fb.attacks.LinfFastGradientAttack(random_start=False)


@register_attack("pgd", norm=Norm.LINF, kind=AttackKind.FIXED,
                 description="L∞ projected gradient descent (random start)")
def _pgd(options: AttackOptions) -> Any:
    import foolbox as fb

    return fb.attacks.LinfPGD(steps=options.steps, rel_stepsize=options.pgd_rel_stepsize,
                              random_start=options.random_start)


@register_attack("pgd-l2", norm=Norm.L2, kind=AttackKind.FIXED,
                 description="L2 projected gradient descent (random start)")
def _pgd_l2(options: AttackOptions) -> Any:
    import foolbox as fb

    return fb.attacks.L2PGD(steps=options.steps, rel_stepsize=options.pgd_rel_stepsize,
                            random_start=options.random_start)


@register_attack("cw", norm=Norm.L2, kind=AttackKind.MINIMIZATION,
                 description="Carlini & Wagner L2, minimal perturbation")
def _cw(options: AttackOptions) -> Any:
    import foolbox as fb

    return fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=options.cw_binary_search_steps, steps=options.cw_steps,
        stepsize=options.cw_stepsize, initial_const=options.cw_initial_const,
    )


@register_attack("deepfool", norm=Norm.L2, kind=AttackKind.MINIMIZATION,
                 description="DeepFool L2, minimal perturbation")
def _deepfool(options: AttackOptions) -> Any:
    import foolbox as fb

    return fb.attacks.L2DeepFoolAttack(steps=options.deepfool_steps, candidates=2,
                                       overshoot=options.deepfool_overshoot)


DEFAULT_ATTACKS: tuple[str, ...] = ("fgsm", "pgd")
"""The attacks run when none is named: the quick fixed-ε ones (one gradient step; ten). The
minimization attacks (cw, deepfool) run hundreds of gradient steps per image (minutes per face
set on a CPU: 22 minutes for eight faces per set): name them to run them."""


def attack_choices() -> str:
    """``fgsm (linf), pgd (linf), …``: the registered names for help and error messages."""
    return ", ".join(f"{s.name} ({s.norm.value}{', minimization' if s.minimizes else ''})"
                     for s in ATTACKS.values())


def get_attacks(names: Iterable[str]) -> list[AttackSpec]:
    """Registered specs for ``names`` (duplicates dropped, order kept); unknown → InputError."""
    specs: list[AttackSpec] = []
    for name in names:
        spec = ATTACKS.get(str(name).strip().lower())
        if spec is None:
            raise InputError(f"--attack {name!r}: unknown attack; choose from {attack_choices()}")
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise InputError(f"--attack: no attack given; choose from {attack_choices()}")
    return specs


@dataclass(frozen=True)
class Epsilon:
    """One ε value as given: its number, its norm tag (None: untagged) and its text."""

    value: float
    norm: Norm | None
    text: str


_EPS_HELP = ("expected a non-negative number or fraction such as 0.03 or 8/255 ([0, 1] pixel "
             "units), optionally tagged with its norm: linf:8/255, l2:0.5")


def parse_epsilon(given: float | int | str) -> Epsilon:
    """Parse one ε (rule 1 of the module docstring); bad syntax or a negative value → InputError."""
    text = str(given).strip()
    norm: Norm | None = None
    body = text
    if isinstance(given, str) and ":" in text:
        tag, _, body = text.partition(":")
        try:
            norm = Norm(tag.strip().lower())
        except ValueError:
            raise InputError(
                f"--eps {text!r}: unknown norm tag {tag!r}; use linf: or l2: ({_EPS_HELP})"
            ) from None
    if isinstance(given, bool):
        raise InputError(f"--eps {given!r}: {_EPS_HELP}")
    try:
        if isinstance(given, int | float):
            value = float(given)
        elif "/" in body:
            num, _, den = body.partition("/")
            value = float(Fraction(num.strip()) / Fraction(den.strip()))
        else:
            value = float(body.strip())
    except (ValueError, ZeroDivisionError, OverflowError):
        raise InputError(f"--eps {text!r}: not a number; {_EPS_HELP}") from None
    if not math.isfinite(value):
        raise InputError(f"--eps {text!r}: not finite; {_EPS_HELP}")
    if value < 0:
        raise InputError(f"--eps {text!r}: negative; {_EPS_HELP}")
    return Epsilon(value, norm, text)


def plan_epsilons(
    specs: Sequence[AttackSpec], epsilons: Sequence[float | int | str] | None
) -> dict[str, tuple[float, ...]]:
    """ε values (sorted, distinct) per attack name, by the rules of the module docstring.

    For a minimization attack the values are those at which its success within ε is reported.
    """
    parsed = [parse_epsilon(e) for e in (epsilons or ())]
    fixed = [s for s in specs if not s.minimizes]
    if parsed and not fixed:
        names = ", ".join(s.name for s in specs)
        fixed_names = ", ".join(s.name for s in ATTACKS.values() if not s.minimizes)
        raise InputError(
            f"--eps {parsed[0].text}: {names} search for the minimal perturbation and take no ε "
            f"(they report the distribution of minimal sizes); drop --eps or add a fixed-ε "
            f"attack: {fixed_names}"
        )
    fixed_norms = {s.norm for s in fixed}
    untagged = [e for e in parsed if e.norm is None]
    if untagged and len(fixed_norms) > 1:
        listing = ", ".join(f"{s.name} ({s.norm.value})" for s in fixed)
        raise InputError(
            f"--eps {untagged[0].text}: ambiguous, the selected attacks use different norms "
            f"({listing}); tag each value with its norm, e.g. linf:8/255 or l2:0.5"
        )
    by_norm: dict[Norm, list[float]] = {}
    for eps in parsed:
        norm = eps.norm if eps.norm is not None else next(iter(fixed_norms))
        if norm not in fixed_norms:
            listing = ", ".join(f"{s.name} ({s.norm.value})" for s in fixed)
            raise InputError(
                f"--eps {eps.text}: attack/norm mismatch, no selected fixed-ε attack uses "
                f"{norm.value} (selected: {listing})"
            )
        if norm is Norm.LINF and eps.value > 1.0:
            raise InputError(
                f"--eps {eps.text}: an L∞ ε above 1 is outside the [0, 1] pixel range; ε is in "
                f"[0, 1] units (did you mean {eps.value:g}/255 ≈ {eps.value / 255:.4f}? an L2 "
                f"size needs an L2 attack such as pgd-l2 and the tag l2:)"
            )
        by_norm.setdefault(norm, []).append(eps.value)
    plan: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        given = by_norm.get(spec.norm, [])
        if spec.minimizes:
            values = [*DEFAULT_EPSILONS[spec.norm], *given]
        else:
            values = given or list(DEFAULT_EPSILONS[spec.norm])
        plan[spec.name] = tuple(sorted(set(values)))
    return plan
