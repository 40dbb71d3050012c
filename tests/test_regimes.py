"""Issue 23, fast half: the regime decision, omitted metrics in results and gates, the FID
interval with both sets redrawn, the coverage engine and ``gan-eval calibrate``'s argument
checks. The coverage numbers themselves are the slow tests/test_regimes_calibration.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.estimates import ESTIMANDS, IntervalResult, estimand_label
from gan_eval.metrics.coverage import INTERVALS, coverage_table
from gan_eval.metrics.extrapolation import fid_analysis, fid_infinity
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.regimes import (
    FID_INFINITY_MIN_RATIO,
    IS_MIN_RATIO,
    KERNEL_INTERVAL_MIN_N,
    PRDC_INTERVAL_MIN_N,
    PRDC_INTERVAL_MIN_REFERENCE,
    RECALL_INTERVAL_MIN_N,
    reference_note,
    refusal,
)
from gan_eval.metrics.simulation import MODEL_KINDS, model_pair, population_stats
from gan_eval.metrics.subset_fid import FIDResampler
from gan_eval.report.tables import metrics_table
from gan_eval.results import Metric, Omitted, Results, provenance

runner = CliRunner()


# ---- the decision ----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 100_000), d=st.integers(1, 4096))
def test_fid_infinity_is_refused_exactly_below_its_ratio(n: int, d: int) -> None:
    why = refusal("fid_infinity", n=n, d=d)
    if n >= FID_INFINITY_MIN_RATIO * d:
        assert why is None
    else:
        assert why is not None and why.needed_n == FID_INFINITY_MIN_RATIO * d
        assert f"n = {n}" in why.reason and f"D = {d}" in why.reason
        assert f"{FID_INFINITY_MIN_RATIO * d:,}" in why.reason


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 100_000), c=st.integers(2, 2000))
def test_is_infinity_and_the_is_interval_are_refused_exactly_below_their_ratio(
    n: int, c: int
) -> None:
    for metric in ("is_infinity", "is"):
        why = refusal(metric, n=n, d=c)
        assert (why is None) == (n >= IS_MIN_RATIO * c)
        if why is not None:
            assert why.needed_n == IS_MIN_RATIO * c and f"C = {c}" in why.reason


@pytest.mark.parametrize("metric", ["fid", "copy_rate"])
@pytest.mark.parametrize(("n", "d"), [(16, 2048), (1000, 128), (40, 128)])
def test_metrics_without_a_regime_limit_are_reported(metric: str, n: int, d: int) -> None:
    assert refusal(metric, n=n, d=d) is None


@pytest.mark.parametrize("metric", ["kid", "cmmd"])
@pytest.mark.parametrize("n", [1, 16, 64, 999, 1000, 5000])
def test_kernel_intervals_need_their_n(metric: str, n: int) -> None:
    why = refusal(metric, n=n, d=128, n_reference=100)
    assert (why is None) == (n >= KERNEL_INTERVAL_MIN_N)
    if why:
        assert why.needed_n == KERNEL_INTERVAL_MIN_N and "without an interval" in why.reason


@pytest.mark.parametrize("metric", ["precision", "recall", "density", "coverage"])
@pytest.mark.parametrize("n", [1, 16, 40, 255, 256, 999, 1000, 5000])
@pytest.mark.parametrize("n_reference", [None, 100, 1999, 2000, 50_000])
def test_k_nn_intervals_need_their_n_and_reference(metric: str, n: int,
                                                   n_reference: int | None) -> None:
    needed = RECALL_INTERVAL_MIN_N if metric == "recall" else PRDC_INTERVAL_MIN_N
    why = refusal(metric, n=n, d=128, n_reference=n_reference)
    enough_reference = n_reference is None or n_reference >= PRDC_INTERVAL_MIN_REFERENCE
    assert (why is None) == (n >= needed and enough_reference)
    if why:
        assert why.needed_n == (needed if n < needed else None)
        assert "without an interval" in why.reason
        assert ("needs a reference" in why.reason) == (not enough_reference)


def test_the_named_cases_of_issue_23_are_refused() -> None:
    """Inception-like ReLU features (D = 2,048) at n = 1,000, and 20 faces in dlib-face."""
    for n, d in ((1000, 2048), (20, 128)):
        why = refusal("fid_infinity", n=n, d=d)
        assert why is not None and why.needed_n == 6 * d


@pytest.mark.parametrize(("n_ref", "d", "warned"), [(80, 128, True), (127, 128, True),
                                                    (128, 128, False), (5000, 2048, False)])
def test_a_reference_smaller_than_d_is_warned_about(n_ref: int, d: int, warned: bool) -> None:
    note = reference_note(n_ref, d)
    assert (note is not None) == warned
    if note:
        assert f"{n_ref} samples in {d} dimensions" in note and "interval_both_sets" in note


# ---- FID∞ withheld, notes ---------------------------------------------------------------------

def _sets(d: int, n: int, n_ref: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generated, reference = model_pair("relu", d, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    return generated.draw(n, g), reference.draw(n_ref, g)


@pytest.mark.parametrize(("d", "n"), [(32, 64), (32, 128), (16, 64)])
def test_fid_analysis_withholds_fid_infinity_below_its_regime(d: int, n: int) -> None:
    gen, ref = _sets(d, n, 300)
    fa = fid_analysis(gen, FeatureStats.from_features(ref), n_splits=8)
    assert fa.fid_infinity is None and fa.refusal is not None
    assert fa.refusal.needed_n == FID_INFINITY_MIN_RATIO * d
    assert fa.note is not None and "FID∞ is not reported" in fa.note
    assert "compare FID∞" not in fa.note and "FID∞ is " not in fa.note.replace("FID∞ is not", "")
    assert not fa.bias_dominated
    with pytest.raises(InputError, match="needs n ≥"):
        fid_infinity(gen, FeatureStats.from_features(ref), n_splits=8)
    forced = fid_analysis(gen, FeatureStats.from_features(ref), n_splits=8, outside_regime=True)
    assert forced.fid_infinity is not None and forced.refusal == fa.refusal
    assert forced.fid == fa.fid


def test_fid_analysis_reports_fid_infinity_inside_its_regime() -> None:
    gen, ref = _sets(8, 64, 300)
    fa = fid_analysis(gen, FeatureStats.from_features(ref), n_splits=8)
    assert fa.refusal is None and fa.fid_infinity is not None
    assert fa.fid_infinity.estimand == "population"
    if fa.note:
        assert "compare FID∞" in fa.note  # recommends only a number it reports


# ---- both sets redrawn ------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "n_ref"), [(64, 40), (40, 200), (100, 100)])
def test_fid_interval_with_both_sets_redrawn(n: int, n_ref: int) -> None:
    gen, ref = _sets(24, n, n_ref)
    fa = fid_analysis(gen, FeatureStats.from_features(ref), reference_features=ref, n_splits=10)
    both = fa.fid_both_sets
    assert both is not None and both.estimand == "mean_at_sizes"
    assert both.estimate == fa.fid.estimate and both.n == n
    assert both.record["n_reference"] == n_ref
    assert both.se >= fa.fid.se and both.low <= both.estimate <= both.high
    assert math.isclose(both.se**2, both.record["var_generated"] + both.record["var_reference"],
                        rel_tol=1e-9)
    back = IntervalResult.from_json(both.to_json(), estimate=both.estimate, where="test")
    assert back == both
    assert estimand_label("mean_at_sizes", n, n_ref) == f"at n={n}, n_ref={n_ref}, both redrawn"
    assert "mean_at_sizes" in ESTIMANDS


def test_no_both_sets_interval_below_16_reference_rows() -> None:
    gen, ref = _sets(8, 64, 12)
    fa = fid_analysis(gen, FeatureStats.from_features(ref), reference_features=ref, n_splits=8)
    assert fa.fid_both_sets is None


@pytest.mark.parametrize(("n", "n_ref", "d"), [(50, 20, 64), (80, 300, 16), (30, 10, 40)])
def test_fid_resampler_with_a_stored_reference_factor_is_exact(n: int, n_ref: int,
                                                               d: int) -> None:
    """A small reference keeps its (n_ref, D) factor, which the resampler uses as G."""
    gen, ref = _sets(d, n, n_ref, seed=3)
    stats = FeatureStats.from_features(ref)
    resampler = FIDResampler(gen, stats)
    idx = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(s))[: n // 2]
                       for s in range(3)])
    expected = [frechet_distance(FeatureStats.from_features(gen[i]), stats, warn=False)
                for i in idx]
    assert np.allclose(resampler.of_subsets(idx).numpy(), expected, rtol=1e-7, atol=1e-9)
    assert math.isclose(resampler.point_estimate(),
                        frechet_distance(FeatureStats.from_features(gen), stats, warn=False),
                        rel_tol=1e-7, abs_tol=1e-9)


def test_tables_show_the_both_sets_interval() -> None:
    gen, ref = _sets(16, 64, 40)
    fa = fid_analysis(gen, FeatureStats.from_features(ref), reference_features=ref, n_splits=8)
    assert fa.fid_both_sets is not None
    metric = Metric.of("fid", "dlib-face", fa.fid,
                       details={"interval_both_sets": fa.fid_both_sets.to_json()},
                       n_generated=64, n_reference=40)
    both = metric.interval_both_sets()
    assert both is not None and both[0] <= metric.value <= both[1]
    table = metrics_table([metric])
    assert "CI both redrawn" in table and f"{both[1]:.4g}" in table


# ---- omitted metrics: results file and gates --------------------------------------------------

def _omitted() -> Omitted:
    why = refusal("fid_infinity", n=20, d=128)
    assert why is not None
    return Omitted(name="fid_infinity", extractor="dlib-face", reason=why.reason,
                   n_generated=20, n_reference=100, needed_n=why.needed_n)


def test_omitted_metrics_round_trip_and_old_files_still_load(tmp_path: Path) -> None:
    results = Results(provenance=provenance(command="test"), omitted=[_omitted()])
    results.save(tmp_path / "r.json")
    back = Results.load(tmp_path / "r.json")
    assert back.omitted == [_omitted()] and back.omission("fid_infinity") == _omitted()
    assert back.omission("fid") is None
    raw = json.loads((tmp_path / "r.json").read_text())
    del raw["omitted"]  # a file written before omitted existed
    (tmp_path / "old.json").write_text(json.dumps(raw))
    assert Results.load(tmp_path / "old.json").omitted == []


@pytest.mark.parametrize("bad", [
    {"omitted": {}},
    {"omitted": [1]},
    {"omitted": [{"name": "fid_infinity"}]},
    {"omitted": [{"name": "nope", "extractor": "x", "reason": "r", "n_generated": 1,
                  "n_reference": 1}]},
    {"omitted": [{"name": "fid_infinity", "extractor": "x", "reason": 3, "n_generated": 1,
                  "n_reference": 1}]},
    {"omitted": [{"name": "fid_infinity", "extractor": "x", "reason": "r", "n_generated": 1.5,
                  "n_reference": 1}]},
    {"omitted": [{"name": "fid_infinity", "extractor": "x", "reason": "r", "n_generated": 1,
                  "n_reference": 1, "extra": 0}]},
])
def test_malformed_omitted_entries_are_refused(tmp_path: Path, bad: dict) -> None:
    raw = {**Results(provenance={}).to_json(), **bad}
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match="omitted"):
        Results.load(tmp_path / "r.json")


@pytest.mark.parametrize("config", [
    '[[gate]]\nmetric = "fid_infinity"\nmax = 1.0\n',
    '[[gate]]\nmetric = "fid_infinity"\nextractor = "dlib-face"\nmin = -1.0\n',
])
@pytest.mark.parametrize("with_baseline", [False, True])
def test_a_gate_on_an_omitted_metric_cannot_judge(tmp_path: Path, config: str,
                                                  with_baseline: bool) -> None:
    results = Results(provenance=provenance(command="test"), omitted=[_omitted()])
    results.save(tmp_path / "now.json")
    (tmp_path / "gates.toml").write_text(config)
    args = ["gate", str(tmp_path / "now.json"), "--config", str(tmp_path / "gates.toml")]
    if with_baseline:
        results.save(tmp_path / "base.json")
        args += ["--baseline", str(tmp_path / "base.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "cannot judge" in text and "fid_infinity[dlib-face] was not reported" in text
    assert "n ≥ 768" in text and "Traceback" not in result.output


# ---- the coverage engine and calibrate --------------------------------------------------------

@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_pairs_have_their_stated_moments(kind: str) -> None:
    generated, _ = model_pair(kind, 12)
    x = generated.draw(200_000, torch.Generator().manual_seed(5))
    scale = float(generated.cov().diagonal().mean())
    assert float((x.mean(0) - generated.mean()).abs().max()) < 0.02 * math.sqrt(scale) + 1e-3
    assert float((torch.cov(x.T) - generated.cov()).abs().max()) < 0.03 * scale


def test_coverage_table_has_every_interval_and_the_regime_verdict() -> None:
    generated, reference = model_pair("mixture", 8)
    rows = coverage_table(generated, reference, n=32, n_reference=40, trials=4, n_splits=4)
    assert [r.metric for r in rows] == list(INTERVALS)
    by = {r.metric: r for r in rows}
    assert not by["fid_infinity"].reported and "needs n ≥ 48" in (by["fid_infinity"].reason or "")
    small = ("kid", "cmmd", "precision", "recall", "density", "coverage")  # need more than 32
    assert not any(by[m].reported for m in small)
    assert all(r.reported for r in rows if r.metric not in ("fid_infinity", *small))
    assert all(r.trials == 4 and 0 <= r.covered <= 4 for r in rows)
    target = frechet_distance(population_stats(generated), FeatureStats.from_features(
        reference.draw(40, torch.Generator().manual_seed(0))), warn=False)
    assert math.isclose(by["fid_infinity"].target, target)
    assert json.loads(json.dumps([r.to_json() for r in rows]))


@pytest.mark.parametrize(("args", "option"), [
    (["--count", "8"], "--count"),
    (["--count", "-3"], "--count"),
    (["--trials", "5"], "--trials"),
    (["-e", "no-such-extractor"], "--extractor"),
    (["--reference-count", "1"], "--reference-count"),
    (["--workers", "0"], "--workers"),
])
def test_calibrate_refuses_bad_options_before_any_work(args: list[str], option: str) -> None:
    result = runner.invoke(app, ["calibrate", "builtin:lfw-subset", *args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output


def test_calibrate_refuses_an_unwritable_json_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["calibrate", "builtin:lfw-subset", "--json",
                                 str(blocker / "out.json")])
    assert result.exit_code == 2 and "--json" in result.output


def test_calibrate_options_are_checked_before_torch_is_imported() -> None:
    """``gan-eval calibrate`` refuses bad options before any heavy import (exit 2, fast)."""
    import subprocess
    import sys

    code = ("import sys\nfrom gan_eval.calibration import CalibrateConfig\n"
            "from gan_eval.errors import InputError\n"
            "try:\n    CalibrateConfig(n=3)\nexcept InputError as e:\n    print(e)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert "--count" in out[0] and out[1] == "False"
