"""Gate inputs are consistent or refused (issue 24): a results file whose interval record
contradicts itself or its metric is exit 2 naming the file and the metric, never a verdict.

An interval record's numbers are tied together by its ``method``: a normal interval
(``estimate ± z·se``) has ``high − low = 2·z·se`` and its estimate at the midpoint; a Wilson
interval (rates) has the Wilson bounds of ``successes/n`` and ``se = (high − low)/(2z)``. The
metric around it ties ``n`` to ``n_generated`` and ``ci95`` to the bounds clipped to the
catalogue's range. The property test perturbs one number of a valid record — by float rounding
(1e-13 of the record's magnitude, which must be accepted) or by a real amount (≥ 1e-5 of it) —
and checks the reader against an independent statement of those relations (scipy's normal
quantile and scipy's Wilson interval), through the file a gate reads and through the gate
itself. Every record :meth:`Metric.of` builds, for every metric of the catalogue and every
interval method, must pass.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm
from typer.testing import CliRunner

from gan_eval.catalogue import METRICS
from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.estimates import NORMAL_METHODS, WILSON, IntervalResult, normal_interval
from gan_eval.gates import Gate, GateConfig, evaluate_gates
from gan_eval.metrics.intervals import rate_interval
from gan_eval.metrics.paired import rate_interval_of_means
from gan_eval.results import Metric, Results, provenance

runner = CliRunner()
RATES = sorted(name for name, spec in METRICS.items() if spec.bounds == (0.0, 1.0))
LEVELS = st.sampled_from([0.8, 0.9, 0.95, 0.99]) | st.floats(0.5, 0.999)
ROUNDING, REAL = 1e-13, 1e-5  # perturbation sizes, relative to the record's magnitude


def _extractor(name: str) -> str:
    return METRICS[name].allowed_extractors()[0]


@st.composite
def valid_metrics(draw: st.DrawFn) -> Metric:
    """A metric as a producer writes it (Metric.of): any catalogue name, any interval method
    (Wilson rates of whole counts and of per-face fractions too)."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(METRICS)))
        iv = normal_interval(
            draw(st.floats(-1e4, 1e4)), draw(st.floats(0, 1e3) | st.just(0.0)),
            n=draw(st.integers(1, 100_000)),
            estimand=draw(st.sampled_from(["mean_at_n", "population"])),
            method=draw(st.sampled_from(sorted(NORMAL_METHODS))), level=draw(LEVELS))
    elif draw(st.booleans()):
        name = draw(st.sampled_from(RATES))
        n = draw(st.integers(1, 5000))
        iv = rate_interval(draw(st.integers(0, n)), n, level=draw(LEVELS))
    else:  # restoration's rates: means of per-face fractions (a fractional count)
        name = draw(st.sampled_from(RATES))
        parts = draw(st.integers(1, 7))
        faces = draw(st.lists(st.integers(0, parts), min_size=2, max_size=300))
        iv = rate_interval_of_means(np.array(faces, dtype=np.float64) / parts,
                                    level=draw(LEVELS))
    return Metric.of(name, _extractor(name), iv, n_generated=iv.n,
                     n_reference=draw(st.integers(1, 1000)))


def _magnitude(entry: dict[str, Any]) -> float:
    """The size of the interval record's numbers (what float rounding is relative to)."""
    iv = entry["details"]["interval"]
    z = norm.ppf(0.5 + iv["level"] / 2)
    return max(abs(iv["ci"][0]), abs(iv["ci"][1]), abs(entry["value"]), z * iv["se"])


def _ci95_magnitude(entry: dict[str, Any]) -> float:
    """The size of ci95's numbers (clipping can make them larger than the record's: an IS
    interval near 0 is clipped to the catalogue's bound 1)."""
    ci95 = entry["ci95"] or [0.0, 0.0]
    return max(_magnitude(entry), abs(ci95[0]), abs(ci95[1]))


def _wilson(k: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of ``k`` successes in ``n`` (Wilson 1927, written out here:
    scipy's binomtest takes whole counts only)."""
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def consistent(entry: dict[str, Any]) -> bool:
    """The relations a metric entry with ``details.interval`` must satisfy, stated
    independently of gan-eval (scipy's quantile and Wilson interval)."""
    iv = entry["details"]["interval"]
    low, high = iv["ci"]
    se, level, n, method = iv["se"], iv["level"], iv["n"], iv["method"]
    ci95 = entry["ci95"]
    if not (se >= 0 and low <= high and 0 < level < 1 and isinstance(n, int) and n >= 1
            and entry["n_generated"] >= 0 and (ci95 is None or ci95[0] <= ci95[1])):
        return False  # malformed (bounds out of order, even by rounding): refused too
    tol = 1e-9 * _magnitude(entry) + 1e-300  # float rounding (subnormals: absolute)
    value = entry["value"]
    if n != entry["n_generated"] or not (low - tol <= value <= high + tol):
        return False
    lo_b, hi_b = METRICS[entry["name"]].bounds
    if ci95 is None:
        return False
    for got, bound in zip(ci95, (low, high), strict=True):
        expected = min(max(bound, lo_b), hi_b)  # each bound to rounding at its own size
        if abs(got - expected) > 1e-9 * max(abs(got), abs(expected), abs(low), abs(high)) + 1e-300:
            return False
    z = norm.ppf(0.5 + level / 2)
    if method in NORMAL_METHODS:
        return abs((high - low) - 2 * z * se) <= tol and abs((low + high) / 2 - value) <= tol
    if method == WILSON:
        k = iv.get("successes", round(value * n))
        if isinstance(k, float) and k != int(k):  # a sum of per-face fractions (9 decimals)
            if not (0 < k < n) or abs(k - value * n) > 1e-9 * max(1.0, n):
                return False
            ref_low, ref_high = _wilson(k, n, z)
        else:
            if not (isinstance(k, int | float) and not isinstance(k, bool) and 0 <= k <= n
                    and k == int(k)) or abs(k / n - value) > tol:
                return False
            ref = binomtest(int(k), n).proportion_ci(confidence_level=level, method="wilson")
            ref_low, ref_high = ref.low, ref.high
        return (abs(ref_low - low) <= tol and abs(ref_high - high) <= tol
                and abs(se - (high - low) / (2 * z)) <= tol)
    return False  # an unknown method: its se cannot be checked


FIELDS = ("se", "low", "high", "value", "ci95_low", "ci95_high", "n", "n_generated",
          "successes", "level", "method")


def perturb(entry: dict[str, Any], field: str, size: str, sign: int, u: float,
            method: str) -> dict[str, Any]:
    """``entry`` with one number moved by float rounding (``size="rounding"``) or by a real
    amount (``"real"``), relative to the record's magnitude."""
    out = copy.deepcopy(entry)
    iv = out["details"]["interval"]
    scale = _ci95_magnitude(entry) if field.startswith("ci95") else _magnitude(entry)
    delta = sign * scale * (ROUNDING * u if size == "rounding" else REAL * (1 + 9 * u))
    step = sign * (1 + int(3 * u))  # whole-number fields
    if field == "se":
        iv["se"] += delta
    elif field in ("low", "high"):
        iv["ci"][field == "high"] += delta
    elif field == "value":
        out["value"] += delta
    elif field in ("ci95_low", "ci95_high"):
        out["ci95"][field == "ci95_high"] += delta
    elif field == "n":
        iv["n"] += step
    elif field == "n_generated":
        out["n_generated"] += step
    elif field == "successes" and "successes" in iv:
        iv["successes"] += step
    elif field == "level":
        step_level = ROUNDING * u if size == "rounding" else REAL * (1 + 9 * u)
        iv["level"] = min(0.9999, max(0.01, iv["level"] + sign * step_level))
    elif field == "method":
        iv["method"] = method
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("consistency")


def _save(path: Path, entry: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"schema": "gan-eval/results/v1", "provenance": {},
                                "metrics": [entry]}))
    return path


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(metric=valid_metrics(), field=st.sampled_from(FIELDS),
       size=st.sampled_from(["rounding", "real"]), sign=st.sampled_from([-1, 1]),
       u=st.floats(0, 1),
       method=st.sampled_from([*sorted(NORMAL_METHODS), WILSON, "bootstrap_percentile", ""]))
def test_every_inconsistent_record_is_refused_every_consistent_one_accepted(
    folder: Path, metric: Metric, field: str, size: str, sign: int, u: float, method: str
) -> None:
    entry = json.loads(json.dumps(asdict(metric)))
    assert consistent(entry)  # what a producer writes is consistent by the independent oracle
    bad = perturb(entry, field, size, sign, u, method)
    label = f"{metric.name}[{metric.extractor}]"
    path = _save(folder / "now.json", bad)
    ok = consistent(bad)
    event(f"{'accepted' if ok else 'refused'}: {size} change of {field}")
    # 1. the file a gate reads
    try:
        loaded = Results.load(path)
    except InputError as exc:
        assert not ok, f"a consistent record was refused: {exc}"
        assert str(path) in str(exc) and label in str(exc), str(exc)
    else:
        assert ok, f"an inconsistent record was accepted: {field} {size} → {bad}"
        assert loaded.metrics[0].checked_interval("x") is not None
    # 2. the gate itself, on results held in memory (report's own verdict)
    held = Metric(**{**bad, "ci95": tuple(bad["ci95"]) if bad["ci95"] is not None else None})
    config = GateConfig(gates=(Gate(metric.name, metric.extractor),))
    try:
        checks = evaluate_gates(config, Results({}, [held]), Results({}, [metric]),
                                source="now.json")
    except InputError as exc:
        assert not ok, f"the gate refused a consistent record: {exc}"
        assert "now.json" in str(exc) and label in str(exc)
    else:
        assert ok, f"the gate judged an inconsistent record: {field} {size} → {bad}"
        assert [c.kind for c in checks] == ["baseline"] and checks[0].p_value is not None


@settings(max_examples=150, deadline=None)
@given(metric=valid_metrics())
def test_every_record_metric_of_writes_passes_the_reader(metric: Metric, tmp_path_factory:
                                                         pytest.TempPathFactory) -> None:
    """Metric.of is the one place intervals become records: every catalogue metric, every
    method, any level — the file it writes loads, and a gate on it compares."""
    path = tmp_path_factory.getbasetemp() / "written.json"
    Results(provenance=provenance(), metrics=[metric]).save(path)
    back = Results.load(path).metrics[0]
    iv = back.checked_interval("x")
    assert iv is not None and iv.inconsistency() is None and back.ci95 == metric.ci95
    checks = evaluate_gates(GateConfig(gates=(Gate(metric.name, metric.extractor),)),
                            Results({}, [back]), Results({}, [metric]))
    assert checks[0].passed  # equal to itself: never a regression


def test_the_issue_example_se_contradicting_a_narrow_interval_is_exit_2(tmp_path: Path) -> None:
    """The baseline claims se = 1e6 for an interval 0.011 wide: the gate used to PASS a run 47
    spreads worse (the huge se swallowed the difference). Now exit 2 naming file and metric."""
    base = Metric.of("kid", "dlib-face",
                     normal_interval(0.010, 0.011 / (2 * 1.959963984540054), n=1000,
                                     estimand="population", method="jackknife"),
                     n_generated=1000, n_reference=100)
    worse = Metric.of("kid", "dlib-face",
                      normal_interval(0.010 + 47 * 0.011, 0.0028, n=1000, estimand="population",
                                      method="jackknife"),
                      n_generated=1000, n_reference=100)
    entry = asdict(base)
    entry["details"]["interval"]["se"] = 1e6
    base_path = _save(tmp_path / "base.json", json.loads(json.dumps(entry)))
    now_path = tmp_path / "now.json"
    Results(provenance=provenance(), metrics=[worse]).save(now_path)
    gates = tmp_path / "gates.toml"
    gates.write_text('[[gate]]\nmetric = "kid"\nextractor = "dlib-face"\n')
    result = runner.invoke(app, ["gate", str(now_path), "--config", str(gates), "--baseline",
                                 str(base_path)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "base.json: kid[dlib-face] details.interval" in text and "se" in text
    assert "Traceback" not in result.output
    # the consistent baseline: the worse run fails the gate (exit 1), as it should
    Results(provenance=provenance(), metrics=[base]).save(base_path)
    result = runner.invoke(app, ["gate", str(now_path), "--config", str(gates), "--baseline",
                                 str(base_path)])
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize("where", ["now", "baseline"])
def test_an_interval_of_another_n_is_exit_2(tmp_path: Path, where: str) -> None:
    good = Metric.of("precision", "dlib-face", rate_interval(700, 1000), n_generated=1000,
                     n_reference=100)
    entry = json.loads(json.dumps(asdict(good)))
    entry["n_generated"] = 500  # the interval says 1000
    paths = {"now": tmp_path / "now.json", "baseline": tmp_path / "base.json"}
    for key, path in paths.items():
        if key == where:
            _save(path, entry)
        else:
            Results(provenance=provenance(), metrics=[good]).save(path)
    gates = tmp_path / "gates.toml"
    gates.write_text('[[gate]]\nmetric = "precision"\nextractor = "dlib-face"\n')
    result = runner.invoke(app, ["gate", str(paths["now"]), "--config", str(gates),
                                 "--baseline", str(paths["baseline"])])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"{paths[where].name}: precision[dlib-face] details.interval" in text
    assert "n=1000" in text and "n_generated is 500" in text


def test_a_wilson_record_is_fully_determined_by_its_count() -> None:
    """A rate's interval is the Wilson interval of successes/n at its level: scipy's, to 1e-12,
    and a record built from it by hand (no successes field) is accepted."""
    for n in (1, 2, 7, 50, 1000):
        for k in sorted({0, 1, n // 3, n - 1, n} & set(range(n + 1))):
            iv = rate_interval(k, n, level=0.9)
            ref = binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
            assert iv.low == pytest.approx(ref.low, abs=1e-12)
            assert iv.high == pytest.approx(ref.high, abs=1e-12)
            record = {k2: v for k2, v in iv.to_json().items() if k2 != "successes"}
            back = IntervalResult.from_json(record, estimate=k / n, where="w")
            assert back.inconsistency() is None
    # a "rate" outside [0, 1] (found by the property test: it used to reach a square root of
    # a negative number, an internal error)
    assert "lies in [0, 1]" in str(IntervalResult(2.0, 2.0, 2.0, 0.0, "population", WILSON, 1,
                                                  0.8).inconsistency())
    assert math.isclose(rate_interval(3, 10).se,
                        (rate_interval(3, 10).high - rate_interval(3, 10).low)
                        / (2 * norm.ppf(0.975)))


def test_the_interval_with_both_sets_redrawn_is_checked_too(tmp_path: Path) -> None:
    """``details.interval_both_sets`` (FID with the reference redrawn, shown beside ci95) is held
    to the same relations: a record whose se contradicts its bounds is refused on load."""
    fid = normal_interval(20.0, 0.5, n=1000, estimand="mean_at_n", method="split_extrapolation")
    both = normal_interval(20.0, 0.9, n=1000, estimand="mean_at_sizes",
                           method="split_extrapolation_both_sets", record={"n_reference": 500})
    metric = Metric.of("fid", "dlib-face", fid, n_generated=1000, n_reference=500,
                       details={"interval_both_sets": both.to_json()})
    path = tmp_path / "r.json"
    Results(provenance=provenance(), metrics=[metric]).save(path)
    assert Results.load(path).metric("fid").interval_both_sets() == both.interval
    entry = json.loads(json.dumps(asdict(metric)))
    for key, value in (("se", 1e6), ("n", 999)):
        bad = copy.deepcopy(entry)
        bad["details"]["interval_both_sets"][key] = value
        with pytest.raises(InputError, match=r"fid\[dlib-face\] details.interval_both_sets"):
            Results.load(_save(tmp_path / "bad.json", bad))
