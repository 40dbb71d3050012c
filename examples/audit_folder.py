"""Audit a folder of generated faces against the real training faces.

Run: python examples/audit_folder.py GENERATED_DIR REFERENCE_DATA
Prints the distribution metrics and the identity-leakage summary, and writes audit.json.
"""

from __future__ import annotations

import sys

import gan_eval
from gan_eval.report.tables import metrics_table


def main(generated: str, reference: str) -> None:
    metrics = gan_eval.evaluate(generated, reference)
    print(metrics_table(metrics.metrics))
    identities = gan_eval.recognition(generated, reference)
    print(metrics_table(identities.metrics))
    metrics.metrics += identities.metrics
    metrics.recognition = identities.recognition
    metrics.save("audit.json")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
