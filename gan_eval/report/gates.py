"""``gan-eval gate``: thresholds and baseline regressions over a results JSON.

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
"""

from __future__ import annotations

import math
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gan_eval.errors import InputError
from gan_eval.fileio import atomic_write_bytes
from gan_eval.report.results import Metric, Results

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


def _interval(metric: Metric) -> tuple[float, float]:
    return metric.ci95 if metric.ci95 is not None else (metric.value, metric.value)


def evaluate_gates(
    config: GateConfig, results: Results, baseline: Results | None = None, *, source: str = ""
) -> list[Check]:
    """Every check of ``config`` on ``results`` (and against ``baseline`` when given)."""
    checks = []
    for gate in config.gates:
        metric = _find(results, gate, source or "results")
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
        if baseline is None:
            continue
        base = _find(baseline, gate, "--baseline")
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


def format_table(checks: list[Check]) -> str:
    """A fixed-width table of the checks for the terminal."""
    rows = [("gate", "check", "result", "detail")]
    rows += [(c.gate, c.kind, "PASS" if c.passed else "FAIL", c.message) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    verdict = "PASSED" if all(c.passed for c in checks) else "FAILED"
    failed = sum(not c.passed for c in checks)
    lines.append(f"\ngate {verdict}: {len(checks) - failed} of {len(checks)} checks passed")
    return "\n".join(lines)


def write_junit(checks: list[Check], path: str | Path) -> None:
    """JUnit XML with one testcase per check (a failure element for each failed one)."""
    suite = ET.Element(
        "testsuite",
        name="gan-eval gate",
        tests=str(len(checks)),
        failures=str(sum(not c.passed for c in checks)),
        errors="0",
    )
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"gan_eval.gate.{check.kind}", name=check.gate
        )
        if not check.passed:
            ET.SubElement(
                case, "failure", message=check.message, type=check.kind
            ).text = check.message
        else:
            ET.SubElement(case, "system-out").text = check.message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
