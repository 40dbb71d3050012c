"""The restoration section of a report: tiles, identity swaps, metric-vs-severity curves, table.

Pixels never enter the results JSON: :func:`write_pictures` draws the run's tiles and swap
gallery (:class:`gan_eval.restoration.audit.Tiles`) as PNG files under ``plots/`` and returns
their relative paths, which the section records (``pictures``); :func:`restoration_figures`
reads them back (from the report folder, so a moved folder keeps them) and draws the curves from
the numbers; :func:`restoration_view` is what the template shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gan_eval.fileio import atomic_write_bytes
from gan_eval.report.plots import _figure, _png

if TYPE_CHECKING:
    import torch

    from gan_eval.restoration.audit import Tiles

__all__ = ["CURVE_METRICS", "restoration_figures", "restoration_view", "write_pictures"]

CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("psnr", "PSNR (dB) ↑"),
    ("ssim", "SSIM ↑"),
    ("lpips", "LPIPS ↓"),
    ("identity_distance", "identity distance ↓"),
    ("identity_swap_rate", "identity swap rate ↓"),
    ("landmark_distance", "landmark distance (px) ↓"),
)
"""The metrics drawn against severity, one column of panels each."""

TABLE_METRICS = ("psnr", "ssim", "lpips", "identity_distance", "identity_kept_rate",
                 "identity_swap_rate", "verification_tar", "landmark_distance")

_COLORS = ("#d9480f", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e64980",
           "#495057")


def _hwc(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.cpu().numpy().transpose(1, 2, 0))


def _short(spec: str) -> str:
    return spec.removeprefix("builtin:") if spec.startswith("builtin:") else Path(spec).name


def tiles_png(tiles: Tiles, labels: dict[str, str]) -> bytes:
    """The grid: one row per (face, degradation), columns clean, degraded, each method (blank
    where a method does not restore that degradation)."""
    rows, cols = tiles.present.shape
    with _figure(0.95 * cols + 1.4, 0.95 * rows + 0.5) as fig:
        axes = fig.subplots(rows, cols, squeeze=False)
        for r in range(rows):
            face, key = tiles.rows[r]
            for c in range(cols):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if tiles.present[r, c]:
                    ax.imshow(_hwc(tiles.grid[r, c]), interpolation="nearest")
                if r == 0:
                    ax.set_title(_short(tiles.columns[c]), fontsize=7)
                if c == 0:
                    ax.set_ylabel(f"#{face} {labels.get(key, key)}", fontsize=6, rotation=0,
                                  ha="right", va="center")
        fig.subplots_adjust(left=0.16, right=0.99, top=1 - 0.35 / (0.95 * rows + 0.5),
                            bottom=0.01, wspace=0.04, hspace=0.06)
        return _png(fig, layout=False)


def swaps_png(tiles: Tiles, labels: dict[str, str]) -> bytes | None:
    """The identity swaps: restored face, its own clean face, the other person it is closer to."""
    if not tiles.swaps:
        return None
    rows = len(tiles.swaps)
    with _figure(5.2, 1.25 * rows + 0.3) as fig:
        axes = fig.subplots(rows, 3, squeeze=False)
        for r, (swap, images) in enumerate(zip(tiles.swaps, tiles.swap_images, strict=True)):
            captions = (f"{_short(swap['method'])}\n{labels.get(swap['condition'], '')}",
                        f"own #{swap['face']}\nd = {swap['own_distance']:.3f}",
                        f"other #{swap['other']}\nd = {swap['other_distance']:.3f}")
            for c in range(3):
                ax = axes[r][c]
                ax.imshow(_hwc(images[c]), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(captions[c], fontsize=7)
        fig.tight_layout()
        return _png(fig, layout=False)


def write_pictures(tiles: Tiles, section: dict[str, Any], out: Path) -> dict[str, str]:
    """Write the tiles and swap gallery as ``out/plots/restoration_*.png``; returns
    ``{name: path relative to out}`` (also stored as ``section["pictures"]``)."""
    labels = {c["key"]: c["label"] for c in section.get("conditions", [])}
    written = {}
    for name, png in (("tiles", tiles_png(tiles, labels)), ("swaps", swaps_png(tiles, labels))):
        if png is None:
            continue
        relative = f"plots/restoration_{name}.png"
        atomic_write_bytes(out / relative, png)
        written[name] = relative
    section["pictures"] = written
    return written


def curves_png(section: dict[str, Any]) -> bytes | None:
    """Each metric against severity, one row of panels per degradation kind, one line per
    method with its 95% interval."""
    conditions = section.get("conditions") or []
    values = section.get("values") or {}
    kinds = list(dict.fromkeys(c["kind"] for c in conditions))
    metrics = [(k, label) for k, label in CURVE_METRICS
               if any(k in entry for per in values.values() for entry in per.values())]
    if not kinds or not metrics:
        return None
    methods = list(values)
    colors = {m: _COLORS[i % len(_COLORS)] for i, m in enumerate(methods)}
    with _figure(2.3 * len(metrics), 2.0 * len(kinds) + 0.6) as fig:
        axes = fig.subplots(len(kinds), len(metrics), squeeze=False)
        handles: dict[str, Any] = {}
        for r, kind in enumerate(kinds):
            keys = [c for c in conditions if c["kind"] == kind]
            for c, (metric, label) in enumerate(metrics):
                ax = axes[r][c]
                for method in methods:
                    points = [(cond["severity"], values[method][cond["key"]].get(metric))
                              for cond in keys if cond["key"] in values[method]]
                    points = [(s, e) for s, e in points
                              if isinstance(e, dict) and e.get("value") is not None]
                    if not points:
                        continue
                    xs = [s for s, _ in points]
                    ys = [e["value"] for _, e in points]
                    lo = [e["value"] - e["ci95"][0] for _, e in points]
                    hi = [e["ci95"][1] - e["value"] for _, e in points]
                    line = ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", markersize=3,
                                       capsize=2, linewidth=1.2, color=colors[method])
                    handles.setdefault(_short(method), line)
                if kind == "jpeg":
                    ax.invert_xaxis()  # lower quality is the stronger degradation
                if r == 0:
                    ax.set_title(label)
                if c == 0:
                    ax.set_ylabel(f"{kind} ({keys[0]['parameter']})")
                ax.tick_params(labelsize=7)
        fig.legend(list(handles.values()), list(handles), loc="lower center",
                   ncol=min(6, len(handles)))
        fig.tight_layout(rect=(0, 0.45 / (2.0 * len(kinds) + 0.6) * 2, 1, 1))
        return _png(fig, layout=False)


def restoration_figures(section: dict[str, Any], base: Path | None) -> dict[str, bytes]:
    """PNG bytes of the section's figures: ``restoration_curves`` (drawn from the numbers) and
    the tiles and swaps written by :func:`write_pictures` (read from ``base``; left out when
    the files are not there)."""
    if not section:
        return {}
    found: dict[str, bytes] = {}
    curves = curves_png(section)
    if curves is not None:
        found["restoration_curves"] = curves
    for name, relative in (section.get("pictures") or {}).items():
        if base is None or not isinstance(relative, str) or ".." in Path(relative).parts:
            continue
        path = base / relative
        if path.is_file():
            found[f"restoration_{name}"] = path.read_bytes()
    return found


def _fmt(entry: Any, digits: int = 3) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "–"
    ci = entry.get("ci95")
    text = f"{entry['value']:.{digits}g}"
    return text + (f" [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]" if ci else "")


def restoration_view(section: dict[str, Any], figures: dict[str, str]) -> dict[str, Any] | None:
    """What the template shows: per degradation and method each metric with its interval and
    its paired difference from no restoration, the swap list, the figures' data URIs."""
    if not section or not section.get("values"):
        return None
    values = section["values"]
    rows = []
    for cond in section.get("conditions") or []:
        for method, per in values.items():
            entry = per.get(cond["key"])
            if entry is None:
                continue
            rows.append({
                "condition": cond["label"], "method": method,
                "cells": [{"value": _fmt(entry.get(m)),
                           "difference": _fmt((entry.get(m) or {}).get("difference"))}
                          for m in TABLE_METRICS],
                "auc": _fmt({"value": (entry.get("verification") or {}).get("auc")}),
            })
    identity = section.get("identity") or {}
    threshold = identity.get("threshold") or {}
    return {
        "audited": section.get("audited"), "n": section.get("n"),
        "trained": section.get("trained"),
        "resolution": section.get("resolution"), "data": (section.get("data") or {}).get("data"),
        "metrics": list(TABLE_METRICS), "rows": rows,
        "methods": [{"spec": spec, "label": m.get("label"), "conditions": ", ".join(
            m.get("conditions") or [])} for spec, m in (section.get("methods") or {}).items()],
        "threshold": threshold.get("value"), "far": threshold.get("far"),
        "calibrated_on": threshold.get("calibrated_on"),
        "swap_meaning": identity.get("swap_meaning"), "labels": identity.get("labels"),
        "swaps": section.get("swaps") or [], "intervals": section.get("intervals"),
        "landmarks": (section.get("landmarks") or {}).get("meaning"),
        "curves": figures.get("restoration_curves"), "tiles": figures.get("restoration_tiles"),
        "swaps_png": figures.get("restoration_swaps"),
    }


def restoration_table(results: Any) -> str:
    """The terminal summary of ``gan-eval restoration``: the audited model's metrics (the
    gated ones, with intervals), then per degradation each method's PSNR, SSIM, identity
    distance and swap rate (with the paired difference from no restoration)."""
    section = results.restoration
    lines = [f"restoration audit of {section.get('audited')} on {section.get('n')} faces "
             f"({(section.get('data') or {}).get('data')}, {section.get('resolution')} px)", ""]
    lines.append(f"{'metric':<22}{'extractor':<14}{'value':>10}  95% CI")
    for m in results.metrics:
        ci = f"[{m.ci95[0]:.4g}, {m.ci95[1]:.4g}]" if m.ci95 else "(no interval)"
        lines.append(f"{m.name:<22}{m.extractor:<14}{m.value:>10.4g}  {ci}")
    shown = ("psnr", "ssim", "identity_distance", "identity_swap_rate")
    lines += ["", f"{'degradation':<20}{'method':<26}" + "".join(f"{k:>24}" for k in shown)]
    values = section.get("values") or {}
    for cond in section.get("conditions") or []:
        for method, per in values.items():
            entry = per.get(cond["key"])
            if entry is None:
                continue
            cells = []
            for k in shown:
                e = entry.get(k) or {}
                diff = e.get("difference")
                text = "–" if e.get("value") is None else f"{e['value']:.3g}"
                if isinstance(diff, dict) and diff.get("value") is not None:
                    text += f" ({diff['value']:+.2g})"
                cells.append(f"{text:>24}")
            lines.append(f"{cond['label']:<20}{method:<26}" + "".join(cells))
    lines += ["", "(…): paired difference from builtin:none on the same faces; every interval "
              "is in results.json"]
    return "\n".join(lines)
