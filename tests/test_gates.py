"""Gates: thresholds, config errors, JUnit XML, the CLI (baseline tests: test_gates_baseline.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gan_eval.errors import InputError
from gan_eval.estimates import normal_interval
from gan_eval.gates import evaluate_gates, load_config
from gan_eval.report.junit import write_junit
from gan_eval.report.tables import gates_table
from gan_eval.results import Metric, Results, provenance


def _metric(name: str, value: float, se: float, n: int = 500) -> Metric:
    """A metric as evaluate writes it: ci95 and details.interval (with its se) agree."""
    estimand = "mean_at_n" if name in ("fid", "recall", "coverage") else "population"
    iv = normal_interval(value, se, n=n, estimand=estimand, method="split_extrapolation")  # type: ignore[arg-type]
    return Metric.of(name, "dlib-face", iv, n_generated=n, n_reference=100)


def _results(fid: float, se: float = 0.5, precision: float = 0.7) -> Results:
    return Results(provenance=provenance(seed=0),
                   metrics=[_metric("fid", fid, se), _metric("precision", precision, 0.025)])


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gates.toml"
    path.write_text(text)
    return path


GATES = """
[[gate]]
metric = "fid"
extractor = "dlib-face"
max = 25.0

[[gate]]
metric = "precision"
min = 0.5

[baseline]
tolerance = 0.05
"""


def test_pass_and_fail_on_threshold(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, GATES))
    assert all(c.passed for c in evaluate_gates(config, _results(20.0)))
    checks = evaluate_gates(config, _results(30.0))
    failed = [c for c in checks if not c.passed]
    assert [c.gate for c in failed] == ["fid[dlib-face]"]
    assert "violates max 25" in failed[0].message
    assert "gate FAILED: 1 of 2" in gates_table(checks)


def test_baseline_regression_is_judged_by_the_test_not_the_intervals(tmp_path: Path) -> None:
    """The old rule (fail only when the whole interval lies beyond the baseline's) let through
    a worsening of 2 standard errors of the difference with overlapping intervals; the test
    catches it, and passes a change inside the noise."""
    config = load_config(_config(tmp_path, GATES.replace("tolerance = 0.05", "tolerance = 0")))
    baseline = _results(15.0, se=0.3)
    # intervals overlap (15 ± 0.59 vs 16.2 ± 0.78), yet z = 1.2 / 0.5 = 2.4 → p = 0.0082
    worse = evaluate_gates(config, _results(16.2, se=0.4), baseline)
    assert [c.kind for c in worse if not c.passed] == ["baseline"]
    # inside the noise: z = 0.5 / 0.5 = 1 → p = 0.16
    assert all(c.passed for c in evaluate_gates(config, _results(15.5, se=0.4), baseline))
    # higher-is-better metric regressing
    drop = evaluate_gates(config, _results(15.0, precision=0.6), _results(15.0, precision=0.7))
    assert [(c.gate, c.kind) for c in drop if not c.passed] == [("precision", "baseline")]


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = _config(tmp_path, '[[gate]]\nmetric = "fid"\nmax = = 3\n')
    with pytest.raises(InputError, match=r"gates\.toml.*line 3"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no \\[\\[gate\\]\\] entries"),
        ("[[gate]]\nmax = 3\n", "needs metric"),
        ('[[gate]]\nmetric = "fid"\nmaximum = 3\n', "unknown key"),
        ('[[gate]]\nmetric = "fid"\nmax = "low"\n', "expected a finite number"),
        ('[[gate]]\nmetric = "fid"\nmin = 5\nmax = 3\n', "above max"),
        ('[[gate]]\nmetric = "fid"\n[baseline]\ntolerance = -1\n', "must be >= 0"),
    ],
)
def test_bad_config_is_input_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_config(_config(tmp_path, text))


def test_unknown_metric_lists_available(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, '[[gate]]\nmetric = "kid"\nmax = 1\n'))
    with pytest.raises(InputError, match=r"kid.*fid\[dlib-face\]"):
        evaluate_gates(config, _results(20.0))


def test_junit_xml_parses_with_one_case_per_check(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, GATES))
    checks = evaluate_gates(config, _results(30.0), _results(15.0))
    write_junit(checks, tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) == len(checks) == 4
    assert int(suite.get("failures", "0")) == 2
    assert len(suite.findall("testcase/failure")) == 2


def test_results_round_trip(tmp_path: Path) -> None:
    results = _results(20.0)
    results.save(tmp_path / "r.json")
    loaded = Results.load(tmp_path / "r.json")
    assert loaded.metric("fid").ci95 == results.metric("fid").ci95
    assert loaded.metric("fid").details == results.metric("fid").details
    assert loaded.metric("precision").higher_is_better is True
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    with pytest.raises(InputError, match=r"bad\.json.*not a gan-eval results file"):
        Results.load(tmp_path / "bad.json")


def test_cli_gate_exit_codes_and_junit(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    runner = CliRunner()
    config = _config(tmp_path, GATES)
    good, bad, base = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "base.json"
    _results(20.0).save(good)
    _results(30.0).save(bad)
    _results(15.0).save(base)
    passed = runner.invoke(app, ["gate", str(good), "--config", str(config)])
    assert passed.exit_code == 0 and "gate PASSED" in passed.output
    junit = tmp_path / "junit.xml"
    failed = runner.invoke(app, ["gate", str(bad), "--config", str(config), "--baseline",
                                 str(base), "--junit", str(junit)])
    assert failed.exit_code == 1 and "gate FAILED" in failed.output
    assert ET.parse(junit).getroot().find("testsuite") is not None
    broken = _config(tmp_path, "[[gate]\nmetric = 'fid'\n")
    malformed = runner.invoke(app, ["gate", str(good), "--config", str(broken)])
    assert malformed.exit_code == 2 and "line 1" in malformed.output


def test_cli_gate_on_a_checkpoint_computes_only_what_the_gates_name(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    loose = tmp_path / "loose.toml"
    loose.write_text('[[gate]]\nmetric = "fid"\nmax = 1e9\n')
    out = tmp_path / "ckpt-results.json"
    passed = runner.invoke(app, ["gate", str(tiny_run), "--config", str(loose), "--n", "20",
                                 "--device", "cpu", "--json", str(out)])
    assert passed.exit_code == 0, passed.output
    results = Results.load(out)
    assert {m.name for m in results.metrics} == {
        "fid", "kid", "cmmd", "precision", "recall", "density", "coverage", "copy_rate",
        "copy_rate_calibrated"}
    # 20 faces in 128 dimensions: FID∞ is outside its regime, left out with its reason
    omitted = results.omission("fid_infinity", "dlib-face")
    assert omitted is not None and omitted.needed_n == 768 and "n ≥ 768" in omitted.reason
    assert results.metric("fid").n_generated == 20
    assert results.provenance["data"]["reference"]["data"] == "builtin:lfw-subset"

    strict = tmp_path / "strict.toml"
    strict.write_text('[[gate]]\nmetric = "fid"\nmax = 0.0\n\n'
                      '[[gate]]\nmetric = "leakage_rate_calibrated"\nmax = 1.0\n')
    failed = runner.invoke(app, ["gate", str(tiny_run), "--config", str(strict), "--n", "20",
                                 "--device", "cpu", "--json", str(out)])
    assert failed.exit_code == 1, failed.output
    assert "leakage_rate_calibrated" in {m.name for m in Results.load(out).metrics}  # it ran
    assert "dodging_success" not in {m.name for m in Results.load(out).metrics}


def test_example_ci_workflow_uses_real_options() -> None:
    """examples/ci: the gates file loads, and every option the workflow passes to `gan-eval gate`
    is one the command has (the example cannot drift from the CLI unnoticed)."""
    import re

    from typer.testing import CliRunner

    from gan_eval.cli import app

    root = Path(__file__).resolve().parents[1] / "examples" / "ci"
    assert load_config(root / "gates.toml").gates
    workflow = (root / "gan-eval-gate.yml").read_text()
    command = re.search(r"gan-eval gate (.+?)\n\s+- ", workflow, flags=re.S)
    assert command is not None
    used = set(re.findall(r"(--[a-z-]+)", command.group(1)))
    assert used >= {"--config", "--baseline", "--junit", "--data", "--json"}
    help_text = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    assert all(option in help_text for option in used), used


@pytest.mark.parametrize(
    ("entry", "needles"),
    [
        ('metric = "fdi"', ["unknown metric 'fdi'", "fid", "leakage_rate"]),
        ('metric = "fid"\nextractor = "incepton"', ["'incepton'", "inception", "dlib-face"]),
        ('metric = "is"\nextractor = "dlib-face"', ["'is'", "inception"]),
        ('metric = "copy_rate"\nextractor = "inception"', ["'copy_rate'", "dlib-face"]),
    ],
)
def test_catalogue_checks_names_when_the_config_loads(
    tmp_path: Path, entry: str, needles: list[str]
) -> None:
    path = tmp_path / "gates.toml"
    path.write_text(f"[[gate]]\n{entry}\nmax = 1\n")
    with pytest.raises(InputError) as caught:
        load_config(path)
    for needle in needles:
        assert needle in str(caught.value)


def test_misspelt_metric_fails_before_a_checkpoint_is_evaluated(
    tmp_path: Path, tiny_run: Path
) -> None:
    """Exit 2 at load time: no sampling or extraction happens (no progress line, no cache)."""
    from typer.testing import CliRunner

    from gan_eval.cli import app

    config = tmp_path / "gates.toml"
    config.write_text('[[gate]]\nmetric = "precison"\nmin = 0.5\n')
    result = CliRunner().invoke(app, ["gate", str(tiny_run), "--config", str(config)],
                                env={"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 2, result.output
    assert "unknown metric 'precison'" in result.output and "precision" in result.output
    assert "gate: distribution metrics" not in result.output
    assert not (tmp_path / "cache").exists()


def test_default_gates_and_headlines_come_from_the_catalogue() -> None:
    from gan_eval.audit import default_gates
    from gan_eval.catalogue import METRICS, headlines

    for gate in load_config(default_gates()).gates:
        assert gate.metric in METRICS
    cards = headlines()
    assert cards[0] == ("fid", "inception", "FID (Inception)")
    assert ("fid", "dlib-face", "FID (face embeddings)") in cards
    assert all(METRICS[name].headline for name, _, _ in cards)
