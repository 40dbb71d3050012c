"""Imports follow use: the commands a CI job runs on every push load no network (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gan_eval.estimates import normal_interval
from gan_eval.results import Metric, Results, provenance

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
from gan_eval.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "torchvision", "torch_fidelity", "foolbox", "scipy",
                           "sklearn", "matplotlib", "numpy") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def _heavy(args: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    line = [x for x in done.stdout.splitlines() if x.startswith("HEAVY=")]
    assert line, done.stdout + done.stderr
    return [m for m in line[-1].removeprefix("HEAVY=").split(",") if m]


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["gate", "--help"]])
def test_help_and_version_load_no_network(args: list[str]) -> None:
    assert "torch" not in _heavy(args)


def test_gate_on_a_results_file_loads_no_network(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    Results(provenance=provenance(command="t"), metrics=[
        Metric.of("fid", "dlib-face", normal_interval(0.3, 0.05, n=10, estimand="mean_at_n",
                                                      method="split_extrapolation"),
                  n_generated=10, n_reference=10)
    ]).save(results)
    gates = tmp_path / "gates.toml"
    gates.write_text('[[gate]]\nmetric = "fid"\nmax = 1\n')
    junit = tmp_path / "junit.xml"
    heavy = _heavy(["gate", str(results), "--config", str(gates), "--junit", str(junit)])
    assert junit.is_file() and json.loads(results.read_text())["metrics"]
    assert not {"torch", "torchvision", "torch_fidelity", "foolbox"} & set(heavy), heavy
