"""The gate's two-sample test: refuses unlike comparisons, and (slow) keeps its false-alarm rate
on re-runs of a fixed model while catching a regression of one baseline spread."""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch
from gaussian_features import gaussian_model

from gan_eval.errors import InputError
from gan_eval.estimates import compare_to_baseline, normal_interval
from gan_eval.metrics.extrapolation import fid_analysis
from gan_eval.metrics.frechet import FeatureStats


def _iv(est: float, se: float, n: int = 1000, estimand: str = "mean_at_n"):
    return normal_interval(est, se, n=n, estimand=estimand, method="split_extrapolation")  # type: ignore[arg-type]


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


_D, _N_GEN, _N_REF = 128, 1000, 2000


def _gate_model() -> dict[str, torch.Tensor]:
    model, g = gaussian_model(_D, _N_REF)
    delta, ref = model["delta"], model["ref"]
    v = torch.randn(_D, generator=g, dtype=torch.float64)
    # a direction ⟂ δ − mean(ref): a shift s·v then raises E[FID_n] by exactly s² (FID's mean
    # term is against the reference set's own mean, not the population's 0)
    gap = delta - ref.mean(0)
    v -= (v @ gap) / (gap @ gap) * gap
    return {"scale": model["scale"], "delta": delta, "ref": ref, "direction": v / v.norm()}


def _gate_run(args: tuple[int, float, dict[str, torch.Tensor], FeatureStats]):
    """FID interval of one run of the model shifted by ``shift`` along the direction, with the
    default arguments the product's gate uses."""
    seed, shift, model, ref = args
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    gg = torch.Generator().manual_seed(seed)
    gen = torch.randn(_N_GEN, _D, generator=gg, dtype=torch.float64) * model["scale"]
    return fid_analysis(gen + model["delta"] + shift * model["direction"], ref, seed=seed).fid


@pytest.mark.slow
def test_fid_gate_false_alarms_and_power() -> None:
    # D = 128, reference 2,000 fixed, n = 1,000 per run. 200 re-runs of a fixed model (baseline
    # and current run each with its own sampling seed), then 200 of a model whose E[FID_n] is
    # one baseline spread (the mean width of the baseline's 95 % interval) worse: a mean shift
    # v ⟂ δ − mean(ref) with ‖v‖² = spread raises E[FID_n] by exactly ‖v‖².
    model = _gate_model()
    ref = FeatureStats.from_features(model.pop("ref"))
    reruns = 200
    context = multiprocessing.get_context("spawn")  # a forked torch OpenMP pool can hang
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1), context) as pool:
        runs = list(pool.map(_gate_run, [(s, 0.0, model, ref) for s in range(2 * reruns)],
                             chunksize=10))
        null = [compare_to_baseline(runs[2 * t + 1], runs[2 * t], higher_is_better=False)
                for t in range(reruns)]
        spread = float(np.mean([r.high - r.low for r in runs[0::2]]))
        shift = math.sqrt(spread)
        jobs = [(10_000 + 2 * t + 1, shift, model, ref) for t in range(reruns)]
        jobs += [(10_000 + 2 * t, 0.0, model, ref) for t in range(reruns)]
        more = list(pool.map(_gate_run, jobs, chunksize=10))
    worse = [compare_to_baseline(more[t], more[reruns + t], higher_is_better=False)
             for t in range(reruns)]
    alarms = sum(t.worse for t in null)
    caught = sum(t.worse for t in worse)
    print(f"\nFID gate at alpha 0.05: {alarms}/{reruns} false alarms on re-runs "
          f"({alarms / reruns:.0%}, stated 5%); {caught}/{reruns} regressions of one spread "
          f"({spread:.3g}; measured mean effect "
          f"{float(np.mean([t.effect for t in worse])):.3g}) caught; "
          f"baseline FID {runs[0].estimate:.4g}")
    assert alarms <= 18  # P(Binomial(200, 0.05) > 18) ≈ 1 %
    assert caught >= 0.8 * reruns
