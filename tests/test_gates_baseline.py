"""``gate --baseline`` as a two-sample test (issue 18): p-values and verdicts on hand-built
results files, like-with-like refusals (equal n for "mean_at_n" estimands), missing or malformed
intervals refused (exit 2, never a traceback), and the p-value in the table, HTML and JUnit."""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from typer.testing import CliRunner

from gan_eval.catalogue import METRICS, metric_spec
from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, normal_interval
from gan_eval.gates import Check, Gate, GateConfig, evaluate_gates, load_config
from gan_eval.report.junit import write_junit
from gan_eval.report.tables import gates_table
from gan_eval.results import Metric, Results, provenance

runner = CliRunner()
MEAN_AT_N = ("fid", "recall", "coverage")


def _metric(name: str, value: float, se: float, n: int = 1000, *,
            estimand: str | None = None, interval: Any = "build") -> Metric:
    """``name`` as evaluate writes it: ``ci95`` and ``details.interval`` (with its se) agree;
    ``interval=None`` leaves details.interval out (a file from an older version)."""
    estimand = estimand or ("mean_at_n" if name in MEAN_AT_N else "population")
    iv = normal_interval(value, se, n=n, estimand=estimand, method="split_extrapolation")  # type: ignore[arg-type]
    if interval == "build":
        return Metric.of(name, "dlib-face", iv, n_generated=n, n_reference=500)
    # a file from an older version, or a damaged one: its ci95 and details as they stand
    return Metric(name, "dlib-face", value, iv.interval, n, 500,
                  metric_spec(name).higher_is_better,
                  {} if interval is None else {"interval": interval})


def _save(path: Path, *metrics: Metric) -> Path:
    Results(provenance=provenance(command="test"), metrics=list(metrics)).save(path)
    return path


def _toml(tmp_path: Path, metric: str = "fid", baseline: str = "") -> Path:
    path = tmp_path / "gates.toml"
    path.write_text(f'[[gate]]\nmetric = "{metric}"\nextractor = "dlib-face"\n'
                    f"[baseline]\n{baseline}\n")
    return path


def _gate(tmp_path: Path, now: Metric, base: Metric, baseline: str = "",
          *extra: str) -> Any:
    """``gan-eval gate now.json --baseline base.json`` on one metric."""
    now_path = _save(tmp_path / "now.json", now)
    base_path = _save(tmp_path / "base.json", base)
    return runner.invoke(app, ["gate", str(now_path), "--config",
                               str(_toml(tmp_path, now.name, baseline)), "--baseline",
                               str(base_path), *extra])


def _gates_for(name: str) -> tuple[Gate, ...]:
    return (Gate(metric=name, extractor="dlib-face"),)


def _one(now: Metric, base: Metric, **config: float) -> Check:
    checks = evaluate_gates(GateConfig(gates=_gates_for(now.name), **config),
                            Results({}, [now]), Results({}, [base]))
    assert [c.kind for c in checks] == ["baseline"]
    return checks[0]


# ---- the test's numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "now", "se_now", "base", "se_base"),
    [("fid", 16.0, 0.4, 15.0, 0.3),  # lower is better, worse by 2 se of the difference
     ("fid", 14.0, 0.4, 15.0, 0.3),  # better
     ("fid", 15.0, 0.4, 15.0, 0.3),  # unchanged
     ("precision", 0.66, 0.012, 0.70, 0.016),  # higher is better, worse
     ("kid", 0.0101, 0.0004, 0.0100, 0.0003)],  # inside the noise
)
def test_p_value_and_effect_match_the_normal_tail(
    name: str, now: float, se_now: float, base: float, se_base: float
) -> None:
    check = _one(_metric(name, now, se_now), _metric(name, base, se_base))
    sign = -1.0 if METRICS[name].higher_is_better else 1.0
    effect = sign * (now - base)
    z = effect / math.hypot(se_now, se_base)
    assert check.effect == pytest.approx(effect, abs=1e-12)
    assert check.z == pytest.approx(z, rel=1e-9)
    assert check.p_value == pytest.approx(norm.sf(z), rel=1e-6, abs=1e-12)  # scipy's tail
    width = 2 * norm.ppf(0.975) * se_base
    assert check.effect_in_spreads == pytest.approx(effect / width, rel=1e-6)
    assert check.passed == (norm.sf(z) >= 0.05)
    assert check.alpha == 0.05 and check.baseline == base and check.value == now
    assert f"p = {check.p_value:.3g}" in check.message
    json.dumps(vars(check), allow_nan=False)  # what results.gates stores


def test_alpha_is_the_stated_false_alarm_rate() -> None:
    now, base = _metric("fid", 16.0, 0.4), _metric("fid", 15.0, 0.3)  # p = 0.0228
    assert not _one(now, base).passed
    strict = _one(now, base, alpha=0.01)
    assert strict.passed and strict.alpha == 0.01 and ">= alpha 0.01" in strict.message


def test_tolerance_is_a_margin_the_test_allows() -> None:
    """H0 is "worse by at most tolerance × |baseline|": z = (effect − margin)/se."""
    base = _metric("fid", 20.0, 0.3)
    # worse by 1.0 = 2 se: a regression without tolerance ...
    assert not _one(_metric("fid", 21.0, 0.4), base).passed
    # ... but within a 5% margin (1.0): z = 0, p = 0.5
    within = _one(_metric("fid", 21.0, 0.4), base, tolerance=0.05)
    assert within.passed and within.margin == pytest.approx(1.0)
    assert within.p_value == pytest.approx(0.5) and within.effect == pytest.approx(1.0)
    # worse by 2.5 = margin + 3 se: caught despite the margin
    beyond = _one(_metric("fid", 22.5, 0.4), base, tolerance=0.05)
    assert not beyond.passed and beyond.p_value == pytest.approx(norm.sf(3.0), rel=1e-6)
    assert "beyond the tolerance 1" in beyond.message


def test_zero_standard_errors_compare_exactly_and_stay_json() -> None:
    base = _metric("precision", 0.7, 0.0)
    assert _one(_metric("precision", 0.7, 0.0), base).passed
    worse = _one(_metric("precision", 0.69, 0.0), base)
    assert not worse.passed and worse.p_value == 0.0 and worse.z is None
    assert worse.effect_in_spreads is None  # zero-width baseline interval: no spread
    json.dumps(vars(worse), allow_nan=False)


# ---- the command line: exit codes and messages ------------------------------------------------


def test_cli_worse_fails_better_and_equal_pass(tmp_path: Path) -> None:
    base = _metric("fid", 15.0, 0.3)
    worse = _gate(tmp_path, _metric("fid", 16.2, 0.4), base)
    assert worse.exit_code == 1, worse.output
    assert "regressed" in worse.output and "p = 0.0082" in worse.output
    assert "fid (at n=1000)" in worse.output and "alpha = 0.05" in worse.output
    for value in (14.0, 15.0):
        same = _gate(tmp_path, _metric("fid", value, 0.4), base)
        assert same.exit_code == 0, same.output
        assert "gate PASSED" in same.output and "no significant regression" in same.output
    within = _gate(tmp_path, _metric("fid", 16.2, 0.4), base, "tolerance = 0.1")  # margin 1.5
    assert within.exit_code == 0, within.output


@pytest.mark.parametrize("name", MEAN_AT_N)
def test_unequal_n_is_refused_for_a_mean_at_n_metric(tmp_path: Path, name: str) -> None:
    value = 15.0 if name == "fid" else 0.5
    result = _gate(tmp_path, _metric(name, value, 0.01, n=500), _metric(name, value, 0.01, n=1000))
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for needle in ("now.json", "base.json", "n=500", "n=1000", "--count 1000", "fid_infinity",
                   f"{name}[dlib-face]"):
        assert needle in text, needle
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["kid", "precision", "density", "fid_infinity"])
def test_unequal_n_is_allowed_for_a_population_estimand(tmp_path: Path, name: str) -> None:
    result = _gate(tmp_path, _metric(name, 0.5, 0.01, n=500), _metric(name, 0.5, 0.01, n=2000))
    assert result.exit_code == 0, result.output
    assert "population" in result.output


def test_estimands_that_differ_are_refused(tmp_path: Path) -> None:
    result = _gate(tmp_path, _metric("kid", 0.5, 0.01), _metric("kid", 0.5, 0.01,
                                                                 estimand="mean_at_n"))
    assert result.exit_code == 2 and "estimate different quantities" in result.output


@pytest.mark.parametrize("missing", ["now", "baseline"])
def test_a_metric_without_an_interval_is_refused(tmp_path: Path, missing: str) -> None:
    plain, bare = _metric("fid", 15.0, 0.3), _metric("fid", 15.0, 0.3, interval=None)
    now, base = (bare, plain) if missing == "now" else (plain, bare)
    result = _gate(tmp_path, now, base)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    where = "now.json" if missing == "now" else "base.json"
    assert f"{where}: fid[dlib-face] has no calibrated interval" in text
    assert "older gan-eval" in text and "Traceback" not in result.output


def test_a_baseline_without_intervals_fails_before_a_generator_is_evaluated(
    tmp_path: Path,
) -> None:
    """The baseline is checked first: no sampling happens (the generator path does not exist,
    which would be exit 2 for another reason, named differently)."""
    base = _save(tmp_path / "base.json", _metric("fid", 15.0, 0.3, interval=None))
    result = runner.invoke(app, ["gate", str(tmp_path / "no-such-generator.pt"), "--config",
                                 str(_toml(tmp_path)), "--baseline", str(base)])
    assert result.exit_code == 2
    assert "base.json: fid[dlib-face] has no calibrated interval" in " ".join(
        result.output.split())


def test_a_nan_still_fails_closed_with_a_baseline() -> None:
    nan = Metric("fid", "dlib-face", math.nan, None, 1000, 500, False)
    checks = evaluate_gates(GateConfig(gates=_gates_for("fid")), Results({}, [nan]),
                            Results({}, [_metric("fid", 15.0, 0.3)]))
    assert [c.passed for c in checks] == [False] and "fails closed" in checks[0].message


@pytest.mark.parametrize(
    ("body", "needle"),
    [("alpha = 0", "alpha"), ("alpha = 0.6", "(0, 0.5]"), ('alpha = "5%"', "finite number"),
     ("level = 0.95", "takes only alpha"), ("tolerance = -0.1", ">= 0")],
)
def test_bad_baseline_config_is_refused(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(InputError, match=re.escape(needle)):
        load_config(_toml(tmp_path, baseline=body))
    assert load_config(_toml(tmp_path, baseline="alpha = 0.5")).alpha == 0.5
    assert load_config(_toml(tmp_path)).alpha == 0.05


# ---- malformed intervals: InputError, never a traceback --------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=8,
)
GOOD = normal_interval(15.0, 0.3, n=1000, estimand="mean_at_n",
                       method="split_extrapolation").to_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from([*GOOD, None]), value=JSONISH, drop=st.booleans())
def test_a_malformed_interval_is_an_input_error(key: str | None, value: Any, drop: bool) -> None:
    """One field of a valid interval replaced by any JSON-ish value (or removed), or the whole
    interval replaced: the gate compares, or refuses with InputError naming file and metric."""
    if key is None:
        interval = value
    else:
        interval = copy.deepcopy(GOOD)
        if drop:
            del interval[key]
        else:
            interval[key] = value
    bad = _metric("fid", 15.0, 0.3, interval=interval)
    try:
        checks = evaluate_gates(GateConfig(gates=_gates_for("fid")), Results({}, [bad]),
                                Results({}, [_metric("fid", 15.0, 0.3)]), source="now.json")
    except InputError as exc:
        assert "now.json" in str(exc) and "fid[dlib-face]" in str(exc)
        return
    # accepted: then it was a usable interval
    iv = IntervalResult.from_json(interval, estimate=15.0, where="x")
    assert math.isfinite(iv.se) and iv.se >= 0 and iv.n == 1000 and iv.estimand == "mean_at_n"
    assert len(checks) == 1 and checks[0].p_value is not None
    json.dumps(vars(checks[0]), allow_nan=False)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("se", -0.1, "se must be"), ("se", None, "se must be"), ("n", 0, "n must be"),
     ("n", 10.5, "n must be"), ("estimand", "median", "estimand must be"),
     ("ci", [2.0, 1.0], "ci must be"), ("level", 1.5, "level must be")],
)
def test_interval_from_json_names_the_field(field: str, value: Any, needle: str) -> None:
    with pytest.raises(InputError, match=f"^where: {needle}"):
        IntervalResult.from_json({**GOOD, field: value}, estimate=15.0, where="where")
    iv = IntervalResult.from_json(GOOD, estimate=15.0, where="where")
    assert iv.to_json() == GOOD and iv.estimate == 15.0


def test_a_malformed_interval_in_a_file_exits_2(tmp_path: Path) -> None:
    now = _metric("fid", 15.0, 0.3, interval={**GOOD, "se": -1.0})
    result = _gate(tmp_path, now, _metric("fid", 15.0, 0.3))
    assert result.exit_code == 2 and "now.json: fid[dlib-face] details.interval: se" in \
        " ".join(result.output.split())


# ---- what the reader sees: table, JUnit, HTML -----------------------------------------------


def _checks() -> list[Check]:
    return [_one(_metric("fid", 16.2, 0.4), _metric("fid", 15.0, 0.3)),
            _one(_metric("kid", 0.5, 0.01, n=500), _metric("kid", 0.5, 0.01, n=2000))]


def test_table_states_the_test() -> None:
    table = gates_table(_checks())
    assert "now 16.2 vs baseline 15" in table and "fid (at n=1000)" in table
    assert "worse by 1.2 (+1.02 baseline spreads)" in table  # 1.2 / (2·1.96·0.3)
    assert "kid (population)" in table and "alpha = 0.05" in table


def test_junit_carries_the_p_value(tmp_path: Path) -> None:
    checks = _checks()
    write_junit(checks, tmp_path / "junit.xml")
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite/testcase")
    assert len(cases) == 2
    props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
    assert float(props["p_value"] or "nan") == pytest.approx(norm.sf(2.4), rel=1e-6)
    assert props["alpha"] == "0.05" and props["compared"] == "at n=1000"
    assert float(props["effect"] or "nan") == pytest.approx(1.2)
    failure = cases[0].find("failure")
    assert failure is not None and "p = 0.0082" in failure.get("message", "")
    assert {p.get("name"): p.get("value") for p in cases[1].iter("property")}["compared"] == \
        "population"


def test_html_gates_section_shows_the_test() -> None:
    from gan_eval.report.html import Pictures, render_html

    checks = _checks()
    results = Results(provenance=provenance(command="test"),
                      metrics=[_metric("fid", 16.2, 0.4)],
                      gates={"config": "g.toml", "passed": False,
                             "checks": [vars(c) for c in checks]})
    page = render_html(results, Pictures())
    for needle in ("p-value", "0.008198 (α 0.05)", "at n=1000", "population",
                   "1.2 (1.02 spreads)", "false-alarm rate α = 0.05"):
        assert needle in page, needle
    # a results file from before the gates were a test still renders
    old = Results(provenance=provenance(command="test"), metrics=[], gates={
        "config": "g.toml", "passed": True, "checks": [
            {"gate": "fid", "kind": "threshold", "passed": True, "value": 1.0,
             "message": "1 <= 2"}]})
    assert "p-value" not in render_html(old, Pictures())


def test_gate_baseline_on_real_evaluate_runs(tmp_path: Path) -> None:
    """Real runs of ``evaluate`` (dlib-face, n = 48, reference the 100 built-in faces): two
    disjoint draws of real faces (one "model", two sampling runs) are no regression; the same
    faces under heavy pixel noise are one (exit 1, small p) on fid. FID∞ at n = 48 in 128
    dimensions is outside its regime: not reported, and a gate on it cannot judge (exit 2
    naming the reason)."""
    import numpy as np
    import torch

    from gan_eval.evaluation import EvaluateConfig, evaluate
    from gan_eval.sources import open_source

    faces = open_source("builtin:lfw-subset").load()
    noise = torch.randint(-90, 91, faces[:48].shape, generator=torch.Generator().manual_seed(0))
    sets = {"base": faces[:48], "rerun": faces[48:96],
            "worse": (faces[:48].int() + noise).clamp(0, 255).to(torch.uint8)}
    paths = {}
    for name, images in sets.items():
        np.save(tmp_path / f"{name}.npy", images.numpy())
        config = EvaluateConfig(splits=10, cache_dir=tmp_path / "cache", progress=False,
                                device="cpu")
        paths[name] = tmp_path / f"{name}.json"
        evaluate(str(tmp_path / f"{name}.npy"), "builtin:lfw-subset", config).save(paths[name])
    base, rerun, worse = paths["base"], paths["rerun"], paths["worse"]
    config = tmp_path / "gates.toml"
    config.write_text('[[gate]]\nmetric = "fid"\nextractor = "dlib-face"\n'
                      "[baseline]\nalpha = 0.05\n")

    def gate(now: Path) -> tuple[int, list[Check]]:
        result = runner.invoke(app, ["gate", str(now), "--config", str(config), "--baseline",
                                     str(base)])
        assert result.exit_code in (0, 1), result.output
        checks = evaluate_gates(load_config(config), Results.load(now), Results.load(base))
        return result.exit_code, checks

    code, checks = gate(rerun)
    assert code == 0 and all(c.p_value is not None and c.p_value >= 0.05 for c in checks), checks
    code, checks = gate(worse)
    assert code == 1 and all(c.p_value is not None and c.p_value < 0.01 for c in checks), checks
    assert {c.estimand for c in checks} == {"mean_at_n"}
    infinity = tmp_path / "infinity.toml"
    infinity.write_text('[[gate]]\nmetric = "fid_infinity"\nextractor = "dlib-face"\nmax = 1e9\n')
    for args in ([], ["--baseline", str(base)]):
        refused = runner.invoke(app, ["gate", str(rerun), "--config", str(infinity), *args])
        assert refused.exit_code == 2, refused.output
        text = " ".join(refused.output.split())
        assert "cannot judge" in text and "fid_infinity[dlib-face] was not reported" in text
        assert "n ≥ 768" in text and "Traceback" not in refused.output
