"""Every plain-text table gan-eval prints to the terminal: metrics, recognition, attacks, gates,
and ``inspect``'s summary. Each takes plain results data (no networks are loaded)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gan_eval.gates import Check
from gan_eval.results import Metric, Results
from gan_eval.robustness.attacks import NORM_SYMBOL, Norm, TargetModel

if TYPE_CHECKING:
    from gan_eval.calibration import Calibration
    from gan_eval.data import SourceInfo


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _span_cells(m: Metric) -> tuple[str, str, str, str]:
    """span, floor, ceiling and the generated value at the controls' sizes ("-" where the
    metric has none)."""
    span = m.span()
    if span.floor is None or span.ceiling is None or span.generated is None:
        return "-", "-", "-", "-"
    value = f"{span.value:.2f}" if span.value is not None else "none"
    return value, _fmt(span.floor), _fmt(span.ceiling), _fmt(span.generated)


def control_note(metrics: Sequence[Metric]) -> str | None:
    """One paragraph saying what the floor, ceiling and span columns are, at which sizes; None
    when no metric has them."""
    sizes = sorted({f"{sp.n_generated} vs {sp.n_reference}" for m in metrics
                    if (sp := m.span()).floor is not None})
    if not sizes:
        return None
    return (f"floor = real vs real (held-out reference images against the rest), ceiling = the "
            f"worse of two degenerate generators (uniform noise, the mean face), both at "
            f"{' / '.join(sizes)} images, where value@ctl is the generated set's value; span = "
            f"(value@ctl − floor) / (ceiling − floor): 0 = as good as real data, 1 = as bad as "
            f"noise (\"none\": the ceiling does not score clearly worse than real data)")


def metrics_table(metrics: Sequence[Metric]) -> str:
    """metric, extractor, value, 95% interval (reference held fixed) and what it is of, the
    interval with both sets redrawn where there is one, span, floor, ceiling, the value at the
    controls' sizes, sample counts, direction — one row each, and a note on the controls
    (:func:`control_note`)."""
    rows = [("metric", "extractor", "value", "95% CI", "interval of", "CI both redrawn", "span",
             "floor", "ceiling", "value@ctl", "n_gen", "n_ref", "better")]
    for m in metrics:
        ci = f"[{_fmt(m.ci95[0])}, {_fmt(m.ci95[1])}]" if m.ci95 else "-"
        both = m.interval_both_sets()
        rows.append(
            (
                m.name,
                m.extractor,
                _fmt(m.value),
                ci,
                m.interval_of() or "-",
                f"[{_fmt(both[0])}, {_fmt(both[1])}]" if both else "-",
                *_span_cells(m),
                str(m.n_generated),
                str(m.n_reference),
                "higher" if m.higher_is_better else "lower",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    note = control_note(metrics)
    return table + (f"\n\n{note}" if note else "")


def calibration_table(found: Calibration) -> str:
    """``gan-eval calibrate``'s table: per interval, its estimand, coverage (with the binomial
    95 % interval of the simulation), width ratio, and whether gan-eval reports it here."""
    head = (f"{found.data} on {found.extractor}: {found.pool} rows in D = {found.d}; "
            f"n = {found.n} generated vs {found.n_reference} reference; {found.trials} draws "
            f"per design (smoothing h = {found.noise:.3g})")
    rows = [("interval", "estimand", "coverage", "(95% of sim.)", "width", "calibrated",
             "reported")]
    for r in found.rows:
        lo, hi = r.coverage_ci
        reported = "yes" if r.reported else "no: " + (r.reason or "").split(";")[-1].strip()
        rows.append((r.metric, r.estimand, f"{r.coverage:.3f}", f"[{lo:.3f}, {hi:.3f}]",
                     f"{r.width_ratio:.2f}", "yes" if r.calibrated() else "no", reported))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    return (f"{head}\n{table}\ncalibrated: coverage of the estimand in [0.92, 0.98] at width "
            "<= 1.2x the true spread (mean_at_n: the mean over draws at this n; population: the "
            "value as n -> inf; mean_at_sizes: both sets redrawn)")


def _fixed(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return format(value, spec)


def _ci(ci: Any) -> str:
    return f"[{_fixed(ci[0])}, {_fixed(ci[1])}]" if ci else ""


def recognition_table(results: Results) -> str:
    """A readable summary of a recognition :class:`Results` for the terminal."""
    rec = results.recognition
    th = rec["thresholds"]
    names = ["match"] + (["calibrated"] if th["calibrated"].get("value") is not None else [])
    head = {"match": f"match {th['match']['value']:g}"}
    if "calibrated" in names:
        head["calibrated"] = f"FAR {th['calibrated']['far']:g} ({th['calibrated']['value']:.3f})"
    width = 26
    lines = []
    framing = rec["framing"]
    how = (f"crop, margin {framing['margin']:g}" if framing["mode"] == "crop"
           else "dlib align (HOG + 5 landmarks, chip padding 0.25)")
    counts = rec["counts"]
    lines.append(f"framing        {how}")
    lines.append(f"images         generated {counts['generated_embedded']}/{counts['generated']}, "
                 f"reference {counts['reference_embedded']}/{counts['reference']}")
    lines.append(f"threshold      match {th['match']['value']:g} accepts "
                 f"{_fixed(th['match']['far_on_reference'], '.2%')} of reference impostor pairs")
    cal = th["calibrated"]
    if cal.get("value") is not None:
        lines.append(f"               calibrated {cal['value']:.3f} at FAR {cal['far']:g} "
                     f"({cal['pairs']} pairs)")
    else:
        lines.append(f"               calibrated: skipped ({cal.get('reason')})")
    lines.append("")
    lines.append(f"{'':<{width}}" + "".join(f"{head[k]:>26}" for k in names))

    def row(label: str, values: list[str]) -> None:
        lines.append(f"{label:<{width}}" + "".join(f"{v:>26}" for v in values))

    leak = rec["leakage"]["at"]
    row("leakage rate", [f"{_fixed(leak[k]['rate'])} {_ci(leak[k]['ci95'])}" for k in names])
    row("  expected by chance", [_fixed(leak[k].get("chance_rate")) for k in names])
    self_match = rec["leakage"]["reference_self_match"]
    row("  reference vs itself", [_fixed(self_match[k]) for k in names])
    div = rec["diversity"]
    for key in ("generated", "reference"):
        at = div[key]["at"]
        row(f"identities ({key}, n={div[key]['n']})",
            [f"{at[k]['identities']}" for k in names])
    for key in ("generated", "reference"):
        at = div[key]["at"]
        values = []
        for k in names:
            b = at[k]["birthday"]
            values.append(f"s={b['batch_size']} → {b['support']}" if b["support"] is not None
                          else f"> {b['support_lower_bound']}")
        row(f"birthday support ({key})", values)
    identity = rec.get("identity")
    if identity:
        lines.append("")
        lines += identity_lines(identity)
    lines.append("")
    face = rec["faceness"]
    if face.get("skipped"):
        lines.append(f"faceness       skipped: {face['reason']}")
    else:
        g, r = face["generated"], face["reference"]
        held = (f", held-out {_fixed(face['heldout']['rate'])} (n={face['heldout']['n']})"
                if isinstance(face.get("heldout"), dict) else "")
        lines.append(f"faceness       {face['detector']}: generated {_fixed(g['rate'])} "
                     f"{_ci(g['ci95'])} (n={g['n']}), reference {_fixed(r['rate'])} (n={r['n']})"
                     f"{held}; upsampled ×{','.join(str(f) for f in g['upsample_factors'])}")
        if face.get("heldout_warning"):
            lines.append(f"               warning: {face['heldout_warning']}")
    ver = rec["verification"]
    if ver.get("skipped"):
        lines.append(f"verification   skipped: {ver['reason']}")
    else:
        tar = ver["tar_at_far"]
        acc = ver["accuracy_10fold"]
        lines.append(
            f"verification   {ver['identities']} identities, {ver['pairs']['genuine']} genuine / "
            f"{ver['pairs']['impostor']} impostor pairs: AUC {_fixed(ver['auc'], '.4f')}, "
            f"EER {_fixed(ver['eer'], '.4f')}, "
            + ", ".join(f"TAR@FAR={k} {_fixed(v['tar'])}" for k, v in tar.items())
        )
        if not acc.get("skipped"):
            lines.append(f"               {acc['folds']}-fold accuracy {_fixed(acc['mean'], '.4f')}"
                         f" ± {_fixed(acc['std'], '.4f')}")
        util = rec["utility"]
        if not util.get("skipped"):
            imp = util["generated_as_impostors"]
            label = "utility"
            for k, v in imp["acceptance_at_real_far"].items():
                if not v.get("skipped"):
                    lines.append(f"{label:<15}at real FAR {k}: generated accepted as a real "
                                 f"person {_fixed(v['generated_far'], '.4f')} "
                                 f"(×{_fixed(v['ratio'], '.2f')} the real rate)")
                    label = ""
            dis = util["generated_as_distractors"]
            if not dis.get("skipped"):
                lines.append(
                    f"               rank-1 {_fixed(dis['rank1'])} → "
                    f"{_fixed(dis['rank1_with_distractors'])} with {dis['distractors']} generated "
                    f"distractors (Δ {dis['delta']:+.3f} {_ci(dis['delta_ci95'])})"
                )
            tra = util.get("generated_as_training_data", {})
            if tra.get("skipped"):
                lines.append(f"               as training data: skipped ({tra['reason']})")
            elif tra:
                lines.append(
                    f"               classifier accuracy {_fixed(tra['accuracy_real_only'])} → "
                    f"{_fixed(tra['accuracy_with_generated'])} with {tra['generated_added']} "
                    f"pseudo-labelled generated faces (Δ {tra['delta']:+.3f} "
                    f"{_ci(tra['delta_ci95'])})"
                )
    if th.get("warning"):
        lines.append("")
        lines.append(f"warning        {th['warning']}")
    pairs = rec["leakage"]["top_pairs"]
    if pairs:
        lines.append("")
        lines.append("closest leaked pairs (generated → reference, distance):")
        for p in pairs[:5]:
            lines.append(f"  {p['generated']:>6} → {p['reference']:<6} {p['distance']:.3f}")
    return "\n".join(lines)


def _p(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.2g}" if value < 1e-3 else f"{value:.4f}"


def identity_lines(identity: dict[str, Any]) -> list[str]:
    """The identity-level statistics (Vendi, membership, authenticity) of a recognition
    section's ``identity`` part, one line of numbers and one of meaning each."""
    lines = []
    pad = " " * 15
    vendi = identity.get("vendi") or {}
    if vendi:
        g, r = vendi["generated"], vendi["reference"]
        lines.append(f"vendi          generated {_fixed(g['value'], '.1f')} effective identities "
                     f"(n={g['n']}), reference {_fixed(r['value'], '.1f')} (n={r['n']}); "
                     f"RBF σ {vendi['bandwidth']:g}")
        lines.append(f"{pad}the effective number of distinct people, without a match threshold")
        if vendi.get("warning"):
            lines.append(f"{pad}warning: {vendi['warning']}")
    mem = identity.get("membership") or {}
    if mem.get("skipped"):
        lines.append(f"membership     skipped: {mem['reason']}")
    elif mem:
        lines.append(
            f"membership     p = {_p(mem['p_value'])} ({mem['permutations']} permutations): "
            f"{_fixed(mem['train_match_rate'], '.2f')} generated faces per training identity vs "
            f"{_fixed(mem['heldout_match_rate'], '.2f')} per held-out identity "
            f"({mem['train']['identities']} / {mem['heldout']['identities']} identities, by "
            f"{mem['train']['unit']} / {mem['heldout']['unit']})"
        )
        lines.append(f"{pad}a small p-value says the generator reproduces the people it was "
                     "trained on more often than people it never saw")
        for warning in mem.get("warnings", []):
            lines.append(f"{pad}warning: {warning}")
    auth = identity.get("authenticity") or {}
    if auth:
        rate = auth["rate"]
        text = (f"authenticity   {_fixed(rate['estimate'])} {_ci(rate['ci'])} of generated faces "
                f"(n={auth['n']})")
        held = auth.get("heldout_rate")
        if held is not None:
            text += (f" vs {_fixed(held['estimate'])} {_ci(held['ci'])} of held-out real faces "
                     f"(n={held['n']}), p = {_p(auth['p_value'])}")
        else:
            text += "; no held-out base rate (--heldout)"
        lines.append(text)
        lines.append(f"{pad}the fraction that are not closer to a training face than training "
                     "faces are to each other (not copies); real unseen faces set the base rate")
    return lines


def _eps_label(eps: float, norm: str) -> str:
    if norm == Norm.LINF.value and eps > 0 and abs(eps * 255 - round(eps * 255)) < 1e-6:
        return f"{round(eps * 255)}/255"
    return f"{eps:.3g}"


def attack_table(results: Results) -> str:
    """A readable summary of an :func:`attack` result for the terminal."""
    rob = results.robustness
    lines: list[str] = []
    if rob["model"] == TargetModel.RECOGNIZER.value:
        lines.append(f"model      dlib face recognizer, match ⇔ distance < {rob['threshold']:g}")
    else:
        lines.append("model      checkpoint discriminator, real ⇔ logit > 0")
        for set_name, c in rob.get("clean", {}).items():
            lines.append(f"clean      {set_name}: {c['called_real']:.0%} called real "
                         f"(n={c['n']})")
    for set_name, info in rob["sets"].items():
        res = "×".join(map(str, info["resolution"]))
        lines.append(f"set        {set_name:<10} {info['n']:>4} images {res}  {info['data']}")
    lines.append(f"units      {rob['units']}")
    for name in dict.fromkeys(r["attack"] for r in rob["attacks"]):
        recs = [r for r in rob["attacks"] if r["attack"] == name]
        first = recs[0]
        symbol = NORM_SYMBOL[Norm(first["norm"])]
        minimizes = first["kind"] == "minimization"
        lines.append("")
        lines.append(f"{name}  ({symbol}, {'minimal perturbation' if minimizes else 'fixed ε'}): "
                     f"{'success within ε' if minimizes else 'attack success rate'}")
        done = [r for r in recs if not r.get("skipped")]
        if done:
            eps = done[0]["epsilons"]
            lines.append(f"  {'goal':<18}{'set':<11}{'n':>4}  "
                         + "".join(f"{_eps_label(e, first['norm']):>8}" for e in eps))
        for r in recs:
            if r.get("skipped"):
                lines.append(f"  {r['goal']:<18}{r['set']:<11}{0:>4}  skipped: {r['reason']}")
                continue
            lines.append(f"  {r['goal']:<18}{r['set']:<11}{r['n']:>4}  "
                         + "".join(f"{v:>8.0%}" for v in r["success_rate"]))
        if minimizes:
            lines.append(f"  {'minimal ' + symbol + ' size':<29}{'found':>6}{'q10':>8}"
                         f"{'median':>8}{'q90':>8}")
            for r in done:
                p = r["perturbation"]
                q = p["quantiles"]

                def fmt(v: float | None) -> str:
                    return f"{v:>8.3f}" if v is not None else f"{'—':>8}"

                lines.append(f"  {r['goal']:<18}{r['set']:<11}{p['n_found']:>3}/{p['n']:<3}"
                             f"{fmt(q['0.1'])}{fmt(p['median'])}{fmt(q['0.9'])}")
    if rob.get("corruptions"):
        lines.append("")
        lines.append("corruptions: median embedding drift / match rate (drift < "
                     f"{rob['threshold']:g}) per severity 1..5")
        for rec in rob["corruptions"]:
            sev = ", ".join(f"{s:g}" for s in rec["severities"])
            lines.append(f"  {rec['corruption']:<15}{rec['set']:<11}{rec['parameter']}: {sev}")
            lines.append(f"  {'':<15}{'':<11}drift "
                         + " ".join(f"{v:6.3f}" for v in rec["drift_median"])
                         + "   match " + " ".join(f"{v:4.0%}" for v in rec["match_rate"]))
    if results.metrics:
        lines.append("")
        for m in results.metrics:
            where = f" ({m.details.get('attack')} ε={m.details.get('epsilon', 0):.4g})" \
                if "attack" in m.details else ""
            lines.append(f"metric     {m.name}{where} = {m.value:.3f}")
    return "\n".join(lines)


_RESULT = {True: "PASS", False: "FAIL"}


def gates_table(checks: list[Check]) -> str:
    """A fixed-width table of the checks for the terminal; a baseline check's detail states now vs
    baseline, what was compared (at n=… or population), the effect (in metric units and in
    baseline spreads), the p-value against alpha and the verdict; a span check's its span, floor
    and ceiling (:mod:`gan_eval.gates`). The last line is the verdict: PASSED, FAILED or CANNOT
    JUDGE (a check could not be made: ``gan-eval gate`` exits 2)."""
    rows = [("gate", "check", "result", "detail")]
    rows += [(c.gate, c.kind, _RESULT[c.passed] if c.judged else "CANNOT JUDGE", c.message)
             for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    tests = [c for c in checks if c.kind == "baseline"]
    if tests:
        alphas = ", ".join(sorted({f"{c.alpha:g}" for c in tests if c.alpha is not None}))
        lines.append(f"\nbaseline checks: one-sided z-test of 'worse than the baseline' on both "
                     f"runs' standard errors, false-alarm rate alpha = {alphas} per check; effect "
                     "> 0 is worse, a spread is the baseline's 95% interval width")
    if any(c.kind == "span" for c in checks):
        lines.append("\nspan checks: span = (value − floor) / (ceiling − floor), the run measured "
                     "at the controls' sizes: 0 = as good as real data (floor: real vs real), "
                     "1 = as bad as a degenerate generator (ceiling: noise or the mean face)")
    unjudged = sum(not c.judged for c in checks)
    failed = sum(c.judged and not c.passed for c in checks)
    if unjudged:
        lines.append(f"\ngate CANNOT JUDGE: {unjudged} of {len(checks)} checks cannot be made "
                     f"here (exit 2); {failed} failed, {len(checks) - failed - unjudged} passed")
    else:
        verdict = "PASSED" if not failed else "FAILED"
        lines.append(f"\ngate {verdict}: {len(checks) - failed} of {len(checks)} checks passed")
    return "\n".join(lines)


def inspect_table(info: SourceInfo) -> str:
    """``gan-eval inspect``'s summary of a source: kind, count, sizes, channels, identities,
    content hash and every problem found."""
    sizes = ", ".join(f"{h}×{w} ({n})" for (h, w), n in sorted(info.resolutions.items()))
    chans = ", ".join(f"{c} ({n})" for c, n in sorted(info.channels.items()))
    identities = info.identities if info.identities is not None else "none (no subfolders)"
    lines = [
        f"data         {info.data}",
        f"kind         {info.kind}",
        f"images       {info.count}",
        f"resolution   {sizes}",
        f"channels     {chans}   (read as RGB; gray repeated, alpha dropped)",
        f"identities   {identities}",
        f"sha256       {info.content_hash}",
        f"problems     {len(info.problems) or 'none'}",
    ]
    lines += [f"  {'ERROR' if p.fatal else 'note '} {p}" for p in info.problems]
    return "\n".join(lines)


def inspect_json(info: SourceInfo) -> dict[str, Any]:
    """``gan-eval inspect --json``: the same facts as :func:`inspect_table`, as JSON data."""
    return {
        "data": info.data,
        "kind": info.kind,
        "count": info.count,
        "resolutions": {f"{h}x{w}": n for (h, w), n in info.resolutions.items()},
        "channels": {str(c): n for c, n in info.channels.items()},
        "identities": info.identities,
        "content_hash": info.content_hash,
        "problems": [{"path": p.path, "message": p.message, "fatal": p.fatal}
                     for p in info.problems],
    }
