"""The report's figures: matplotlib (Agg, no pyplot, no display) → PNG bytes from a results JSON.

Every function takes a section of :class:`~gan_eval.results.Results` (plain JSON data) and
returns PNG bytes, or None when the section holds nothing to draw. Figures share one small style
so that the HTML page reads as one document.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import matplotlib
from matplotlib.figure import Figure

STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
SET_COLORS = {"generated": "#d9480f", "real": "#1c7ed6", "data": "#1c7ed6", "reference": "#1c7ed6"}


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    # A bare Figure (no pyplot): no global figure registry, no GUI backend, saved through Agg.
    with matplotlib.rc_context(cast(Any, STYLE)):  # typed as a Literal-keyed dict upstream
        yield Figure(figsize=(width, height))


def _png(fig: Figure, *, layout: bool = True) -> bytes:
    buffer = io.BytesIO()
    if layout:
        fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _running_mean(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` points (shorter at the start), same length."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def training_curves(training: dict[str, Any]) -> bytes | None:
    """D and G losses against the step (``training["curve"]``: step, d_loss, g_loss lists)."""
    curve = training.get("curve") or {}
    steps = curve.get("step") or []
    if len(steps) < 2:
        return None
    with _figure(6.4, 2.8) as fig:
        ax = fig.add_subplot()
        window = max(1, len(steps) // 25)
        for key, label, color in (("d_loss", "D loss", "#1c7ed6"), ("g_loss", "G loss", "#d9480f")):
            values = curve.get(key) or []
            if len(values) != len(steps) or any(v is None for v in values):
                continue
            ax.plot(steps, values, color=color, linewidth=0.8, alpha=0.3)
            ax.plot(steps, _running_mean(values, window), color=color, linewidth=1.6,
                    label=f"{label} (mean of {window} points)" if window > 1 else label)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"Training losses ({training.get('config', {}).get('loss', 'ns')} loss)")
        ax.legend()
        return _png(fig)


def _eps_axis(norm: str) -> str:
    return "ε (L∞, ×255)" if norm == "linf" else f"ε ({norm.upper()}, [0, 1] pixel units)"


def attack_curves(robustness: dict[str, Any]) -> bytes | None:
    """Success rate against ε for every attack record, one panel per goal and norm (a minimal
    attack counts as a success at ε when its perturbation fits within ε); one legend below."""
    records = [r for r in robustness.get("attacks", []) if r.get("epsilons")]
    panels = sorted({(r["goal"], r["norm"]) for r in records})
    if not panels:
        return None
    attacks = list(dict.fromkeys(r["attack"] for r in records))
    markers = dict(zip(attacks, "osD^vP*X", strict=False))
    with _figure(max(3.4 * len(panels), 5.0), 3.4) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        handles: dict[str, Any] = {}
        for ax, (goal, norm) in zip(axes, panels, strict=True):
            for r in records:
                if (r["goal"], r["norm"]) != (goal, norm):
                    continue
                scale = 255.0 if norm == "linf" else 1.0
                label = f"{r['attack']} · {r['set']} (n={r['n']})"
                (line,) = ax.plot([e * scale for e in r["epsilons"]], r["success_rate"],
                                  "-" if r["set"] != "real" else "--",
                                  marker=markers.get(r["attack"], "o"), markersize=4,
                                  color=SET_COLORS.get(r["set"]), label=label)
                handles.setdefault(label, line)
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel(_eps_axis(norm))
            ax.set_ylabel("success rate")
            ax.set_title(goal.replace("_", " "))
        fig.legend(list(handles.values()), list(handles), loc="lower center",
                   ncol=min(4, len(handles)))
        fig.tight_layout(rect=(0, 0.06 * ((len(handles) + 3) // 4) + 0.04, 1, 1))
        return _png(fig, layout=False)


def corruption_curves(robustness: dict[str, Any]) -> bytes | None:
    """Match rate (embedding still within the threshold) against severity, one panel each."""
    records = robustness.get("corruptions") or []
    names = list(dict.fromkeys(r["corruption"] for r in records))
    if not names:
        return None
    with _figure(3.3 * len(names), 2.9) as fig:
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            for r in records:
                if r["corruption"] != name:
                    continue
                ax.plot(r["severities"], r["match_rate"], marker="o", markersize=3,
                        color=SET_COLORS.get(r["set"]), label=f"{r['set']} (n={r['n']})")
            if name == "jpeg":
                ax.invert_xaxis()  # lower quality is the stronger corruption
            ax.set_ylim(-0.03, 1.03)
            ax.set_xlabel(records[[r["corruption"] for r in records].index(name)]["parameter"])
            ax.set_ylabel("still matches itself")
            ax.set_title(name.replace("_", " "))
            ax.legend(loc="lower left")
        return _png(fig)


def birthday_curves(recognition: dict[str, Any]) -> bytes | None:
    """P(a batch of s faces holds a same-identity pair) against s, generated vs reference."""
    diversity = recognition.get("diversity") or {}
    drawn = False
    with _figure(6.4, 2.8) as fig:
        ax = fig.add_subplot()
        for set_name, key in (("generated", "generated"), ("reference", "reference")):
            at = (diversity.get(key) or {}).get("at") or {}
            for level, style in (("calibrated", "-"), ("match", ":")):
                curve = ((at.get(level) or {}).get("birthday") or {}).get("p_duplicate")
                if not curve:
                    continue
                sizes, probs = zip(*curve, strict=True)
                ax.plot(sizes, probs, style, marker="o", markersize=3,
                        color=SET_COLORS[set_name],
                        label=f"{set_name}, threshold {at[level]['threshold']:.3g}")
                drawn = True
        if not drawn:
            return None
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("faces drawn at random (s)")
        ax.set_ylabel("P(same identity twice)")
        ax.set_title("Birthday test: a curve further left means fewer distinct identities")
        ax.legend()
        return _png(fig)
