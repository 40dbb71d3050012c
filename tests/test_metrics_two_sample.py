"""The gate's two-sample test: refuses unlike comparisons, and (slow) keeps its false-alarm rate
on re-runs of a fixed model while catching a regression of one baseline spread."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.fid_infinity import fid_analysis
from gan_eval.metrics.frechet import FeatureStats
from gan_eval.metrics.intervals import normal_interval
from gan_eval.metrics.two_sample import compare_to_baseline


def _iv(est: float, se: float, n: int = 1000, estimand: str = "mean_at_n"):
    return normal_interval(est, se, n=n, estimand=estimand, method="test")  # type: ignore[arg-type]


def test_one_sided_p_value_and_effect() -> None:
    base = _iv(10.0, 0.3)
    worse = compare_to_baseline(_iv(11.0, 0.4), base, higher_is_better=False)
    assert worse.z == pytest.approx(2.0)  # 1.0 / hypot(0.3, 0.4)
    assert worse.p_value == pytest.approx(0.02275, abs=1e-5)
    assert worse.worse and worse.effect == pytest.approx(1.0)
    assert worse.effect_in_spreads == pytest.approx(1.0 / (2 * 1.959964 * 0.3), rel=1e-5)
    better = compare_to_baseline(_iv(11.0, 0.4), base, higher_is_better=True)
    assert not better.worse and better.p_value == pytest.approx(1 - 0.02275, abs=1e-5)
    assert set(worse.to_json()) >= {"p_value", "effect", "effect_in_spreads", "alpha"}


def test_refuses_unlike_comparisons() -> None:
    with pytest.raises(InputError, match=r"n=500.*n=1000"):
        compare_to_baseline(_iv(1.0, 0.1, n=500), _iv(1.0, 0.1), higher_is_better=False)
    with pytest.raises(InputError, match="population"):
        compare_to_baseline(_iv(1.0, 0.1, estimand="population"), _iv(1.0, 0.1),
                            higher_is_better=False)
    # population estimands (FID∞, KID, precision) compare across n
    ok = compare_to_baseline(_iv(1.0, 0.1, n=500, estimand="population"),
                             _iv(1.0, 0.1, estimand="population"), higher_is_better=False)
    assert ok.p_value == pytest.approx(0.5)
    with pytest.raises(InputError):
        compare_to_baseline(_iv(1.0, 0.0), _iv(1.0, 0.0), higher_is_better=False)


@pytest.mark.calibration
def test_fid_gate_false_alarms_and_power() -> None:
    # D = 128, reference 2,000 fixed, n = 1,000 per run. 100 re-runs of a fixed model (baseline
    # and current run each with its own sampling seed), then 100 of a model whose E[FID_n] is
    # one baseline spread (the mean width of the baseline's 95 % interval) worse: a mean shift
    # v ⟂ δ with ‖v‖² = spread raises E[FID_n] by exactly ‖v‖².
    warnings.simplefilter("ignore")
    d = 128
    g = torch.Generator().manual_seed(0)
    lam = torch.exp(-torch.arange(d, dtype=torch.float64) / 30) + 0.02
    scale = (lam * (1 + 0.3 * torch.rand(d, generator=g, dtype=torch.float64))).sqrt()
    delta = 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    ref = FeatureStats.from_features(torch.randn(2000, d, generator=g, dtype=torch.float64)
                                     * lam.sqrt())

    def run(seed: int, shift: torch.Tensor):
        gg = torch.Generator().manual_seed(seed)
        gen = torch.randn(1000, d, generator=gg, dtype=torch.float64) * scale + shift
        return fid_analysis(gen, ref, seed=seed, n_splits=25).fid

    reruns = 100
    null = [compare_to_baseline(run(2 * t + 1, delta), base := run(2 * t, delta),
                                higher_is_better=False) for t in range(reruns)]
    widths = [t.effect / t.effect_in_spreads for t in null if t.effect != 0]
    spread = float(np.mean(widths))
    v = torch.randn(d, generator=g, dtype=torch.float64)
    v -= (v @ delta) / (delta @ delta) * delta
    v *= math.sqrt(spread) / v.norm()
    worse = [compare_to_baseline(run(10_000 + 2 * t + 1, delta + v), run(10_000 + 2 * t, delta),
                                 higher_is_better=False) for t in range(reruns)]
    alarms = sum(t.worse for t in null)
    caught = sum(t.worse for t in worse)
    print(f"\nFID gate at alpha 0.05: {alarms}/{reruns} false alarms on re-runs; "
          f"{caught}/{reruns} regressions of one spread ({spread:.3g}) caught; "
          f"baseline {base.estimate:.4g}")
    assert alarms <= 10  # P(Binomial(100, 0.05) > 10) ≈ 1 %
    assert caught >= 80
