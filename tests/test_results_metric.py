"""``Metric.of`` is the one place an interval becomes ``ci95`` and ``details.interval``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gan_eval
from gan_eval.catalogue import METRICS
from gan_eval.estimates import IntervalResult, normal_interval
from gan_eval.results import Metric

ROOT = Path(gan_eval.__file__).parent


@given(name=st.sampled_from(sorted(METRICS)),
       estimate=st.floats(-5, 5), se=st.floats(0, 3), n=st.integers(1, 10_000))
def test_interval_gives_value_ci95_and_record(name: str, estimate: float, se: float,
                                              n: int) -> None:
    iv = normal_interval(estimate, se, n=n, estimand="population", method="split_extrapolation")
    m = Metric.of(name, "dlib-face", iv, n_generated=n, n_reference=7, details={"k": 3})
    low, high = METRICS[name].bounds
    assert m.value == estimate
    assert m.ci95 == (min(max(iv.low, low), high), min(max(iv.high, low), high))
    assert m.details["interval"] == iv.to_json() and m.details["k"] == 3
    assert m.higher_is_better is METRICS[name].higher_is_better
    assert "no_interval" not in m.details
    back = IntervalResult.from_json(m.details["interval"], estimate=m.value, where="t")
    assert (back.low, back.high, back.se, back.n) == (iv.low, iv.high, iv.se, iv.n)


def test_a_number_without_an_interval_says_why() -> None:
    m = Metric.of("vendi_identities", "dlib-face", 12.5, no_interval="a count",
                  n_generated=40, n_reference=80)
    assert m.ci95 is None and m.details == {"no_interval": "a count"}
    with pytest.raises(ValueError, match="no_interval"):
        Metric.of("fid", "dlib-face", 0.3, n_generated=40, n_reference=80)


@pytest.mark.parametrize("mistake", ["reason_and_interval", "other_n", "interval_in_details",
                                     "no_interval_in_details", "se_contradicts_bounds",
                                     "not_wilson_bounds"])
def test_producer_mistakes_are_refused(mistake: str) -> None:
    iv = normal_interval(0.3, 0.01, n=40, estimand="mean_at_n", method="split_extrapolation")
    kwargs: dict = {"n_generated": 40, "n_reference": 80}
    if mistake == "se_contradicts_bounds":
        iv = IntervalResult(0.3, 0.28, 0.32, 1.0, "mean_at_n", "split_extrapolation", 40, 0.95)
    elif mistake == "not_wilson_bounds":  # a rate of 12/40 with a symmetric interval
        iv = IntervalResult(0.3, 0.28, 0.32, 0.01, "population", "wilson", 40, 0.95)
    elif mistake == "reason_and_interval":
        kwargs["no_interval"] = "why"
    elif mistake == "other_n":
        kwargs["n_generated"] = 41
    elif mistake == "interval_in_details":
        kwargs["details"] = {"interval": iv.to_json()}
    else:
        kwargs["details"] = {"no_interval": "why"}
    with pytest.raises(ValueError):
        Metric.of("fid", "dlib-face", iv, **kwargs)


def test_clipped_to_the_catalogue_bounds() -> None:
    iv = normal_interval(0.01, 0.015, n=30, estimand="population", method="jackknife")
    assert iv.low < 0
    assert Metric.of("copy_rate", "dlib-face", iv, n_generated=30, n_reference=5).ci95 == (
        0.0, iv.high)
    inf = normal_interval(1.0, 2.0, n=30, estimand="population", method="split_extrapolation")
    assert Metric.of("fid_infinity", "dlib-face", inf, n_generated=30,
                     n_reference=5).ci95 == inf.interval  # unbounded: not clipped


def test_no_producer_builds_ci95_or_a_metric_itself() -> None:
    """Outside results.py no code calls the Metric constructor or passes ``ci95=``: every
    producer hands Metric.of an IntervalResult (or the reason there is none)."""
    found = []
    for path in ROOT.rglob("*.py"):
        if path.name == "results.py" and path.parent == ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id == "Metric":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} Metric(...)")
            if any(k.arg == "ci95" for k in node.keywords):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} ci95=")
    assert found == []
