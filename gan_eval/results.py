"""The results JSON (schema ``gan-eval/results/v1``): metrics, sections and provenance.

Every command that computes numbers returns a :class:`Results`; ``save`` writes it atomically and
``load`` validates a file written by any gan-eval version of this schema.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gan_eval.catalogue import METRICS, metric_spec
from gan_eval.environment import environment
from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, agree, estimand_label
from gan_eval.fileio import atomic_write_text, read_committed

SCHEMA = "gan-eval/results/v1"

SPAN_MEANING = ("(value − floor) / (ceiling − floor), all three at the controls' sizes: 0 = as "
                "good as real data (the floor), 1 = as bad as a degenerate generator (the "
                "ceiling), whichever direction the metric is better in")
"""What a span is (:func:`span_of`), for readers of results files and tables."""

SEPARATION_Z = 2.0
"""A floor and a ceiling closer than this many standard errors of their difference do not
define a span: the metric cannot tell the degenerate generator from real data here."""


def span_of(value: float, floor: float, ceiling: float, *, higher_is_better: bool) -> float | None:
    """How far ``value`` lies from the floor (real data) towards the ceiling (a degenerate
    generator): ``(value − floor) / (ceiling − floor)``, 0 at the floor, 1 at the ceiling.

    Oriented by the data, not by the metric's direction: below 0 is better than real data
    (closer to the reference than held-out real images are: copying, or a fidelity metric
    traded for diversity), above 1 worse than the degenerate generator. None when the ceiling is
    not worse than the floor in the metric's direction (no scale to measure on).
    """
    gap = (floor - ceiling) if higher_is_better else (ceiling - floor)
    if not gap > 0:
        return None
    return (value - floor) / (ceiling - floor)


@dataclass(frozen=True)
class Span:
    """A metric's floor, ceiling and span as recorded in its details (:meth:`Metric.span`).

    Attributes:
        value: the span (:func:`span_of`) of ``generated``; None with ``reason`` when there is
            none (no controls recorded, or a floor and ceiling that do not separate).
        floor, ceiling: real vs real, and the worse degenerate generator (metric units).
        generated: the generated set's value at the controls' sizes (what the span places).
        n_generated, n_reference: the controls' sizes (``h`` vs ``r``).
        ceiling_of: which degenerate generator set the ceiling.
    """

    value: float | None
    floor: float | None = None
    ceiling: float | None = None
    generated: float | None = None
    n_generated: int | None = None
    n_reference: int | None = None
    ceiling_of: str | None = None
    reason: str | None = None


def _record_number(record: Any, key: str) -> float | None:
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Metric:
    """One number: a metric on one extractor, with its 95% interval and sample counts.

    Build it with :meth:`of` (which derives ``ci95`` and ``details["interval"]`` from one
    :class:`~gan_eval.estimates.IntervalResult`); the constructor is for reading results files.
    """

    name: str
    extractor: str
    value: float
    ci95: tuple[float, float] | None
    n_generated: int
    n_reference: int
    higher_is_better: bool
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        extractor: str,
        estimate: IntervalResult | float,
        *,
        n_generated: int,
        n_reference: int,
        no_interval: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Metric:
        """One metric; the only place that turns an interval into ``ci95`` and
        ``details["interval"]``.

        Args:
            estimate: the metric's :class:`~gan_eval.estimates.IntervalResult` — ``value`` is
                its estimate, ``ci95`` its bounds clipped to the catalogue's range (a Wilson
                bound cannot leave [0, 1], an FID interval cannot reach below 0), and
                ``details["interval"]`` its record (what it is an interval *of*, se, method,
                n) — or a plain number when there is no interval, with ``no_interval``
                saying why (stored as ``details["no_interval"]``).
            n_generated, n_reference: the sample counts behind the number (an interval's
                ``n`` must be ``n_generated``).
            details: the producer's other details (never ``interval`` / ``no_interval``).
        Direction (``higher_is_better``) comes from the catalogue (:mod:`gan_eval.catalogue`).

        Raises:
            ValueError: a producer's mistake — a number without ``no_interval``, an interval
                with one, an interval of another ``n``, an interval whose bounds, se and
                estimate contradict its method (:meth:`IntervalResult.inconsistency`: a reader
                would refuse the file), or ``details`` that already hold an interval record.
        """
        spec = metric_spec(name)
        details = dict(details or {})
        if "interval" in details or "no_interval" in details:
            raise ValueError(f"{name}: pass the interval (or no_interval), not a details entry")
        if isinstance(estimate, IntervalResult):
            if no_interval is not None:
                raise ValueError(f"{name}: an interval and a reason for having none")
            if estimate.n != n_generated:
                raise ValueError(f"{name}: interval of n={estimate.n}, metric of "
                                 f"n_generated={n_generated}")
            problem = estimate.inconsistency()
            if problem:
                raise ValueError(f"{name}: {problem}")
            value = estimate.estimate
            ci95: tuple[float, float] | None = clipped(name, estimate.interval)
            details["interval"] = estimate.to_json()
        else:
            if not no_interval:
                raise ValueError(f"{name}: a number without an interval needs no_interval "
                                 "(the reason there is none)")
            value, ci95 = estimate, None
            details["no_interval"] = no_interval
        return cls(name=name, extractor=extractor, value=float(value), ci95=ci95,
                   n_generated=n_generated, n_reference=n_reference,
                   higher_is_better=spec.higher_is_better, details=details)

    def checked_interval(self, where: str) -> IntervalResult | None:
        """The calibrated interval this metric records (``details.interval``), checked against
        itself and against the metric; None when it records none.

        Raises:
            InputError: starting with ``where`` (name the file and the metric): a malformed or
                self-contradicting record (:meth:`IntervalResult.from_json`: bounds, se and
                estimate that disagree under its method, an estimate outside its bounds), an
                interval ``n`` that is not ``n_generated``, or a ``ci95`` that is not the
                interval's bounds clipped to the catalogue's range (what :meth:`of` writes);
                ``details.interval_both_sets`` (shown beside it) is held to the first two.
        """
        raw = self.details.get("interval")
        if raw is None:
            return None
        interval = IntervalResult.from_json(raw, estimate=self.value, where=where)
        if interval.n != self.n_generated:
            raise InputError(f"{where}: an interval of n={interval.n} generated samples, but "
                             f"the metric's n_generated is {self.n_generated}")
        expected = clipped(self.name, interval.interval)
        if self.ci95 is None or self.ci95[0] > self.ci95[1] or not all(
                agree(a, b, *interval.interval) for a, b in zip(self.ci95, expected, strict=True)):
            raise InputError(f"{where}: ci95 {list(self.ci95) if self.ci95 else None} is not the "
                             f"interval's bounds clipped to the range of {self.name} "
                             f"({list(expected)})")
        both = self.details.get("interval_both_sets")
        if both is not None:  # the interval with the reference redrawn too: shown, so checked
            other = IntervalResult.from_json(both, estimate=self.value, where=f"{where}_both_sets")
            if other.n != self.n_generated:
                raise InputError(f"{where}_both_sets: an interval of n={other.n} generated "
                                 f"samples, but the metric's n_generated is {self.n_generated}")
        return interval

    def interval_of(self) -> str:
        """What ``ci95`` is an interval of, for a reader (:func:`gan_eval.estimates
        .estimand_label`: ``"at n=1000"`` or ``"population"``), ``""`` without a calibrated
        interval."""
        interval = self.details.get("interval")
        if not isinstance(interval, dict):
            return ""
        return estimand_label(interval.get("estimand"), interval.get("n", self.n_generated))

    def span(self) -> Span:
        """The floor, ceiling and span recorded in ``details`` (``floor``, ``ceiling``,
        ``at_control_sizes``: :mod:`gan_eval.metrics.controls`), recomputed with
        :func:`span_of` (a stored span is never trusted); ``value`` None with a ``reason`` when
        the records are missing, malformed, or do not separate."""
        floor, ceiling = self.details.get("floor"), self.details.get("ceiling")
        generated = self.details.get("at_control_sizes")
        if floor is None and ceiling is None:
            why = self.details.get("no_controls")
            return Span(None, reason=str(why) if why else
                        "no floor and ceiling recorded (results written by an older gan-eval, "
                        "or a metric without controls)")
        numbers = {key: _record_number(record, key2) for key, record, key2 in (
            ("floor", floor, "value"), ("ceiling", ceiling, "value"),
            ("generated", generated, "value"), ("floor_sd", floor, "sd"),
            ("ceiling_sd", ceiling, "sd"), ("splits", floor, "splits"),
            ("n_generated", floor, "n_generated"), ("n_reference", floor, "n_reference"))}
        bad = sorted(key for key, v in numbers.items() if v is None)
        if bad:
            return Span(None, reason=f"malformed floor/ceiling records in details (missing or "
                                     f"not finite: {', '.join(bad)})")
        f, c, g = numbers["floor"], numbers["ceiling"], numbers["generated"]
        assert f is not None and c is not None and g is not None
        of = ceiling.get("of") if isinstance(ceiling, dict) else None
        known = Span(None, floor=f, ceiling=c, generated=g, ceiling_of=of,
                     n_generated=int(numbers["n_generated"] or 0),
                     n_reference=int(numbers["n_reference"] or 0))
        se_gap = math.hypot(numbers["floor_sd"] or 0.0,
                            numbers["ceiling_sd"] or 0.0) / math.sqrt(numbers["splits"] or 1.0)
        value = span_of(g, f, c, higher_is_better=self.higher_is_better)
        direction = "below" if self.higher_is_better else "above"
        if value is None or abs(c - f) <= SEPARATION_Z * se_gap:
            return replace(known, reason=(
                f"the degenerate generator ({of}: {c:.4g}) does not score clearly worse than "
                f"real data (floor {f:.4g}; the ceiling must lie {direction} it by more than "
                f"{SEPARATION_Z:g} standard errors): this metric cannot tell it from real "
                "images here"))
        return replace(known, value=value)

    def interval_both_sets(self) -> tuple[float, float] | None:
        """The 95 % interval with the reference set redrawn too (``details.interval_both_sets``,
        estimand ``"mean_at_sizes"``), clipped like ``ci95``; None where none was computed."""
        both = self.details.get("interval_both_sets")
        ci = both.get("ci") if isinstance(both, dict) else None
        if not (isinstance(ci, list) and len(ci) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in ci)):
            return None
        low, high = metric_spec(self.name).bounds
        return (min(max(ci[0], low), high), min(max(ci[1], low), high))


@dataclass(frozen=True)
class Omitted:
    """A metric that was not reported because its estimate would not mean what it says here
    (outside the regime where it holds, :mod:`gan_eval.metrics.regimes`): a gate on it cannot
    judge (:mod:`gan_eval.gates`, exit 2 naming ``reason``).

    Attributes:
        name, extractor: as a :class:`Metric` would have them.
        reason: why it was left out, and what would let it be reported (e.g. the ``n`` needed).
        n_generated, n_reference: the sample counts of the run.
        needed_n: generated samples at which it would be reported, when more samples help.
    """

    name: str
    extractor: str
    reason: str
    n_generated: int
    n_reference: int
    needed_n: int | None = None

    @property
    def label(self) -> str:
        """``name[extractor]``."""
        return f"{self.name}[{self.extractor}]"


def clipped(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    """``bounds`` clipped to metric ``name``'s range in the catalogue (a Wilson bound cannot
    leave [0, 1], an FID interval cannot reach below 0): the ``ci95`` a metric reports."""
    low, high = metric_spec(name).bounds
    return (min(max(bounds[0], low), high), min(max(bounds[1], low), high))


@dataclass
class Results:
    """Everything one run measured (``omitted``: metrics left out, each with its reason)."""

    provenance: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    recognition: dict[str, Any] = field(default_factory=dict)
    robustness: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    omitted: list[Omitted] = field(default_factory=list)
    restoration: dict[str, Any] = field(default_factory=dict)

    def omission(self, name: str, extractor: str | None = None) -> Omitted | None:
        """Why ``name`` (on ``extractor``) was left out of ``metrics``, or None when it was not
        (reported, or never computed)."""
        found = [o for o in self.omitted
                 if o.name == name and (extractor is None or o.extractor == extractor)]
        return found[0] if found else None

    def metric(self, name: str, extractor: str | None = None) -> Metric:
        """The metric ``name`` (on ``extractor`` when several extractors report it)."""
        found = [
            m
            for m in self.metrics
            if m.name == name and (extractor is None or m.extractor == extractor)
        ]
        if len(found) != 1:
            where = f" on extractor {extractor!r}" if extractor else ""
            raise KeyError(f"{len(found)} metrics named {name!r}{where}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "provenance": self.provenance,
            "metrics": [asdict(m) for m in self.metrics],
            "recognition": self.recognition,
            "robustness": self.robustness,
            "gates": self.gates,
            "training": self.training,
            "omitted": [asdict(o) for o in self.omitted],
            "restoration": self.restoration,
        }

    def to_text(self) -> str:
        """The results file's text: strict JSON (no NaN / Infinity), indented."""
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the JSON atomically (no half-written file under ``path``)."""
        atomic_write_text(path, self.to_text())

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read and validate a results JSON; :class:`InputError` names the file and the problem
        (every metric's ``details.interval`` is checked: :meth:`Metric.checked_interval`)."""
        path = Path(path)
        try:
            # a report folder's results.json is committed together with its page: read what
            # the last commit gave it, even when a killed writer left that commit half-done
            raw = json.loads(read_committed(path).read_text())
        except FileNotFoundError as exc:
            raise InputError(f"{path}: no such results file") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable results JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise InputError(f"{path}: not a gan-eval results file (expected schema {SCHEMA!r})")
        if not isinstance(raw.get("metrics", []), list):
            raise InputError(f"{path}: 'metrics' must be a list of metric entries")
        metrics = [_metric_from_json(m, f"{path}: metrics[{i}]")
                   for i, m in enumerate(raw.get("metrics", []))]
        for metric in metrics:  # a number whose interval contradicts it is never read
            metric.checked_interval(f"{path}: {metric.name}[{metric.extractor}] details.interval")
        sections = {}
        for name in SECTIONS:
            value = raw.get(name, {})
            if not isinstance(value, dict):
                raise InputError(f"{path}: '{name}' must be a JSON object, got "
                                 f"{type(value).__name__}")
            sections[name] = value
        omitted = raw.get("omitted", [])  # absent in files written before it existed
        if not isinstance(omitted, list):
            raise InputError(f"{path}: 'omitted' must be a list of omitted-metric entries")
        return cls(metrics=metrics, **sections,
                   omitted=[_omitted_from_json(o, f"{path}: omitted[{i}]")
                            for i, o in enumerate(omitted)])


SECTIONS = ("provenance", "recognition", "robustness", "gates", "training", "restoration")
"""The sections of a results file besides ``metrics`` (each a JSON object)."""


def _number(value: Any, where: str, *, integer: bool = False) -> float:
    """A finite JSON number (an integer when ``integer``); :class:`InputError` otherwise."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        expected = "a whole number" if integer else "a finite number"
        raise InputError(f"{where}: expected {expected}, got {value!r}")
    return value


def _metric_from_json(entry: Any, where: str) -> Metric:
    """One ``metrics`` entry, every field checked: a number that could be wrong is refused."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    fields = {f.name for f in dataclasses.fields(Metric)}
    missing = sorted(fields - {"details", "ci95"} - set(entry))
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for key in ("name", "extractor"):
        if not isinstance(entry[key], str):
            raise InputError(f"{where}.{key}: expected a string, got {entry[key]!r}")
    if entry["name"] not in METRICS:
        raise InputError(f"{where}.name: unknown metric {entry['name']!r}; known: "
                         f"{', '.join(METRICS)}")
    allowed = METRICS[entry["name"]].allowed_extractors()
    if entry["extractor"] not in allowed:
        raise InputError(f"{where}.extractor: {entry['name']} is not computed on "
                         f"{entry['extractor']!r}; expected one of {', '.join(allowed)}")
    where = f"{where} {entry['name']}[{entry['extractor']}]"
    if not isinstance(entry["higher_is_better"], bool):
        raise InputError(f"{where}.higher_is_better: expected true or false, got "
                         f"{entry['higher_is_better']!r}")
    ci95 = entry.get("ci95")
    if ci95 is not None:
        if not isinstance(ci95, list) or len(ci95) != 2:
            raise InputError(f"{where}.ci95: expected [low, high] or null, got {ci95!r}")
        low, high = (_number(v, f"{where}.ci95") for v in ci95)
        if low > high:
            raise InputError(f"{where}.ci95: low {low} is above high {high}")
        ci95 = (low, high)
    details = entry.get("details", {})
    if not isinstance(details, dict):
        raise InputError(f"{where}.details: expected a JSON object, got {type(details).__name__}")
    counts = {key: int(_number(entry[key], f"{where}.{key}", integer=True))
              for key in ("n_generated", "n_reference")}
    if min(counts.values()) < 0:
        raise InputError(f"{where}: sample counts must be ≥ 0, got {counts}")
    return Metric(name=entry["name"], extractor=entry["extractor"],
                  value=_number(entry["value"], f"{where}.value"), ci95=ci95,
                  higher_is_better=entry["higher_is_better"], details=details, **counts)


def _omitted_from_json(entry: Any, where: str) -> Omitted:
    """One ``omitted`` entry, every field checked."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    fields = {f.name for f in dataclasses.fields(Omitted)}
    missing = sorted(fields - {"needed_n"} - set(entry))
    unknown = sorted(set(entry) - fields)
    if missing or unknown:
        raise InputError(f"{where}: missing field(s) {', '.join(missing) or '-'}, unknown "
                         f"field(s) {', '.join(unknown) or '-'}")
    for key in ("name", "extractor", "reason"):
        if not isinstance(entry[key], str):
            raise InputError(f"{where}.{key}: expected a string, got {entry[key]!r}")
    if entry["name"] not in METRICS:
        raise InputError(f"{where}.name: unknown metric {entry['name']!r}")
    counts = {key: int(_number(entry[key], f"{where}.{key}", integer=True))
              for key in ("n_generated", "n_reference")}
    needed = entry.get("needed_n")
    if needed is not None:
        needed = int(_number(needed, f"{where}.needed_n", integer=True))
    return Omitted(name=entry["name"], extractor=entry["extractor"], reason=entry["reason"],
                   needed_n=needed, **counts)


def provenance(**extra: Any) -> dict[str, Any]:
    """When and with what a result was made, plus ``extra`` (command, seed, device, data,
    weight hashes, ...): ``created``, then the sections of
    :func:`gan_eval.environment.environment` (gan-eval's version and commit, the torch build,
    package versions, optional packages that change numbers, Python and platform)."""
    return {"created": datetime.now(UTC).isoformat(timespec="seconds"), **environment(), **extra}
