"""Gates: thresholds and baseline regressions over a results JSON (``gan-eval gate``).

Config (TOML)::

    [[gate]]
    metric = "fid"            # a name from results.json "metrics"
    extractor = "dlib-face"   # optional when the name is unique
    max = 25.0                # and/or min = ...

    [baseline]
    tolerance = 0.05          # relative worsening allowed beyond the intervals

A baseline regression is judged with the 95% intervals: a gated metric fails only when its whole
interval is worse than the baseline's whole interval by more than ``tolerance`` × |baseline value|.
Overlapping intervals (a change inside the noise) pass.

Metric names and extractors are checked against the catalogue (:mod:`gan_eval.catalogue`) when the
config is loaded, so a misspelt name fails before any work. The terminal table and JUnit XML of
the checks are drawn by :mod:`gan_eval.report.tables` and :mod:`gan_eval.report.junit`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_eval.catalogue import METRICS, metric_spec
from gan_eval.errors import InputError
from gan_eval.results import Metric, Results

_GATE_KEYS = {"metric", "extractor", "min", "max"}


@dataclass(frozen=True)
class Gate:
    """One ``[[gate]]`` entry."""

    metric: str
    extractor: str | None = None
    min: float | None = None
    max: float | None = None

    @property
    def label(self) -> str:
        return self.metric if self.extractor is None else f"{self.metric}[{self.extractor}]"


@dataclass(frozen=True)
class GateConfig:
    gates: tuple[Gate, ...]
    tolerance: float = 0.0


@dataclass(frozen=True)
class Check:
    """The outcome of one check: a threshold or a baseline comparison."""

    gate: str
    kind: str  # "threshold" or "baseline"
    passed: bool
    value: float | None
    message: str


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _check_names(metric: str, extractor: str | None, where: str) -> None:
    """:class:`InputError` unless ``metric`` is in the catalogue and ``extractor`` is one it is
    computed on (a misspelt gate would otherwise run a whole evaluation and fail after it)."""
    if metric not in METRICS:
        raise InputError(f"{where}: unknown metric {metric!r}; known metrics: "
                         f"{', '.join(METRICS)}")
    allowed = metric_spec(metric).allowed_extractors()
    if extractor is not None and extractor not in allowed:
        raise InputError(f"{where}: metric {metric!r} is not computed on extractor "
                         f"{extractor!r}; it is computed on {', '.join(allowed)}")


def load_config(path: str | Path) -> GateConfig:
    """Parse and validate a gates TOML file; errors name the file (and the line when TOML says)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"--config: {path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config: {path}: malformed TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: {path}: cannot read ({exc})") from exc
    unknown = set(raw) - {"gate", "baseline"}
    if unknown:
        raise InputError(
            f"--config: {path}: unknown table(s) {sorted(unknown)}; expected [[gate]] "
            "and [baseline]"
        )
    entries = raw.get("gate", [])
    if not isinstance(entries, list) or not entries:
        raise InputError(f"--config: {path}: no [[gate]] entries")
    gates = []
    for i, entry in enumerate(entries, 1):
        where = f"--config: {path}: gate #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
            raise InputError(f'{where}: needs metric = "NAME"')
        extra = set(entry) - _GATE_KEYS
        if extra:
            raise InputError(
                f"{where}: unknown key(s) {sorted(extra)}; expected {sorted(_GATE_KEYS)}"
            )
        extractor = entry.get("extractor")
        if extractor is not None and not isinstance(extractor, str):
            raise InputError(f"{where}: extractor must be a string")
        _check_names(entry["metric"], extractor, where)
        low = _number(entry["min"], f"{where} min") if "min" in entry else None
        high = _number(entry["max"], f"{where} max") if "max" in entry else None
        if low is not None and high is not None and low > high:
            raise InputError(f"{where}: min {low} is above max {high}")
        gates.append(Gate(metric=entry["metric"], extractor=extractor, min=low, max=high))
    baseline = raw.get("baseline", {})
    if not isinstance(baseline, dict) or set(baseline) - {"tolerance"}:
        raise InputError(f"--config: {path}: [baseline] takes only tolerance = NUMBER")
    tolerance = _number(baseline.get("tolerance", 0.0), f"--config: {path}: baseline tolerance")
    if tolerance < 0:
        raise InputError(f"--config: {path}: baseline tolerance must be >= 0, got {tolerance}")
    return GateConfig(gates=tuple(gates), tolerance=tolerance)


def _find(results: Results, gate: Gate, what: str) -> Metric:
    try:
        return results.metric(gate.metric, gate.extractor)
    except KeyError as exc:
        available = sorted({f"{m.name}[{m.extractor}]" for m in results.metrics})
        raise InputError(
            f"{what}: gate {gate.label}: {exc.args[0]}; the results have "
            f"{', '.join(available) or 'no metrics'}"
        ) from None


def _unusable(metric: Metric, which: str) -> str | None:
    """Why ``metric`` cannot be judged (a non-finite value or interval), or None."""
    values = [metric.value, *(metric.ci95 or ())]
    if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
           for v in values):
        return None
    return (f"{which} value {metric.value!r} (interval {metric.ci95!r}) is not a finite number: "
            "the gate fails closed")


def _interval(metric: Metric) -> tuple[float, float]:
    return metric.ci95 if metric.ci95 is not None else (metric.value, metric.value)


def evaluate_gates(
    config: GateConfig, results: Results, baseline: Results | None = None, *, source: str = ""
) -> list[Check]:
    """Every check of ``config`` on ``results`` (and against ``baseline`` when given)."""
    checks = []
    for gate in config.gates:
        metric = _find(results, gate, source or "results")
        base = _find(baseline, gate, "--baseline") if baseline is not None else None
        unusable = _unusable(metric, "now") or (base is not None and _unusable(base, "baseline"))
        if unusable:  # fail closed: a number that is not a number passes nothing
            checks.append(Check(gate.label, "value", False, None, unusable))
            continue
        for bound, limit in (("min", gate.min), ("max", gate.max)):
            if limit is None:
                continue
            ok = metric.value >= limit if bound == "min" else metric.value <= limit
            sign = ">=" if bound == "min" else "<="
            checks.append(
                Check(
                    gate.label,
                    "threshold",
                    ok,
                    metric.value,
                    f"{metric.value:.6g} {sign} {limit:.6g}"
                    if ok
                    else f"{metric.value:.6g} violates {bound} {limit:.6g}",
                )
            )
        if base is None:
            continue
        cur_lo, cur_hi = _interval(metric)
        base_lo, base_hi = _interval(base)
        margin = config.tolerance * abs(base.value)
        # worse only when the whole interval lies beyond the baseline's, by more than the margin
        worse = (
            (cur_hi < base_lo - margin) if metric.higher_is_better else (cur_lo > base_hi + margin)
        )
        detail = (
            f"now {metric.value:.6g} [{cur_lo:.6g}, {cur_hi:.6g}] vs baseline "
            f"{base.value:.6g} [{base_lo:.6g}, {base_hi:.6g}], tolerance "
            f"{config.tolerance:.3g}"
        )
        checks.append(
            Check(
                gate.label,
                "baseline",
                not worse,
                metric.value,
                ("regressed: " if worse else "") + detail,
            )
        )
    return checks
