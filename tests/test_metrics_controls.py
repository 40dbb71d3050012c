"""Floors, ceilings and spans (gan_eval.metrics.controls, gan_eval.results.span_of): real data
sits at span 0, a degenerate generator at 1, copies of the reference below 0, on Gaussian
features where the answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gan_eval.estimates import normal_interval
from gan_eval.metrics import frechet_distance
from gan_eval.metrics.controls import (
    MAX_CONTROL_SIZE,
    control_reasons,
    control_size,
    distribution_controls,
)
from gan_eval.metrics.frechet import FeatureStats
from gan_eval.results import Metric, span_of

D = 8
ALL = frozenset({"fid", "fid_infinity", "kid", "cmmd", "precision", "recall", "density",
                 "coverage"})


def _gauss(n: int, shift: float, seed: int) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64) + shift


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    return _gauss(200, 0.0, 1)


@pytest.fixture(scope="module")
def degenerate(reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """A "noise" far from the reference and its mean (one row), as the evaluate controls are."""
    return {"uniform noise": _gauss(100, 4.0, 2), "mean face": reference.mean(0, keepdim=True)}


def _controls(generated: torch.Tensor, reference: torch.Tensor,
              degenerate: dict[str, torch.Tensor], metrics: frozenset[str] = ALL,
              **kwargs: object) -> dict:
    size = control_size(generated.shape[0], reference.shape[0])
    return distribution_controls(generated, reference, degenerate, metrics=metrics, size=size,
                                 splits=6, seed=3, kid_subsets=20, **kwargs)  # type: ignore[arg-type]


def _span(c: object, name: str) -> float:
    spec_higher = name in ("precision", "recall", "density", "coverage", "is")
    value = span_of(c.generated, c.floor, c.ceiling,  # type: ignore[attr-defined]
                    higher_is_better=spec_higher)
    assert value is not None
    return value


@pytest.mark.parametrize(("n", "m", "expected"), [
    (1000, 80, 40), (200, 100, 50), (20, 100, 20), (5000, 50000, MAX_CONTROL_SIZE), (10, 3, 1),
])
def test_control_size_is_the_smallest_of_n_half_the_reference_and_the_cap(
        n: int, m: int, expected: int) -> None:
    assert control_size(n, m) == expected


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_control_sides_are_disjoint_and_never_larger_than_n(n: int, m: int) -> None:
    h = control_size(n, m)
    assert 0 <= h <= min(n, MAX_CONTROL_SIZE) and h <= m - h


def test_real_data_sits_at_the_floor_and_noise_at_the_ceiling(
        reference: torch.Tensor, degenerate: dict[str, torch.Tensor]) -> None:
    real = _controls(_gauss(400, 0.0, 5), reference, degenerate)
    noise = _controls(_gauss(400, 4.0, 6), reference, degenerate)
    assert set(real) == ALL
    for name in ALL:
        assert abs(_span(real[name], name)) < 0.25, (name, real[name])
        assert _span(noise[name], name) > 0.8, (name, noise[name])
    # higher-is-better metrics: the floor (real) is above the ceiling; lower-is-better below
    assert real["precision"].floor > real["precision"].ceiling
    assert real["fid"].floor < real["fid"].ceiling


def test_the_ceiling_is_the_worse_degenerate_generator(
        reference: torch.Tensor, degenerate: dict[str, torch.Tensor]) -> None:
    found = _controls(_gauss(300, 0.0, 7), reference, degenerate)
    for name, c in found.items():
        higher = name in ("precision", "recall", "density", "coverage")
        worst = (min if higher else max)(c.candidates.values())
        assert c.ceiling == worst and c.candidates[c.ceiling_of] == worst
    # the mean image: one point, zero spread: FID = tr Σ_ref (≈ D), noise is 16·D further
    assert found["fid"].candidates["mean face"] < found["fid"].candidates["uniform noise"]
    assert found["fid"].ceiling_of == "uniform noise"


def test_copies_of_the_reference_score_better_than_real_data(
        reference: torch.Tensor, degenerate: dict[str, torch.Tensor]) -> None:
    """Disjoint real halves are the floor; the reference itself (every reference-side image
    copied) is closer than that: span < 0, which min_span catches."""
    copies = reference.repeat(2, 1)
    found = _controls(copies, reference, degenerate, metrics=frozenset({"fid", "kid"}))
    assert _span(found["fid"], "fid") < 0 and _span(found["kid"], "kid") < 0


def test_floor_is_the_metric_of_disjoint_halves(reference: torch.Tensor,
                                                 degenerate: dict[str, torch.Tensor]) -> None:
    """With one split the floor is FID of h held-out reference rows against the other m − h,
    drawn with the documented seed (numpy default_rng permutation)."""
    import numpy as np

    found = distribution_controls(_gauss(150, 0.0, 8), reference, degenerate,
                                  metrics=frozenset({"fid"}), size=60, splits=1, seed=11)
    perm = torch.from_numpy(np.random.default_rng(11).permutation(200))
    expected = frechet_distance(FeatureStats.from_features(reference[perm[:60]]),
                                FeatureStats.from_features(reference[perm[60:]]), warn=False)
    assert found["fid"].floor == pytest.approx(expected, rel=1e-12)
    assert (found["fid"].n_generated, found["fid"].n_reference) == (60, 140)


def test_inception_score_floor_is_real_logits_and_the_mean_image_scores_one() -> None:
    gen = torch.Generator().manual_seed(4)
    classes = torch.randint(0, 10, (120,), generator=gen)
    real_logits = torch.nn.functional.one_hot(classes, 10).double() * 8.0
    gen_logits = real_logits[torch.randperm(120, generator=gen)][:100] + 0.1
    features = _gauss(120, 0.0, 9)
    found = distribution_controls(
        _gauss(100, 0.0, 10), features,
        {"uniform noise": _gauss(60, 4.0, 12), "mean face": features.mean(0, keepdim=True)},
        metrics=frozenset({"is"}), size=60, splits=4, seed=0,
        logits=(gen_logits, real_logits, {"uniform noise": torch.zeros(60, 10).double(),
                                          "mean face": real_logits[:1]}))
    c = found["is"]
    assert c.floor > 5 and c.candidates["mean face"] == pytest.approx(1.0)
    assert c.ceiling == pytest.approx(1.0) and 0 <= _span(c, "is") < 0.2


@pytest.mark.parametrize(("metrics", "size", "m", "logits", "refused", "needle"), [
    (ALL, 1, 3, False, ALL, "too small to split"),
    (frozenset({"precision", "coverage", "fid"}), 5, 10, False,
     {"precision", "coverage"}, "k-NN radii"),
    (frozenset({"fid_infinity", "fid"}), 10, 40, False, {"fid_infinity"}, "quarters"),
    (frozenset({"is", "fid"}), 40, 80, False, {"is"}, "logits"),
])
def test_controls_say_why_a_metric_has_none(metrics: frozenset[str], size: int, m: int,
                                            logits: bool, refused: set[str],
                                            needle: str) -> None:
    reasons = control_reasons(metrics, size, m, dims=1, logits=logits)
    assert set(reasons) == refused and all(needle in why for why in reasons.values())


def test_refused_metrics_are_left_out_not_guessed(reference: torch.Tensor,
                                                  degenerate: dict[str, torch.Tensor]) -> None:
    found = distribution_controls(_gauss(10, 0.0, 3), reference, degenerate, metrics=ALL,
                                  size=5, splits=2, seed=0, kid_subsets=5)
    assert set(found) == {"fid", "kid", "cmmd"}


@given(st.floats(-1e3, 1e3), st.floats(1e-3, 1e3), st.booleans(), st.floats(-2, 3))
def test_span_is_zero_at_the_floor_one_at_the_ceiling_and_linear(
        floor: float, gap: float, higher: bool, t: float) -> None:
    ceiling = floor - gap if higher else floor + gap
    assert span_of(floor, floor, ceiling, higher_is_better=higher) == 0
    assert span_of(ceiling, floor, ceiling, higher_is_better=higher) == pytest.approx(1)
    value = floor + t * (ceiling - floor)
    assert span_of(value, floor, ceiling, higher_is_better=higher) == pytest.approx(
        t, abs=1e-9 * (1 + abs(floor) / gap))


@given(st.floats(-1e3, 1e3), st.floats(0, 1e3), st.booleans())
def test_no_span_when_the_ceiling_is_not_worse_than_the_floor(floor: float, gap: float,
                                                              higher: bool) -> None:
    ceiling = floor + gap if higher else floor - gap  # the "degenerate" scores as well or better
    assert span_of(floor, floor, ceiling, higher_is_better=higher) is None


def _metric_with(details: dict) -> Metric:
    iv = normal_interval(0.3, 0.01, n=100, estimand="mean_at_n", method="split_extrapolation")
    return Metric.of("fid", "dlib-face", iv, n_generated=100, n_reference=80, details=details)


def _records(floor: float, ceiling: float, generated: float, sd: float = 0.01) -> dict:
    sizes = {"n_generated": 40, "n_reference": 40, "splits": 10}
    return {"floor": {"value": floor, "sd": sd, **sizes},
            "ceiling": {"value": ceiling, "sd": sd, "of": "uniform noise", **sizes},
            "at_control_sizes": {"value": generated, "sd": sd, **sizes}}


def test_metric_span_reads_its_records_and_recomputes() -> None:
    metric = _metric_with({**_records(0.1, 0.5, 0.2), "span": {"value": 0.99}})
    span = metric.span()
    assert span.value == pytest.approx(0.25) and span.reason is None  # the stored 0.99 is ignored
    assert (span.floor, span.ceiling, span.generated, span.ceiling_of) == (
        0.1, 0.5, 0.2, "uniform noise")


@pytest.mark.parametrize(("details", "needle"), [
    ({}, "no floor and ceiling recorded"),
    ({"no_controls": "the reference (3 images) is too small to split"}, "too small to split"),
    ({**_records(0.1, 0.5, 0.2), "floor": {"value": "0.1"}}, "malformed"),
    ({**_records(0.1, 0.5, 0.2), "at_control_sizes": {"value": math.inf}}, "malformed"),
    (_records(0.1, 0.105, 0.2, sd=0.02), "does not score clearly worse"),
    (_records(0.5, 0.1, 0.2), "does not score clearly worse"),
])
def test_metric_without_a_usable_span_says_why(details: dict, needle: str) -> None:
    span = _metric_with(details).span()
    assert span.value is None and span.reason is not None and needle in span.reason


def test_fid_infinity_controls_obey_fid_infinitys_regime() -> None:
    """At the embedded default's 40 vs 40 in dlib's 128 dimensions FID∞ is outside its regime
    (regimes.refusal): no floor or ceiling is extrapolated there either; at 800 it is inside."""
    refused = control_reasons(frozenset({"fid_infinity", "fid"}), 40, 80, dims=128)
    assert set(refused) == {"fid_infinity"} and "40 vs 40" in refused["fid_infinity"]
    assert "768" in refused["fid_infinity"]
    assert control_reasons(frozenset({"fid_infinity"}), 800, 2000, dims=128) == {}
