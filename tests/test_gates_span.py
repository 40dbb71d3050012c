"""Span gates (max_span / min_span relative to floor and ceiling) and "cannot judge" (exit 2,
never 1): config, checks, table, JUnit, CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.estimates import normal_interval
from gan_eval.gates import evaluate_gates, load_config, verdict
from gan_eval.metrics.intervals import rate_interval
from gan_eval.report.junit import write_junit
from gan_eval.report.tables import gates_table
from gan_eval.results import Metric, Results, provenance

runner = CliRunner()


def _records(floor: float, ceiling: float, generated: float) -> dict[str, Any]:
    sizes = {"n_generated": 40, "n_reference": 40, "splits": 10}
    return {"floor": {"value": floor, "sd": 0.005, **sizes},
            "ceiling": {"value": ceiling, "sd": 0.005, "of": "mean face", **sizes},
            "at_control_sizes": {"value": generated, "sd": 0.005, **sizes}}


def _fid(generated: float, *, controls: bool = True, value: float = 0.2) -> Metric:
    iv = normal_interval(value, 0.002, n=1000, estimand="mean_at_n", method="split_extrapolation")
    details = _records(0.14, 0.46, generated) if controls else {}
    return Metric.of("fid", "dlib-face", iv, n_generated=1000, n_reference=80, details=details)


def _precision(generated: float) -> Metric:
    return Metric.of("precision", "dlib-face", rate_interval(900, 1000), n_generated=1000,
                     n_reference=80, details=_records(0.9, 0.5, generated))


def _copy_rate(judgeable: bool) -> list[Metric]:
    details: dict[str, Any] = {"threshold": 0.6}
    if not judgeable:
        details["cannot_judge"] = {"reason": "the match threshold 0.6 accepts 19.1% of "
                                             "reference impostor pairs (> 5%)",
                                   "instead": "copy_rate_calibrated",
                                   "far_on_reference_pairs": 0.191}
    return [Metric.of("copy_rate", "dlib-face", rate_interval(1000, 1000), n_generated=1000,
                      n_reference=80, details=details),
            Metric.of("copy_rate_calibrated", "dlib-face", rate_interval(115, 1000),
                      n_generated=1000, n_reference=80, details={"threshold": 0.43})]


def _results(*metrics: Metric) -> Results:
    return Results(provenance=provenance(seed=0), metrics=list(metrics))


def _config(tmp_path: Path, text: str, name: str = "gates.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SPANS = """
[[gate]]
metric = "fid"
max_span = 0.3

[[gate]]
metric = "precision"
max_span = 0.3
"""


@pytest.mark.parametrize(("fid_at", "precision_at", "failed"), [
    (0.18, 0.95, []),                          # spans 0.125 and -0.125: pass
    (0.40, 0.95, ["fid"]),                     # fid span 0.81
    (0.18, 0.60, ["precision"]),               # precision span 0.75: higher is better
    (0.45, 0.52, ["fid", "precision"]),
])
def test_span_gate_is_oriented_by_real_data_and_noise(tmp_path: Path, fid_at: float,
                                                      precision_at: float,
                                                      failed: list[str]) -> None:
    config = load_config(_config(tmp_path, SPANS))
    checks = evaluate_gates(config, _results(_fid(fid_at), _precision(precision_at)))
    assert [c.kind for c in checks] == ["span", "span"]
    assert [c.gate for c in checks if not c.passed] == failed
    fid = checks[0]
    assert fid.span == pytest.approx((fid_at - 0.14) / 0.32)
    assert (fid.floor, fid.ceiling, fid.at_control_sizes) == (0.14, 0.46, fid_at)
    assert "floor (real data) 0.14" in fid.message and "ceiling (mean face) 0.46" in fid.message
    assert verdict(checks) == ("fail" if failed else "pass")


def test_span_uses_the_value_at_control_sizes_not_the_headline(tmp_path: Path) -> None:
    """The headline FID (1,000 vs 80) can sit below a floor measured at 40 vs 40; the span
    places the run's own value at 40 vs 40."""
    config = load_config(_config(tmp_path, '[[gate]]\nmetric = "fid"\nmax_span = 0.3\n'))
    (check,) = evaluate_gates(config, _results(_fid(0.40, value=0.11)))
    assert not check.passed and check.value == 0.11 and check.span == pytest.approx(0.8125)


def test_min_span_flags_a_run_closer_to_the_reference_than_real_data(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, '[[gate]]\nmetric = "fid"\nmin_span = -0.5\n'
                                           'max_span = 0.3\n'))
    (ok,) = evaluate_gates(config, _results(_fid(0.10)))  # span -0.125
    (copies,) = evaluate_gates(config, _results(_fid(0.0)))  # span -0.44... at 0: -0.4375
    (far,) = evaluate_gates(config, _results(_fid(-0.05)))  # span -0.59
    assert ok.passed and copies.passed and not far.passed
    assert "below min_span -0.5" in far.message and "copies" in far.message


def test_thresholds_on_metrics_with_controls_show_them_too(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, '[[gate]]\nmetric = "fid"\nmax = 0.5\n'))
    (check,) = evaluate_gates(config, _results(_fid(0.2)))
    assert check.kind == "threshold" and check.passed and check.floor == 0.14
    assert json.dumps(vars(check))  # valid JSON for results.gates


@pytest.mark.parametrize(("metric", "needle"), [
    (_fid(0.2, controls=False), "no floor and ceiling recorded"),
    (Metric.of("fid", "dlib-face", 0.2, no_interval="test", n_generated=3, n_reference=3,
               details={"no_controls": "the reference (3 images) is too small to split"}),
     "too small to split"),
    (Metric.of("fid", "dlib-face", 0.2, no_interval="test", n_generated=99, n_reference=80,
               details=_records(0.14, 0.141, 0.2)), "does not score clearly worse"),
])
def test_span_gate_without_a_span_cannot_judge(tmp_path: Path, metric: Metric,
                                               needle: str) -> None:
    config = load_config(_config(tmp_path, SPANS.split("[[gate]]\nmetric = \"precision\"")[0]))
    (check,) = evaluate_gates(config, _results(metric))
    assert check.kind == "cannot_judge" and not check.judged and not check.passed
    assert "fid" in check.message and needle in check.message
    assert verdict([check]) == "cannot judge"
    table = gates_table([check])
    assert "CANNOT JUDGE" in table and "exit 2" in table and "FAILED" not in table


def test_a_gate_on_a_metric_that_cannot_be_judged_here_never_passes_or_fails(
        tmp_path: Path) -> None:
    """Thresholds, spans and baseline checks alike: one cannot-judge check naming the
    calibrated metric to gate instead."""
    config = load_config(_config(tmp_path, '[[gate]]\nmetric = "copy_rate"\nmax = 0.5\n\n'
                                           '[baseline]\nalpha = 0.05\n'))
    unjudged = _results(*_copy_rate(judgeable=False))
    (check,) = evaluate_gates(config, unjudged, unjudged)
    assert check.kind == "cannot_judge"
    assert check.message.startswith("cannot judge at this threshold here; gate the calibrated "
                                    "metric (copy_rate_calibrated)")
    assert "19.1%" in check.message
    judged = evaluate_gates(config, _results(*_copy_rate(judgeable=True)))
    assert [c.kind for c in judged] == ["threshold"] and not judged[0].passed


def test_junit_counts_cannot_judge_as_an_error_and_spans_as_properties(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, SPANS + '\n[[gate]]\nmetric = "copy_rate"\nmax = 1\n'))
    checks = evaluate_gates(config, _results(_fid(0.4), _precision(0.95),
                                             *_copy_rate(judgeable=False)))
    write_junit(checks, tmp_path / "junit.xml")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert len(suite.findall("testcase/error")) == 1
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert float(props["floor"]) == 0.9 and float(props["ceiling"]) == 0.5  # precision's
    assert props["control_sizes"] == "40 vs 40"


def test_cli_exit_codes_pass_fail_and_cannot_judge(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    old, unjudged = tmp_path / "old.json", tmp_path / "unjudged.json"
    _results(_fid(0.18), _precision(0.95)).save(good)
    _results(_fid(0.40), _precision(0.95)).save(bad)
    _results(_fid(0.18, controls=False), _precision(0.95)).save(old)
    _results(_fid(0.18), _precision(0.95), *_copy_rate(judgeable=False)).save(unjudged)
    spans = _config(tmp_path, SPANS)
    junit = tmp_path / "junit.xml"
    passed = runner.invoke(app, ["gate", str(good), "--config", str(spans)])
    assert passed.exit_code == 0 and "gate PASSED" in passed.output, passed.output
    failed = runner.invoke(app, ["gate", str(bad), "--config", str(spans)])
    assert failed.exit_code == 1 and "span 0.812 above max_span 0.3" in failed.output
    missing = runner.invoke(app, ["gate", str(old), "--config", str(spans), "--junit",
                                  str(junit)])
    assert missing.exit_code == 2, missing.output
    assert "fid: cannot judge a span gate on fid: no floor and ceiling recorded" in missing.output
    assert ET.parse(junit).getroot().find("testsuite/testcase/error") is not None  # written
    copy_gate = _config(tmp_path, '[[gate]]\nmetric = "fid"\nmax_span = 0.3\n\n'
                                  '[[gate]]\nmetric = "copy_rate"\nmax = 0.5\n', "copy.toml")
    cannot = runner.invoke(app, ["gate", str(unjudged), "--config", str(copy_gate)])
    assert cannot.exit_code == 2, cannot.output
    assert "cannot judge at this threshold here; gate the calibrated metric" in cannot.output
    assert "Traceback" not in cannot.output
    # a failing gate beside one that cannot be judged: still 2, the verdict is not made
    both = _results(_fid(0.40), *_copy_rate(judgeable=False))
    both.save(unjudged)
    mixed = runner.invoke(app, ["gate", str(unjudged), "--config", str(copy_gate)])
    assert mixed.exit_code == 2 and "1 failed" in mixed.output


BOUNDS = st.one_of(st.text(alphabet="0123456789.-e x", max_size=5), st.booleans(),
                   st.lists(st.integers(), max_size=2), st.sampled_from(["nan", "inf", "-inf"]))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["max_span", "min_span"]), value=BOUNDS)
def test_span_bounds_that_are_not_finite_numbers_are_refused(tmp_path: Path, key: str,
                                                             value: object) -> None:
    if value in ("nan", "inf", "-inf"):
        text = f'[[gate]]\nmetric = "fid"\n{key} = {value}\n'
    else:
        text = f'[[gate]]\nmetric = "fid"\n{key} = {json.dumps(value)}\n'
    with pytest.raises(InputError, match=f"gate #1 {key}"):
        load_config(_config(tmp_path, text))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=st.floats(-10, 10), gap=st.floats(1e-3, 10))
def test_min_span_above_max_span_is_refused(tmp_path: Path, low: float, gap: float) -> None:
    text = f'[[gate]]\nmetric = "fid"\nmin_span = {low + gap!r}\nmax_span = {low!r}\n'
    with pytest.raises(InputError, match=r"min_span .* is above max_span"):
        load_config(_config(tmp_path, text))
