"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from gan_eval.report.results import Metric


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def metrics_table(metrics: Sequence[Metric]) -> str:
    """metric, extractor, value, 95% interval, sample counts, direction — one row each."""
    rows = [("metric", "extractor", "value", "95% CI", "n_gen", "n_ref", "better")]
    for m in metrics:
        ci = f"[{_fmt(m.ci95[0])}, {_fmt(m.ci95[1])}]" if m.ci95 else "-"
        rows.append(
            (
                m.name,
                m.extractor,
                _fmt(m.value),
                ci,
                str(m.n_generated),
                str(m.n_reference),
                "higher" if m.higher_is_better else "lower",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
