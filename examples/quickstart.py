"""Quickstart with the Python API: train a tiny DCGAN on the built-in LFW faces, then evaluate it.

Run from the repository root (the defaults are the README's; fewer --steps and one thread keep
it short on a busy machine):

    python examples/quickstart.py [--out runs/quickstart] [--steps 300] [--count 500] [--threads N]

Writes the run (checkpoint/, samples/, metrics.jsonl) and results.json to --out and prints the
metrics table. 300 steps and 500 samples take about a minute on an idle 2-core CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gan_eval
from gan_eval.report.tables import metrics_table


def main(out: Path, *, steps: int, count: int, threads: int | None) -> None:
    checkpoint = gan_eval.train(gan_eval.TrainConfig(
        data="builtin:lfw-subset", out=out, resolution=32, steps=steps, threads=threads))
    results = gan_eval.evaluate(str(checkpoint), "builtin:lfw-subset",
                                gan_eval.EvaluateConfig(n=count))
    print(metrics_table(results.metrics))
    results.save(out / "results.json")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"),
                        help="run folder (default: runs/quickstart)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--count", type=int, default=500,
                        help="generated faces evaluated (default: 500)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for training (default: torch's; 1 on a busy CPU)")
    args = parser.parse_args()
    main(args.out, steps=args.steps, count=args.count, threads=args.threads)
