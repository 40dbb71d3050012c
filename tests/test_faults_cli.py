"""The error contract at the command line, tested by class (issue #15).

0 ok · 1 a gate failed (``gate`` only) · 2 bad input or an unusable output path, named ·
3 a missing asset · 4 an internal error ("please report"; the traceback only with --debug).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.estimates import normal_interval
from gan_eval.gates import evaluate_gates, load_config
from gan_eval.generators.source import GeneratorSource
from gan_eval.report.junit import write_junit
from gan_eval.results import Metric, Results, provenance

runner = CliRunner()
UNWRITABLE = Path("/proc/gan-eval-no-such-place")  # not creatable, not even by root


def _results(path: Path, value: float = 0.3) -> Path:
    Results(provenance=provenance(command="test"), metrics=[
        Metric.of("fid", "dlib-face", normal_interval(value, 0.025, n=50, estimand="mean_at_n",
                                                      method="split_extrapolation"),
                  n_generated=50, n_reference=40),
    ]).save(path)
    return path


def _gates(path: Path, body: str = '[[gate]]\nmetric = "fid"\nmax = 1.0\n') -> Path:
    path.write_text(body)
    return path


def _place(tmp_path: Path, kind: str, folder_option: bool) -> Path:
    """An output path that cannot be used, of the given kind."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    if kind == "parent-is-file":
        return a_file / "out"
    if kind == "unwritable":
        return UNWRITABLE / "out"
    if folder_option:  # kind == "wrong-kind": a file where a folder is wanted
        return a_file
    folder = tmp_path / "a-folder"  # a folder where a file is wanted
    folder.mkdir()
    return folder


def _commands(tmp_path: Path, target: Path) -> dict[tuple[str, str], tuple[list[str], bool]]:
    """(command, option) → (arguments before the option, whether the option is a folder)."""
    results = _results(tmp_path / "results.json")
    gates = _gates(tmp_path / "gates.toml")
    return {
        ("evaluate", "--json"): (["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-subset"],
                                 False),
        ("recognition", "--json"): (["recognition", "builtin:lfw-subset", "--reference",
                                     "builtin:lfw-subset"], False),
        ("attack", "--json"): (["attack", "builtin:lfw-subset"], False),
        ("gate", "--json"): (["gate", str(target), "--config", str(gates)], False),
        ("gate", "--junit"): (["gate", str(results), "--config", str(gates)], False),
        ("train", "--out"): (["train", "--data", "builtin:lfw-subset"], True),
        ("sample", "--out"): (["sample", str(target), "--count", "2"], True),
        ("report", "--out"): (["report", "--from-results", str(results)], True),
    }


OPTIONS = [("evaluate", "--json"), ("recognition", "--json"), ("attack", "--json"),
           ("gate", "--json"), ("gate", "--junit"), ("train", "--out"), ("sample", "--out"),
           ("report", "--out")]


@pytest.mark.parametrize("kind", ["parent-is-file", "wrong-kind", "unwritable"])
@pytest.mark.parametrize(("command", "option"), OPTIONS)
def test_every_output_option_refuses_an_unusable_path_before_any_work(
    tmp_path: Path, tiny_run: Path, command: str, option: str, kind: str
) -> None:
    args, folder = _commands(tmp_path, tiny_run)[(command, option)]
    place = _place(tmp_path, kind, folder)
    result = runner.invoke(app, [*args, option, str(place)],
                           env={"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert option in result.output and str(place) in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache").exists(), "work started before the output path was checked"


FIELDS: dict[str, Any] = {
    "name": "fid", "extractor": "dlib-face", "value": 0.3, "ci95": [0.25, 0.35],
    "n_generated": 50, "n_reference": 40, "higher_is_better": False, "details": {},
}
BAD = {"wrong type": "abc", "null": None, "NaN": math.nan, "list": [1, 2]}


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_results_field_with_a_bad_value_is_refused(
    tmp_path: Path, field: str, bad: str
) -> None:
    entry = {**FIELDS, field: BAD[bad]}
    accepted = field == "ci95" and bad in ("null", "list")  # no interval / the interval [1, 2]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": "gan-eval/results/v1", "provenance": {},
                                "metrics": [entry]}))  # json writes NaN as the literal NaN
    result = runner.invoke(app, ["gate", str(path), "--config", str(_gates(tmp_path / "g.toml"))])
    if accepted:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "metrics[0]" in result.output and "Traceback" not in result.output
    assert field in result.output or (bad == "list" and field in ("details",)), result.output


@pytest.mark.parametrize("section", ["recognition", "robustness", "gates", "training",
                                     "provenance"])
def test_a_section_of_the_wrong_type_is_refused(tmp_path: Path, section: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": "gan-eval/results/v1", section: [1, 2, 3],
                                "metrics": [FIELDS]}))
    result = runner.invoke(app, ["report", "--from-results", str(path), "--out",
                                 str(tmp_path / "page")])
    assert result.exit_code == 2, result.output
    assert section in result.output and "Traceback" not in result.output


def test_baseline_interval_with_one_element_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"schema": "gan-eval/results/v1",
                                "metrics": [{**FIELDS, "ci95": [0.3]}]}))
    result = runner.invoke(app, ["gate", str(_results(tmp_path / "now.json")), "--config",
                                 str(_gates(tmp_path / "g.toml")), "--baseline", str(base)])
    assert result.exit_code == 2 and "ci95" in result.output, result.output


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("where", ["now", "baseline"])
def test_gates_fail_closed_on_a_number_that_is_not_one(
    tmp_path: Path, value: float, where: str
) -> None:
    """A baseline-only gate used to say 'PASS now nan'."""
    config = load_config(_gates(tmp_path / "g.toml", '[[gate]]\nmetric = "fid"\n'
                                '[baseline]\ntolerance = 0.1\n'))
    good = Results.load(_results(tmp_path / "good.json"))
    bad = Results(provenance={}, metrics=[Metric(
        name="fid", extractor="dlib-face", value=value, ci95=None, n_generated=50,
        n_reference=40, higher_is_better=False)])
    now, base = (bad, good) if where == "now" else (good, bad)
    checks = evaluate_gates(config, now, base)
    assert checks and not any(c.passed for c in checks)
    assert "fails closed" in checks[0].message


def test_junit_with_control_characters_is_well_formed(tmp_path: Path) -> None:
    from gan_eval.gates import Check

    path = tmp_path / "junit.xml"
    write_junit([Check("fid\x01[dlib\x1b-face]", "threshold", False, 1.0, "bad \x00 value \udcff")],
                path)
    root = ET.parse(path).getroot()  # raises on ill-formed XML
    case = root.find("testsuite/testcase")
    assert case is not None and "\\x01" in case.attrib["name"]


def test_from_results_opens_no_outside_path_without_a_content_hash(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "faces.npz"
    outside.parent.mkdir()
    import numpy as np

    np.savez(outside, images=np.zeros((4, 8, 8, 3), dtype=np.uint8))
    folder = tmp_path / "given"
    folder.mkdir()
    path = folder / "results.json"
    path.write_text(json.dumps({
        "schema": "gan-eval/results/v1", "metrics": [FIELDS],
        "training": {"samples": {"data": str(outside), "n": 4}},
    }))
    result = runner.invoke(app, ["report", "--from-results", str(path), "--out",
                                 str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page" / "index.html").read_text()
    assert "outside" in page and "no content hash" in page
    assert not (tmp_path / "page" / "plots" / "samples.png").exists()


def test_sample_never_mixes_runs(tmp_path: Path, tiny_run: Path) -> None:
    out = tmp_path / "samples"
    first = runner.invoke(app, ["sample", str(tiny_run), "--count", "3", "--out", str(out),
                                "--npz", "--device", "cpu"])
    assert first.exit_code == 0, first.output
    refused = runner.invoke(app, ["sample", str(tiny_run), "--count", "2", "--out", str(out),
                                  "--device", "cpu"])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert len(list(out.glob("*.png"))) == 3
    again = runner.invoke(app, ["sample", str(tiny_run), "--count", "2", "--out", str(out),
                                "--overwrite", "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png"]
    assert not list(tmp_path.glob(".*tmp")), "a staging folder was left behind"


def test_a_generator_that_outputs_nan_is_refused() -> None:
    source = GeneratorSource(lambda z: torch.full((z.shape[0], 3, 8, 8), math.nan), nz=4,
                             resolution=8, channels=3, identity="nan", data="nan-generator",
                             kind="test", n=5, device="cpu")
    with pytest.raises(InputError, match="nan-generator: the generator outputs NaN"):
        source.read(range(5))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["attack", "builtin:lfw-subset", "--eps", "1e400/1"], "--eps"),
        (["sample", "RUN", "--count", "100000000000000000000", "--out", "OUT"], "--count"),
        (["evaluate", "RUN", "-r", "builtin:lfw-subset", "--count", "100000000000000000000"],
         "--count"),
    ],
)
def test_absurd_numbers_are_input_errors(
    tmp_path: Path, tiny_run: Path, args: list[str], needle: str
) -> None:
    args = [str(tiny_run) if a == "RUN" else str(tmp_path / "o") if a == "OUT" else a
            for a in args]
    result = runner.invoke(app, args, env={"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert needle in result.output and "Traceback" not in result.output


def test_an_internal_error_exits_4_and_asks_for_a_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import gan_eval.cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something gan-eval did not expect")

    monkeypatch.setattr(gan_eval.cli, "evaluate_gates", broken)
    args = ["gate", str(_results(tmp_path / "r.json")), "--config",
            str(_gates(tmp_path / "g.toml"))]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 4, plain.output
    assert "internal error" in plain.output and "report" in plain.output
    assert "Traceback" not in plain.output
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 4 and "Traceback" in debug.output


def test_only_a_failed_gate_exits_1(tmp_path: Path) -> None:
    gates = _gates(tmp_path / "g.toml", '[[gate]]\nmetric = "fid"\nmax = 0.1\n')
    failed = runner.invoke(app, ["gate", str(_results(tmp_path / "r.json")), "--config",
                                 str(gates)])
    assert failed.exit_code == 1 and "gate FAILED" in failed.output
