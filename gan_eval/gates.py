"""Gates: thresholds and baseline regressions over a results JSON (``gan-eval gate``).

Config (TOML)::

    [[gate]]
    metric = "fid"            # a name from results.json "metrics"
    extractor = "dlib-face"   # optional when the name is unique
    max = 25.0                # and/or min = ...: thresholds in the metric's units
    max_span = 0.2            # and/or min_span = ...: relative to the metric's floor and ceiling

    [baseline]                # used with --baseline BASE.json
    alpha = 0.05              # false-alarm rate of each baseline check, in (0, 0.5]; default 0.05
    tolerance = 0.05          # practical margin: relative worsening allowed; default 0

**Baseline checks are a test, not a window.** With ``--baseline``, every gated metric is compared
with the baseline's by a one-sided two-sample z-test
(:func:`gan_eval.estimates.compare_to_baseline`) on both runs' standard errors (the
``se`` of ``details.interval`` in each results JSON: the metric's sd across fresh generated
sets). The null hypothesis is "now is worse than the baseline by at most the margin"
(``tolerance × |baseline value|``, 0 by default); the check fails ("regressed") when its p-value
is below ``alpha``. So a run of an unchanged model fails a check with probability at most
``alpha``, and a failing run is worse than the baseline by more than the margin (by at least
``margin + z_α·se`` as measured). A change inside the noise passes, and so does an improvement.
The test uses each run's interval conditional on its reference set (``details.interval``), never
the one with the reference redrawn too (``details.interval_both_sets``): runs gated against the
same reference share its sampling noise, which cancels in the difference. Each check reports
the effect (``now − baseline``, positive = worse, in metric units and in baseline interval
widths, "spreads"), z, the p-value, ``alpha`` and what was compared.

**Like with like.** The compared quantity is the interval's estimand: ``"mean_at_n"`` (FID,
recall, coverage, CMMD, IS: their expected value depends on the number of generated samples
``n``; FID is biased high at small ``n``) is compared only between runs at the same ``n``;
``"population"`` estimands (fid_infinity, kid, precision, density, rates) at any ``n``.
:class:`~gan_eval.errors.InputError` (exit 2), naming both files, for: a ``"mean_at_n"`` metric
at different ``n`` (re-run with the baseline's ``--count``, or gate ``fid_infinity``), different
estimands, or a gated metric without ``details.interval`` in either file (results written by an
older gan-eval, or a metric without a calibrated interval, e.g. below the samples its interval
needs): a baseline check never passes silently for want of a standard error. Nor for a wrong
one: an interval record whose bounds, ``se`` and estimate contradict its method, whose ``n`` is
not the metric's ``n_generated`` or whose ``ci95`` is not its bounds clipped to the catalogue's
range is refused the same way (:meth:`gan_eval.results.Metric.checked_interval`; a results
file is checked when it loads). A value that is
not a finite number fails its checks (fail closed). When both standard errors are 0 the
difference is exact: worse when it exceeds the margin.

**Spans: gates relative to real data and to nothing.** ``max_span = 0.2`` passes when the run is
at most 20% of the way from the metric's *floor* (real vs real: held-out reference images
against the rest) to its *ceiling* (the worse of two degenerate generators, uniform noise and the
mean face), all three measured by ``evaluate`` on the same extractor at the same sizes
(:mod:`gan_eval.metrics.controls`). The span, ``(value − floor) / (ceiling − floor)`` on the
generated set measured at those sizes (:func:`gan_eval.results.span_of`), is oriented by the data:
0 = as good as real data, 1 = as bad as noise, for lower- and higher-is-better metrics alike, so
one key serves both. ``min_span`` bounds it from below: a span under 0 is *closer* to the
reference than held-out real images are (copies of the reference do that), so e.g.
``min_span = -0.5`` flags a generator too close to its training data. A span gate whose metric
has no floor and ceiling in the results (an older results file, a reference too small to split,
or a ceiling that does not score clearly worse than real data) cannot be judged.

**Cannot judge is not fail.** A check that cannot be made is of kind ``"cannot_judge"``: a gate
on a metric the run left out because its estimate would not mean what it says there
(``omitted`` in the results JSON, e.g. FID∞ far below the ``n`` its extrapolation needs,
:mod:`gan_eval.metrics.regimes`), a span gate without a span (above), or any gate on a metric
that records ``details.cannot_judge`` — a thresholded identity metric (``copy_rate``,
``leakage_rate``, ``identity_diversity``) whose match threshold accepts more than 5% of the
reference's impostor pairs, where nearly every face "matches" some reference face ("cannot judge
at this threshold here; gate the calibrated metric": its ``*_calibrated`` counterpart).
``gan-eval gate`` prints every check and exits 2 when any cannot be judged, naming the reason —
never 1, which means only that a gate failed; ``gan-eval report`` shows the verdict "cannot
judge". A ``--baseline`` file that left a gated metric out is refused before any work (exit 2).

Metric names and extractors are checked against the catalogue (:mod:`gan_eval.catalogue`) when the
config is loaded, so a misspelt name fails before any work. The terminal table, HTML section and
JUnit XML of the checks are drawn by :mod:`gan_eval.report.tables`, :mod:`gan_eval.report.html`
and :mod:`gan_eval.report.junit`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gan_eval.catalogue import METRICS, metric_spec
from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, compare_to_baseline, estimand_label
from gan_eval.results import Metric, Results, Span

_GATE_KEYS = {"metric", "extractor", "min", "max", "min_span", "max_span"}
_BASELINE_KEYS = {"alpha", "tolerance"}
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Gate:
    """One ``[[gate]]`` entry."""

    metric: str
    extractor: str | None = None
    min: float | None = None
    max: float | None = None
    min_span: float | None = None
    max_span: float | None = None

    @property
    def label(self) -> str:
        return self.metric if self.extractor is None else f"{self.metric}[{self.extractor}]"


@dataclass(frozen=True)
class GateConfig:
    """A gates file: the ``[[gate]]`` entries and the ``[baseline]`` test's settings.

    Attributes:
        tolerance: practical margin of a baseline check, as a fraction of |baseline value|.
        alpha: false-alarm rate of each baseline check (one-sided), in (0, 0.5].
    """

    gates: tuple[Gate, ...]
    tolerance: float = 0.0
    alpha: float = DEFAULT_ALPHA


@dataclass(frozen=True)
class Check:
    """The outcome of one check: a threshold, a baseline comparison, or an unusable value.

    The baseline fields are None for other kinds (and where a number is not finite, e.g. the
    effect in spreads of a baseline with a zero-width interval), so ``vars(check)`` is valid
    JSON; so are the span fields except on span checks (and thresholds on metrics that have a
    floor and ceiling, which show them too).

    Attributes:
        kind: ``"threshold"``, ``"span"``, ``"baseline"``, ``"value"`` (an unusable value: fails
            closed) or ``"cannot_judge"`` (the check cannot be made: ``passed`` is False and
            ``gan-eval gate`` exits 2, not 1).
        value: the run's value (metric units).
        baseline: the baseline's value.
        effect: ``value − baseline`` signed so that positive is worse (metric units).
        effect_in_spreads: ``effect`` / the baseline's interval width.
        margin: ``tolerance × |baseline|``: the worsening the test allows (metric units).
        z: the test statistic ``(effect − margin) / √(se_now² + se_base²)``.
        p_value: one-sided p-value of "worse than baseline by more than the margin".
        alpha: the false-alarm rate the p-value is compared with.
        estimand: ``"mean_at_n"`` or ``"population"``: what was compared.
        n, n_baseline: generated samples of the run and of the baseline.
        span, floor, ceiling: the metric's span and its reference points (metric units).
        at_control_sizes: the run's value at the controls' sizes (what the span places).
        control_sizes: ``"h vs r"`` images, the controls' sizes.
    """

    gate: str
    kind: str
    passed: bool
    value: float | None
    message: str
    baseline: float | None = None
    effect: float | None = None
    effect_in_spreads: float | None = None
    margin: float | None = None
    z: float | None = None
    p_value: float | None = None
    alpha: float | None = None
    estimand: str | None = None
    n: int | None = None
    n_baseline: int | None = None
    span: float | None = None
    floor: float | None = None
    ceiling: float | None = None
    at_control_sizes: float | None = None
    control_sizes: str | None = None

    @property
    def judged(self) -> bool:
        """False for a check that could not be made (exit 2, not a failure)."""
        return self.kind != "cannot_judge"


def verdict(checks: list[Check]) -> str:
    """``"pass"``, ``"fail"`` (a judged check failed) or ``"cannot judge"`` (a check could not
    be made, whatever the others say: the run is not judged)."""
    if any(not c.judged for c in checks):
        return "cannot judge"
    return "pass" if all(c.passed for c in checks) else "fail"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _check_names(metric: str, extractor: str | None, where: str) -> None:
    """:class:`InputError` unless ``metric`` is in the catalogue and ``extractor`` is one it is
    computed on (a misspelt gate would otherwise run a whole evaluation and fail after it)."""
    if metric not in METRICS:
        raise InputError(f"{where}: unknown metric {metric!r}; known metrics: "
                         f"{', '.join(METRICS)}")
    allowed = metric_spec(metric).allowed_extractors()
    if extractor is not None and extractor not in allowed:
        raise InputError(f"{where}: metric {metric!r} is not computed on extractor "
                         f"{extractor!r}; it is computed on {', '.join(allowed)}")


def load_config(path: str | Path) -> GateConfig:
    """Parse and validate a gates TOML file; errors name the file (and the line when TOML says)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"--config: {path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config: {path}: malformed TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: {path}: cannot read ({exc})") from exc
    unknown = set(raw) - {"gate", "baseline"}
    if unknown:
        raise InputError(
            f"--config: {path}: unknown table(s) {sorted(unknown)}; expected [[gate]] "
            "and [baseline]"
        )
    entries = raw.get("gate", [])
    if not isinstance(entries, list) or not entries:
        raise InputError(f"--config: {path}: no [[gate]] entries")
    gates = []
    for i, entry in enumerate(entries, 1):
        where = f"--config: {path}: gate #{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), str):
            raise InputError(f'{where}: needs metric = "NAME"')
        extra = set(entry) - _GATE_KEYS
        if extra:
            raise InputError(
                f"{where}: unknown key(s) {sorted(extra)}; expected {sorted(_GATE_KEYS)}"
            )
        extractor = entry.get("extractor")
        if extractor is not None and not isinstance(extractor, str):
            raise InputError(f"{where}: extractor must be a string")
        _check_names(entry["metric"], extractor, where)
        bounds = {key: _number(entry[key], f"{where} {key}") if key in entry else None
                  for key in ("min", "max", "min_span", "max_span")}
        for low_key, high_key in (("min", "max"), ("min_span", "max_span")):
            low, high = bounds[low_key], bounds[high_key]
            if low is not None and high is not None and low > high:
                raise InputError(f"{where}: {low_key} {low} is above {high_key} {high}")
        gates.append(Gate(metric=entry["metric"], extractor=extractor, **bounds))
    baseline = raw.get("baseline", {})
    if not isinstance(baseline, dict) or set(baseline) - _BASELINE_KEYS:
        raise InputError(f"--config: {path}: [baseline] takes only alpha = NUMBER (false-alarm "
                         "rate, default 0.05) and tolerance = NUMBER (relative margin, default 0)")
    tolerance = _number(baseline.get("tolerance", 0.0), f"--config: {path}: baseline tolerance")
    if tolerance < 0:
        raise InputError(f"--config: {path}: baseline tolerance must be >= 0, got {tolerance}")
    alpha = _number(baseline.get("alpha", DEFAULT_ALPHA), f"--config: {path}: baseline alpha")
    if not 0.0 < alpha <= 0.5:
        raise InputError(f"--config: {path}: baseline alpha (the false-alarm rate of each "
                         f"baseline check) must be in (0, 0.5], got {alpha}")
    return GateConfig(gates=tuple(gates), tolerance=tolerance, alpha=alpha)


def _not_reported(results: Results, gate: Gate) -> str | None:
    """Why the gated metric was left out of ``results`` (outside its regime), or None."""
    omitted = results.omission(gate.metric, gate.extractor)
    if omitted is None:
        return None
    return f"cannot judge: {omitted.label} was not reported: {omitted.reason}"


def _find(results: Results, gate: Gate, what: str) -> Metric:
    omitted = _not_reported(results, gate)
    if omitted is not None:  # cannot judge: never pass or fail on a number not reported
        raise InputError(f"{what}: gate {gate.label}: {omitted}")
    try:
        return results.metric(gate.metric, gate.extractor)
    except KeyError as exc:
        available = sorted({f"{m.name}[{m.extractor}]" for m in results.metrics})
        raise InputError(
            f"{what}: gate {gate.label}: {exc.args[0]}; the results have "
            f"{', '.join(available) or 'no metrics'}"
        ) from None


def _unusable(metric: Metric, which: str) -> str | None:
    """Why ``metric`` cannot be judged (a non-finite value or interval), or None."""
    values = [metric.value, *(metric.ci95 or ())]
    if all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
           for v in values):
        return None
    return (f"{which} value {metric.value!r} (interval {metric.ci95!r}) is not a finite number: "
            "the gate fails closed")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def interval_of(metric: Metric, label: str, source: str) -> IntervalResult:
    """The calibrated interval a results file recorded for ``metric`` (``details.interval``,
    with its standard error); :class:`InputError` naming ``source`` and ``label`` when it is
    missing, malformed, or contradicts itself or the metric (:meth:`Metric.checked_interval`)."""
    interval = metric.checked_interval(f"{source}: {label} details.interval")
    if interval is None:
        raise InputError(
            f"{source}: {label} has no calibrated interval (details.interval with a standard "
            "error), which a baseline check needs from both runs: the file was written by an "
            "older gan-eval, or this metric had no interval (too few generated samples, or a "
            "metric without one); re-evaluate with this version, or drop the [baseline] check "
            "of this gate"
        )
    return interval


def _like_with_like(label: str, now: IntervalResult, base: IntervalResult, source: str,
                    baseline_source: str) -> None:
    """:class:`InputError` unless ``now`` and ``base`` estimate the same quantity."""
    if now.estimand != base.estimand:
        raise InputError(
            f"{label}: {source} has an interval of the {now.estimand!r} estimand, the baseline "
            f"{baseline_source} one of {base.estimand!r}: they estimate different quantities; "
            "re-evaluate both with the same gan-eval version"
        )
    if now.estimand == "mean_at_n" and now.n != base.n:
        raise InputError(
            f"{label}: {source} used n={now.n} generated samples, the baseline "
            f"{baseline_source} n={base.n}; this metric's value depends on n (its interval is "
            f"of the expected value at n), so the two are not comparable: re-run with "
            f"--count {base.n}, or gate a population estimate (fid_infinity instead of fid), "
            "which compares at any n"
        )


def check_baseline(config: GateConfig, baseline: Results, *,
                   baseline_source: str = "--baseline") -> None:
    """Fail before any work when ``baseline`` cannot serve the baseline checks: a gated metric
    missing, or without a well-formed ``details.interval``. :class:`InputError` naming the
    file. (Equal ``n`` is checked with the run's results, by :func:`evaluate_gates`: the ``n``
    a metric was computed on is known only then.)"""
    for gate in config.gates:
        base = _find(baseline, gate, baseline_source)
        if _unusable(base, "baseline"):
            continue  # fails closed as a check, not here
        interval_of(base, gate.label, baseline_source)


def _baseline_check(config: GateConfig, gate: Gate, metric: Metric, base: Metric, source: str,
                    baseline_source: str) -> Check:
    """One baseline comparison (see the module docstring)."""
    now_iv = interval_of(metric, gate.label, source)
    base_iv = interval_of(base, gate.label, baseline_source)
    _like_with_like(gate.label, now_iv, base_iv, source, baseline_source)
    hib = metric.higher_is_better
    margin = config.tolerance * abs(base.value)
    effect = (base.value - metric.value) if hib else (metric.value - base.value)
    width = base_iv.high - base_iv.low
    in_spreads = effect / width if width > 0 else math.nan
    z: float | None
    if math.hypot(now_iv.se, base_iv.se) == 0:
        # no sampling noise on either side: the difference is exact
        worse, p_value, z = effect > margin, (0.0 if effect > margin else 1.0), None
    else:
        # H0 "worse by at most the margin": test against the baseline moved by the margin
        sign = -1.0 if hib else 1.0
        tolerated = replace(base_iv, estimate=base_iv.estimate + sign * margin,
                            low=base_iv.low + sign * margin, high=base_iv.high + sign * margin)
        test = compare_to_baseline(now_iv, tolerated, higher_is_better=hib, alpha=config.alpha)
        worse, p_value, z = test.worse, test.p_value, _finite(test.z)
    what = f"{metric.name} ({estimand_label(now_iv.estimand, now_iv.n)})"
    direction = "worse" if effect > 0 else "better" if effect < 0 else "unchanged"
    spreads = f" ({in_spreads:+.3g} baseline spreads)" if math.isfinite(in_spreads) else ""
    by = f" by {_fmt(abs(effect))}{spreads}" if effect != 0 else ""
    beyond = f" beyond the tolerance {_fmt(margin)}" if margin > 0 else ""
    test_text = (f"p = {p_value:.3g} {'<' if worse else '>='} alpha {config.alpha:g}"
                 + (f", z = {z:.3g}" if z is not None else ", both se 0: exact")
                 + " (each run's interval with its reference held fixed)")
    verdict = ("regressed: significantly worse" + beyond if worse
               else "no significant regression" + beyond)
    message = (f"{verdict}: {what}: now {_fmt(metric.value)} vs baseline {_fmt(base.value)}, "
               f"{direction}{by}; {test_text}")
    return Check(gate.label, "baseline", not worse, metric.value, message,
                 baseline=base.value, effect=_finite(effect),
                 effect_in_spreads=_finite(in_spreads), margin=_finite(margin), z=z,
                 p_value=p_value, alpha=config.alpha, estimand=now_iv.estimand, n=now_iv.n,
                 n_baseline=base_iv.n)


def evaluate_gates(
    config: GateConfig,
    results: Results,
    baseline: Results | None = None,
    *,
    source: str = "",
    baseline_source: str = "--baseline",
) -> list[Check]:
    """Every check of ``config`` on ``results`` (and against ``baseline`` when given).

    ``source`` and ``baseline_source`` name the two files in messages.

    Raises:
        InputError: a gated metric missing from either file, or a baseline check that cannot be
            made like with like (see the module docstring).
    """
    source = source or "results"
    checks = []
    for gate in config.gates:
        omitted = _not_reported(results, gate)
        if omitted is not None:  # never pass or fail on a number that was not reported
            checks.append(Check(gate.label, "cannot_judge", False, None, omitted))
            continue
        metric = _find(results, gate, source)
        base = _find(baseline, gate, baseline_source) if baseline is not None else None
        unjudged = _cannot_judge(gate, metric)
        if unjudged is not None:
            checks.append(unjudged)
            continue
        unusable = _unusable(metric, "now") or (base is not None and _unusable(base, "baseline"))
        if unusable:  # fail closed: a number that is not a number passes nothing
            checks.append(Check(gate.label, "value", False, None, unusable))
            continue
        span = metric.span()
        shown = _span_fields(span)
        for bound, limit in (("min", gate.min), ("max", gate.max)):
            if limit is None:
                continue
            ok = metric.value >= limit if bound == "min" else metric.value <= limit
            sign = ">=" if bound == "min" else "<="
            checks.append(
                Check(
                    gate.label,
                    "threshold",
                    ok,
                    metric.value,
                    f"{metric.value:.6g} {sign} {limit:.6g}"
                    if ok
                    else f"{metric.value:.6g} violates {bound} {limit:.6g}",
                    **shown,
                )
            )
        if gate.min_span is not None or gate.max_span is not None:
            checks.append(_span_check(gate, metric))
        if base is not None:
            checks.append(_baseline_check(config, gate, metric, base, source, baseline_source))
    return checks


def _span_fields(span: Span) -> dict[str, Any]:
    """The span fields of a check (None where the metric has no floor and ceiling)."""
    sizes = (f"{span.n_generated} vs {span.n_reference}"
             if span.n_generated is not None else None)
    return {"span": span.value, "floor": span.floor, "ceiling": span.ceiling,
            "at_control_sizes": span.generated, "control_sizes": sizes}


def _cannot_judge(gate: Gate, metric: Metric) -> Check | None:
    """A ``"cannot_judge"`` check when ``metric`` records that its number cannot be read here
    (``details.cannot_judge``), or a span gate finds no span; None otherwise."""
    reason = metric.details.get("cannot_judge")
    if reason is not None:
        record = reason if isinstance(reason, dict) else {"reason": reason}
        instead = record.get("instead")
        where = f" ({instead})" if instead else ""
        message = (f"cannot judge at this threshold here; gate the calibrated metric{where}: "
                   f"{record.get('reason') or 'the threshold does not separate people here'}")
        return Check(gate.label, "cannot_judge", False, metric.value, message)
    if gate.min_span is None and gate.max_span is None:
        return None
    span = metric.span()
    if span.value is not None:
        return None
    return Check(gate.label, "cannot_judge", False, metric.value,
                 f"cannot judge a span gate on {gate.label}: {span.reason}", **_span_fields(span))


def _span_check(gate: Gate, metric: Metric) -> Check:
    """The span gate: ``min_span ≤ span ≤ max_span`` (module docstring)."""
    span = metric.span()
    assert span.value is not None  # a missing span is a cannot-judge check
    value, failed = span.value, []
    if gate.max_span is not None and not value <= gate.max_span:
        failed.append(f"above max_span {gate.max_span:g} (worse than {gate.max_span:.0%} of the "
                      "way from real data to the degenerate generator)")
    if gate.min_span is not None and not value >= gate.min_span:
        failed.append(f"below min_span {gate.min_span:g} (closer to the reference than held-out "
                      "real images are by that much: copies of the reference?)")
    limits = " and ".join(f"{k} {v:g}" for k, v in (("min_span", gate.min_span),
                                                     ("max_span", gate.max_span)) if v is not None)
    where = (f"{metric.name} {_fmt(span.generated or 0.0)} at {span.n_generated} vs "
             f"{span.n_reference} images; floor (real data) {_fmt(span.floor or 0.0)}, ceiling "
             f"({span.ceiling_of}) {_fmt(span.ceiling or 0.0)}")
    message = (f"span {value:.3g} " + ("; ".join(failed) if failed else f"within {limits}")
               + f": {where}")
    return Check(gate.label, "span", not failed, metric.value, message, **_span_fields(span))
