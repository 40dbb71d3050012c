"""Quickstart with the Python API: train a tiny DCGAN on the built-in LFW faces, then audit it.

Run: python examples/quickstart.py [OUT_DIR]   (about two minutes on a 2-core CPU)
"""

from __future__ import annotations

import sys
from pathlib import Path

import gan_eval
from gan_eval.report.tables import metrics_table


def main(out: Path) -> None:
    checkpoint = gan_eval.train(
        gan_eval.TrainConfig(data="builtin:lfw-subset", out=out, resolution=32, steps=300)
    )
    results = gan_eval.evaluate(
        str(checkpoint), "builtin:lfw-subset", gan_eval.EvaluateConfig(n=500, bootstrap=100)
    )
    print(metrics_table(results.metrics))
    results.save(out / "results.json")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart"))
