"""Audit a folder of generated faces against the real training faces.

Run from the repository root:

    python examples/audit_folder.py GENERATED_DIR REFERENCE_DATA [OUT_JSON]

Prints the distribution metrics and the identity-leakage summary, and writes both to OUT_JSON
(default: audit.json). GENERATED_DIR is any image folder (e.g. from ``gan-eval sample``);
REFERENCE_DATA any DATA string (a folder, .zip, .npz, builtin:lfw-subset).
"""

from __future__ import annotations

import sys

import gan_eval
from gan_eval.report.tables import metrics_table


def main(generated: str, reference: str, out: str = "audit.json") -> None:
    metrics = gan_eval.evaluate(generated, reference)
    print(metrics_table(metrics.metrics))
    identities = gan_eval.recognition(generated, reference)
    print(metrics_table(identities.metrics))
    metrics.metrics += identities.metrics
    metrics.recognition = identities.recognition
    metrics.save(out)
    print(f"results: {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(*sys.argv[1:])
