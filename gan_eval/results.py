"""The results JSON (schema ``gan-eval/results/v1``): metrics, sections and provenance.

Every command that computes numbers returns a :class:`Results`; ``save`` writes it atomically and
``load`` validates a file written by any gan-eval version of this schema.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from gan_eval.catalogue import metric_spec
from gan_eval.errors import InputError
from gan_eval.fileio import atomic_write_text

SCHEMA = "gan-eval/results/v1"


@dataclass
class Metric:
    """One number: a metric on one extractor, with its 95% interval and sample counts."""

    name: str
    extractor: str
    value: float
    ci95: tuple[float, float] | None
    n_generated: int
    n_reference: int
    higher_is_better: bool
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        extractor: str,
        value: float,
        *,
        ci95: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> Metric:
        """A metric whose direction comes from the catalogue (:mod:`gan_eval.catalogue`) and
        whose interval is clipped to the catalogue's bounds (a bias-shifted bootstrap interval of
        a rate near 0 would otherwise reach below 0)."""
        spec = metric_spec(name)
        if ci95 is not None:
            low, high = spec.bounds
            ci95 = (min(max(ci95[0], low), high), min(max(ci95[1], low), high))
        return cls(
            name=name,
            extractor=extractor,
            value=float(value),
            ci95=ci95,
            higher_is_better=spec.higher_is_better,
            **kwargs,
        )


@dataclass
class Results:
    """Everything one run measured."""

    provenance: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    recognition: dict[str, Any] = field(default_factory=dict)
    robustness: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, extractor: str | None = None) -> Metric:
        """The metric ``name`` (on ``extractor`` when several extractors report it)."""
        found = [
            m
            for m in self.metrics
            if m.name == name and (extractor is None or m.extractor == extractor)
        ]
        if len(found) != 1:
            where = f" on extractor {extractor!r}" if extractor else ""
            raise KeyError(f"{len(found)} metrics named {name!r}{where}")
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "provenance": self.provenance,
            "metrics": [asdict(m) for m in self.metrics],
            "recognition": self.recognition,
            "robustness": self.robustness,
            "gates": self.gates,
            "training": self.training,
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON atomically (no half-written file under ``path``)."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read and validate a results JSON; :class:`InputError` names the file and the problem."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InputError(f"{path}: no such results file") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable results JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise InputError(f"{path}: not a gan-eval results file (expected schema {SCHEMA!r})")
        try:
            metrics = [
                Metric(**{**m, "ci95": tuple(m["ci95"]) if m.get("ci95") else None})
                for m in raw.get("metrics", [])
            ]
        except (TypeError, KeyError) as exc:
            raise InputError(f"{path}: malformed 'metrics' entry ({exc})") from exc
        return cls(
            provenance=raw.get("provenance", {}),
            metrics=metrics,
            recognition=raw.get("recognition", {}),
            robustness=raw.get("robustness", {}),
            gates=raw.get("gates", {}),
            training=raw.get("training", {}),
        )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(**extra: Any) -> dict[str, Any]:
    """Package versions, platform and time, plus ``extra`` (seed, device, data, weight hashes)."""
    packages = [
        "gan-eval",
        "torch",
        "torchvision",
        "torch-fidelity",
        "foolbox",
        "numpy",
        "scikit-learn",
        "safetensors",
    ]
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        **extra,
    }
