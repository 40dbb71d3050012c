"""The default gates mean something (issue 23): pure noise and the example's random-weight
generator fail EACH default gate on its own (exit 1) on the built-in faces, and a gate on the
uncalibrated copy rate of the embedded default cannot judge (exit 2), never fails."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_eval.audit import default_gates
from gan_eval.cli import app
from gan_eval.gates import load_config
from gan_eval.results import Results

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
NOISE = f"{ROOT / 'tests' / 'noise_generator.py'}:make_noise"
RANDOM_WEIGHTS = f"{ROOT / 'examples' / 'external_generator' / 'generator.py'}:make_generator"
runner = CliRunner()


DISTRIBUTION = {"fid", "fid_infinity", "kid", "cmmd", "precision", "recall", "density",
                "coverage", "is"}
RESTORATION = {"psnr", "identity_swap_rate"}  # the report's restoration model, not the generator


def _one_gate_configs(tmp_path: Path) -> list[tuple[str, Path]]:
    """Each default gate on a distribution metric in a config of its own."""
    raw = tomllib.loads(default_gates().read_text())
    configs = []
    for i, entry in enumerate(e for e in raw["gate"] if e["metric"] in DISTRIBUTION):
        path = tmp_path / f"gate{i}.toml"
        path.write_text("[[gate]]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                               for k, v in entry.items()))
        configs.append((f"{entry['metric']}[{entry.get('extractor', 'dlib-face')}]", path))
    return configs


def test_default_gates_on_the_generator_are_span_gates() -> None:
    """Every default gate on a distribution metric is a span gate; the others are the report's
    restoration gates (thresholds in their units)."""
    gates = load_config(default_gates()).gates
    distribution = [g for g in gates if g.metric in DISTRIBUTION]
    assert len(distribution) >= 3
    assert all(g.max_span is not None and g.min is None and g.max is None for g in distribution)
    assert {g.metric for g in gates} - DISTRIBUTION <= RESTORATION


@pytest.mark.slow
@pytest.mark.parametrize("generator", [NOISE, RANDOM_WEIGHTS], ids=["noise", "random-weights"])
def test_noise_and_random_weights_fail_each_default_gate(generator: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    spans = {}
    for label, config in _one_gate_configs(tmp_path):
        out = tmp_path / f"{config.stem}.json"
        result = runner.invoke(app, ["gate", generator, "--config", str(config), "--data",
                                     "builtin:lfw-subset", "--count", "200", "--device", "cpu",
                                     "--json", str(out)])
        assert result.exit_code == 1, (label, result.output)
        assert "span" in result.output and "above max_span" in result.output, result.output
        assert "floor (real data)" in result.output and "ceiling" in result.output
        name, extractor = label.rstrip("]").split("[")
        span = Results.load(out).metric(name, extractor).span()
        assert span.value is not None and span.value > 0.5, (label, span)
        spans[label] = round(span.value, 3)
    print(f"{generator}: spans {spans}")  # shown with -s: the numbers behind the verdicts


def test_copy_rate_gate_on_the_embedded_default_cannot_judge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the 25×25 built-in faces dlib's 0.6 accepts ~19% of impostor pairs: a copy_rate gate
    exits 2 with the reason, never 1 (and never 0); its calibrated counterpart is judged."""
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    copy_gate = tmp_path / "copy.toml"
    copy_gate.write_text('[[gate]]\nmetric = "copy_rate"\nmax = 0.5\n')
    out = tmp_path / "results.json"
    args = ["--data", "builtin:lfw-train", "--count", "60", "--device", "cpu", "--json", str(out)]
    result = runner.invoke(app, ["gate", NOISE, "--config", str(copy_gate), *args])
    assert result.exit_code == 2, result.output
    assert "cannot judge at this threshold here; gate the calibrated metric " \
           "(copy_rate_calibrated)" in result.output
    assert "does not separate people" in result.output and "Traceback" not in result.output
    # the same results file, judged again from JSON: the same exit 2
    again = runner.invoke(app, ["gate", str(out), "--config", str(copy_gate)])
    assert again.exit_code == 2 and "CANNOT JUDGE" in again.output
    calibrated = tmp_path / "calibrated.toml"
    calibrated.write_text('[[gate]]\nmetric = "copy_rate_calibrated"\nmax = 0.5\n')
    judged = runner.invoke(app, ["gate", str(out), "--config", str(calibrated)])
    assert judged.exit_code in (0, 1) and "CANNOT JUDGE" not in judged.output, judged.output
