"""Whole-process start-up of the commands a CI job runs on every push, side by side with
``python -c "import torch"`` (the anchor: what any torch tool pays before it does anything).

Target (issue "one home for every concept"): ``gan-eval gate RESULTS.json`` start to finish
within 1.3× of ``import torch``. Commands run alternately (A B C A B C …), the median of
``--repeats`` runs each is reported with its ratio to the anchor.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _results_file(folder: Path) -> Path:
    """A small results.json written by gan-eval's own schema code (no network needed)."""
    code = (
        "import sys\n"
        "from gan_eval.estimates import normal_interval\n"
        "from gan_eval.results import Metric, Results, provenance\n"
        "def iv(v, se, e):\n"
        "    return normal_interval(v, se, n=1000, estimand=e, method='split_extrapolation')\n"
        "Results(provenance=provenance(command='bench'), metrics=["
        "Metric.of('fid', 'dlib-face', iv(0.3, 0.025, 'mean_at_n'), n_generated=1000, "
        "n_reference=100), Metric.of('precision', 'dlib-face', iv(0.8, 0.05, 'population'), "
        "n_generated=1000, n_reference=100), Metric.of('coverage', 'dlib-face', "
        "iv(0.7, 0.05, 'mean_at_n'), n_generated=1000, n_reference=100)]).save(sys.argv[1])\n"
    )
    path = folder / "results.json"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    gan_eval = shutil.which("gan-eval") or "gan-eval"
    with tempfile.TemporaryDirectory() as tmp:
        results = _results_file(Path(tmp))
        gates = ROOT / "gan_eval" / "default_gates.toml"
        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "gan-eval --version": [gan_eval, "--version"],
            "gan-eval gate RESULTS.json": [gan_eval, "gate", str(results), "--config",
                                           str(gates)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm the page cache once
            subprocess.run(command, capture_output=True)
        for _ in range(args.repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True)
                times[name].append(time.perf_counter() - start)
                if done.returncode not in (0, 1):
                    raise SystemExit(f"{name} failed: {done.stderr.decode()}")
    anchor = statistics.median(times['python -c "import torch"'])
    print(f"{'command':<30}{'median s':>10}{'× import torch':>16}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<30}{median:>10.3f}{median / anchor:>16.2f}")


if __name__ == "__main__":
    main()
