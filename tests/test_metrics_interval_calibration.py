"""Slow: coverage and width of every calibrated interval, by simulation (issue 18).

Each trial draws a fresh generated set (n = 1,000, D = 128) against a reference of 2,000 held
fixed, and computes every interval with the functions and default arguments that
:func:`gan_eval.evaluate` calls. Over the trials, per metric:

* coverage — fraction of intervals that contain the estimand they claim: ``E[metric]`` at this
  ``n`` (the mean over trials; "mean_at_n"), or, for FID∞ on Gaussian features, the closed-form
  Fréchet distance of the generated *distribution* N(δ, diag s²) to the reference statistics as
  given (:func:`~gan_eval.metrics.frechet.frechet_distance` of the two); for "population"
  estimands whose expectation does not depend on ``n`` (KID, precision, density, rates) the
  mean over trials is that value;
* width ratio — mean interval width / (2 · 1.96 · sd of the metric over trials), the width an
  interval would have if it knew the true sampling spread.

Two feature models: Gaussian (model ≠ reference in mean and spectrum; reference 2,000 drawn
once), and a pool built from the real dlib-face embeddings of the built-in faces (100 × 128):
a smoothed bootstrap (a pool row chosen uniformly plus N(0, 0.025²) noise per dimension, a
noise norm ≈ 0.28, about half the pool's median nearest-neighbour distance of 0.50), the
reference from all 100 rows, the "model" from 80 of them with 1.3× the noise (it misses
people and blurs). The copy-rate threshold is the 10 % quantile of a pilot draw's distances.

Rows must be in [92 %, 98 %] coverage and ≤ 1.2× width; FID∞'s interval must hold the
closed-form value in ≥ 90 % of the Gaussian trials and FID's (at n = 1,000, biased) in none.
Run: ``pytest -m slow tests/test_metrics_interval_calibration.py -s`` (prints the table);
``GAN_EVAL_CALIBRATION_TRIALS`` sets the trials per feature model (default 400).
"""

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

from gan_eval.metrics.extrapolation import fid_analysis
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.intervals import cmmd_interval, kid_interval, prdc_intervals, rate_interval
from gan_eval.metrics.neighbors import cross_search_squared

TRIALS = int(os.environ.get("GAN_EVAL_CALIBRATION_TRIALS", "400"))
N_GEN, N_REF, D = 1000, 2000, 128
FACE_NOISE = 0.025


def _gaussian_model() -> dict[str, torch.Tensor]:
    return gaussian_model(D, N_REF)[0]


def _faces() -> dict[str, torch.Tensor]:
    import gan_eval

    pool = gan_eval.embed_faces(gan_eval.open_source("builtin:lfw-subset").load()).double()
    g = torch.Generator().manual_seed(1)
    ref = pool[torch.randint(0, pool.shape[0], (N_REF,), generator=g)]
    ref = ref + FACE_NOISE * torch.randn(N_REF, D, generator=g, dtype=torch.float64)
    return {"pool": pool, "ref": ref}


def _draw(setting: str, model: dict[str, torch.Tensor], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    if setting == "gaussian":
        z = torch.randn(N_GEN, D, generator=g, dtype=torch.float64)
        return z * model["scale"] + model["delta"]
    rows = torch.randint(0, 80, (N_GEN,), generator=g)
    noise = torch.randn(N_GEN, D, generator=g, dtype=torch.float64)
    return model["pool"][rows] + 1.3 * FACE_NOISE * noise


def _trial(args: tuple[str, int]) -> dict[str, tuple[float, float, float]]:
    setting, seed = args
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model = _MODELS[setting]
    gen = _draw(setting, model, seed)
    ref = model["ref"]
    out = {}
    fa = fid_analysis(gen, _STATS[setting], seed=seed)
    out["fid"] = fa.fid
    if setting == "gaussian":  # the population value is known in closed form
        out["fid_infinity"] = fa.fid_infinity
    out["kid"] = kid_interval(gen, ref)
    out["cmmd"] = cmmd_interval(gen, ref)
    out.update(prdc_intervals(gen.float(), ref.float(), seed=seed))
    d2, _ = cross_search_squared(gen, ref, 1, None, None, 2**27)
    threshold = _THRESHOLD[setting]
    out["copy_rate"] = rate_interval(int((d2[:, 0] <= threshold**2).sum()), N_GEN)
    return {k: (v.estimate, v.low, v.high) for k, v in out.items()}


_MODELS: dict[str, dict[str, torch.Tensor]] = {}
_STATS: dict[str, FeatureStats] = {}
_THRESHOLD: dict[str, float] = {}  # copy threshold: 10 % quantile of a pilot's NN distances


def _init(models: dict[str, dict[str, torch.Tensor]]) -> None:
    _MODELS.update(models)
    for name, m in models.items():
        _STATS[name] = FeatureStats.from_features(m["ref"])
        d2, _ = cross_search_squared(_draw(name, m, -1), m["ref"], 1, None, None, 2**27)
        _THRESHOLD[name] = float(d2[:, 0].sqrt().quantile(0.1))


def _population_fid(model: dict[str, torch.Tensor], reference: FeatureStats) -> float:
    """Fréchet distance of the generated distribution N(δ, diag s²) to the reference stats."""
    population = FeatureStats(mean=model["delta"], cov=torch.diag(model["scale"].square()),
                              n=10**9)
    return frechet_distance(population, reference, warn=False)


def _table(setting: str, rows: list[dict[str, tuple[float, float, float]]]) -> list[tuple]:
    table = []
    for name in rows[0]:
        a = np.array([r[name] for r in rows])
        est, low, high = a[:, 0], a[:, 1], a[:, 2]
        target = (_population_fid(_MODELS[setting], _STATS[setting]) if name == "fid_infinity"
                  else est.mean())
        sd = est.std(ddof=1)
        coverage = float(np.mean((low <= target) & (target <= high)))
        ratio = float(np.mean(high - low) / (2 * 1.959964 * sd)) if sd > 0 else math.inf
        table.append((setting, name, coverage, ratio, float(est.mean()), float(sd)))
    return table


@pytest.mark.slow
def test_intervals_are_calibrated() -> None:
    models = {"gaussian": _gaussian_model(), "faces": _faces()}
    _init(models)
    jobs = [(s, t) for s in models for t in range(TRIALS)]
    workers = min(2, os.cpu_count() or 1)
    # spawn, not fork: a forked child of a process that has run torch's OpenMP pool can hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_init, initargs=(models,)) as pool:
        results = list(pool.map(_trial, jobs, chunksize=8))
    table = []
    for setting in models:
        rows = [r for (s, _), r in zip(jobs, results, strict=True) if s == setting]
        table += _table(setting, rows)
    print(f"\n{'features':9s} {'metric':13s} {'coverage':>8s} {'width':>6s} {'mean':>10s} "
          f"{'sd':>9s}   ({TRIALS} trials)")
    for setting, name, cov, ratio, mean, sd in table:
        print(f"{setting:9s} {name:13s} {cov:8.3f} {ratio:6.2f} {mean:10.4g} {sd:9.3g}")
    # the FID∞ must-show: FID∞'s interval holds the closed-form value, FID's at this n never
    gauss = [r for (s, _), r in zip(jobs, results, strict=True) if s == "gaussian"]
    target = _population_fid(models["gaussian"], _STATS["gaussian"])
    inf_hits = sum(r["fid_infinity"][1] <= target <= r["fid_infinity"][2] for r in gauss)
    fid_hits = sum(r["fid"][1] <= target <= r["fid"][2] for r in gauss)
    print(f"closed-form FID {target:.4g}: inside FID∞'s interval in {inf_hits}/{len(gauss)} "
          f"trials, inside FID's (n = {N_GEN}) in {fid_hits}/{len(gauss)}")
    bad = [(s, n, c, r) for s, n, c, r, _, _ in table if not (0.92 <= c <= 0.98 and r <= 1.2)]
    assert not bad, f"uncalibrated rows (features, metric, coverage, width ratio): {bad}"
    assert inf_hits >= 0.9 * len(gauss)
    assert fid_hits == 0
