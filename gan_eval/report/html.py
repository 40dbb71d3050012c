"""The self-contained HTML report: a results JSON (+ figures and face tiles) → one HTML page.

The page needs nothing but itself: figures and faces are PNG data URIs, the style sheet is inline,
and there is no script. Jinja2 autoescaping is on for the whole template, so every string that
comes from the user (paths, DATA strings, folder and identity names, gate labels) is shown as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jinja2

from gan_eval.catalogue import headlines
from gan_eval.environment import OPTIONAL_PACKAGES
from gan_eval.estimates import estimand_label
from gan_eval.report.restoration import restoration_view
from gan_eval.report.tables import control_note, recognition_table
from gan_eval.results import Metric, Results

TEMPLATE = "report.html.j2"

def fmt(value: Any) -> str:
    """A number as a reader wants it: 4 significant digits, integers whole, None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}" if 1e-4 <= abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def fmt_ci(ci: Any) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "–"


@dataclass
class Pictures:
    """Images that do not live in the results JSON: figure data URIs and face tiles."""

    figures: dict[str, str] = field(default_factory=dict)  # name → data URI
    pngs: dict[str, bytes] = field(default_factory=dict)  # name → PNG (written to plots/)
    samples: str | None = None  # data URI of the sample grid
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (generated, reference) URIs
    missing: dict[str, str] = field(default_factory=dict)  # picture → why it is not shown


def _controls(m: Metric) -> dict[str, str] | None:
    """Floor, ceiling, the value at the controls' sizes and the span of ``m`` as text, or None
    when it has no floor and ceiling."""
    span = m.span()
    if span.floor is None or span.ceiling is None:
        return None
    return {"floor": fmt(span.floor), "ceiling": fmt(span.ceiling),
            "ceiling_of": span.ceiling_of or "–", "at": fmt(span.generated),
            "span": f"{span.value:.2f}" if span.value is not None else "none",
            "sizes": f"{span.n_generated} vs {span.n_reference}",
            "reason": span.reason or ""}


def _counterpart(m: Metric, results: Results) -> Metric | None:
    """The metric to read instead of ``m`` when ``m`` cannot be judged here
    (``details.cannot_judge.instead``), when the results hold it."""
    record = m.details.get("cannot_judge")
    instead = record.get("instead") if isinstance(record, dict) else None
    found = [x for x in results.metrics if x.name == instead and x.extractor == m.extractor]
    return found[0] if found else None


def _card(label: str, m: Metric, results: Results) -> dict[str, Any]:
    """One summary card. A metric that cannot be judged here (a match threshold that does not
    separate people on these images: ``details.cannot_judge``) is shown by its calibrated
    counterpart; a distribution metric shows its floor, ceiling and span."""
    value, ci, details = m.value, m.ci95, m.details
    calibrated = details.get("calibrated")
    counterpart = _counterpart(m, results)
    if counterpart is not None:
        value, ci = counterpart.value, counterpart.ci95
        far = (details.get("cannot_judge") or {}).get("far_on_reference_pairs")
        accepts = f", which accepts {far:.0%} of impostor pairs" if isinstance(far, float) else ""
        where = (f"at the calibrated threshold {fmt(counterpart.details.get('threshold'))}; "
                 f"{fmt(details.get('threshold'))} cannot judge here{accepts}")
    elif details.get("warning") and isinstance(calibrated, dict):
        value, ci = calibrated["value"], calibrated.get("ci95")
        where = f"at the calibrated threshold {fmt(calibrated['threshold'])}"
    elif "epsilon" in details:
        scale = 255 if details.get("norm") == "linf" else 1
        eps = f"{details['epsilon'] * scale:.3g}" + ("/255" if scale == 255 else "")
        where = f"{details.get('attack')} at ε = {eps} on {details.get('set')} faces"
    elif isinstance(details.get("threshold"), int | float):
        where = f"at threshold {fmt(details['threshold'])}"
    else:
        where = f"{fmt(m.n_generated)} vs {fmt(m.n_reference)} faces"
    both = m.interval_both_sets()
    return {"label": label, "value": fmt(value), "ci": fmt_ci(ci), "where": where,
            "interval_of": m.interval_of() or "", "ci_both": fmt_ci(both) if both else "",
            "better": "higher is better" if m.higher_is_better else "lower is better",
            "controls": _controls(m)}


def _headlines(results: Results) -> list[dict[str, Any]]:
    """Summary cards in the catalogue's order (:func:`gan_eval.catalogue.headlines`); a metric
    the results lack is left out."""
    return [
        _card(label, found[0], results)
        for name, extractor, label in headlines()
        if (found := [m for m in results.metrics if m.name == name and m.extractor == extractor])
    ]


def _faceness(recognition: dict[str, Any]) -> dict[str, Any] | None:
    faceness = recognition.get("faceness") or {}
    if not faceness:
        return None
    if faceness.get("skipped"):
        return {"note": faceness.get("reason"), "rows": []}
    rows = [{"set": s, "rate": fmt(f.get("rate")), "ci": fmt_ci(f.get("ci95")),
             "found": fmt(f.get("with_face")), "n": fmt(f.get("n"))}
            for s in ("generated", "reference", "heldout")
            if isinstance(f := faceness.get(s), dict)]
    return {"note": None, "rows": rows, "detector": faceness.get("description"),
            "name": faceness.get("detector"), "chosen_because": faceness.get("chosen_because"),
            "detection": faceness.get("detection"), "warning": faceness.get("heldout_warning")}


def _metric_row(m: Metric) -> dict[str, Any]:
    detail = m.details.get("threshold")
    where = f"threshold {fmt(detail)}" if isinstance(detail, int | float) else ""
    calibrated = m.details.get("calibrated")
    if isinstance(calibrated, dict) and calibrated.get("value") is not None:
        where += (f"; at the calibrated threshold {fmt(calibrated.get('threshold'))}: "
                  f"{fmt(calibrated['value'])}")
        if calibrated.get("ci95"):
            where += f" {fmt_ci(calibrated['ci95'])}"
    chance = m.details.get("chance")
    if isinstance(chance, dict) and chance.get("rate") is not None:
        where += f"; expected by chance: {fmt(chance['rate'])}"
    unjudged = m.details.get("cannot_judge")
    if isinstance(unjudged, dict):
        where += (f"; cannot judge at this threshold here: read "
                  f"{unjudged.get('instead') or 'the calibrated metric'}")
    no_controls = m.details.get("no_controls")
    if isinstance(no_controls, str):
        where += ("; " if where else "") + f"no floor/ceiling: {no_controls}"
    both = m.interval_both_sets()
    return {"name": m.name, "extractor": m.extractor, "value": fmt(m.value), "ci": fmt_ci(m.ci95),
            "interval_of": m.interval_of() or "–", "ci_both": fmt_ci(both),
            "n_generated": fmt(m.n_generated), "n_reference": fmt(m.n_reference),
            "controls": _controls(m),
            "better": "higher" if m.higher_is_better else "lower", "where": where.lstrip("; ")}


def flatten(data: Any, prefix: str = "", *, max_items: int = 12) -> list[tuple[str, str]]:
    """Nested JSON → ("a.b.c", value) rows; long lists are summarised, not dumped."""
    rows: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key), max_items=max_items)
    elif isinstance(data, list | tuple) and (len(data) > max_items or any(
            isinstance(v, dict | list) for v in data)):
        rows.append((prefix, f"({len(data)} entries)"))
    elif isinstance(data, list | tuple):
        rows.append((prefix, ", ".join(fmt(v) for v in data)))
    else:
        rows.append((prefix, fmt(data)))
    return rows


def describe_record(record: Any) -> str:
    """A source record (:meth:`ImageSource.record`) as one line: what, how many, size, hash."""
    if not isinstance(record, dict):
        return fmt(record)
    parts = [str(record.get("data", "?"))]
    generator = record.get("generator")
    if isinstance(generator, dict):
        parts.append(f"{generator.get('kind')} generator")
    elif record.get("kind"):
        parts.append(str(record["kind"]))
    if record.get("n") is not None:
        parts.append(f"{fmt(record['n'])} images")
    size = record.get("resolution")
    if isinstance(size, list | tuple) and len(size) == 2:
        parts.append(f"{size[0]}×{size[1]}" + (" (resized)" if record.get("resize") else ""))
    if record.get("seed") is not None:
        parts.append(f"seed {record['seed']}")
    if record.get("role"):
        parts.append(str(record["role"]))
    if record.get("content_hash"):
        parts.append(f"content sha256 {str(record['content_hash'])[:16]}…")
    return " · ".join(parts)


_PROVENANCE_SKIPPED = ("notes", "title", "subject")
"""Provenance keys shown elsewhere on the page (the header and the notes)."""


def provenance_sections(prov: dict[str, Any]) -> list[dict[str, Any]]:
    """The provenance as titled tables, each fact once: the run, gan-eval (version, commit),
    software (torch build, packages), optional packages (and what each changes), data (one line
    per set), weights, then what each analysis recorded of its own. Keys of older results files
    that fit none of these are listed last, flattened."""
    rest = {k: v for k, v in prov.items() if k not in _PROVENANCE_SKIPPED}
    sections: list[dict[str, Any]] = []

    def add(title: str, rows: list[tuple[str, str]]) -> None:
        rows = [(k, v) for k, v in rows if v not in ("", "None")]
        if rows:
            sections.append({"title": title, "rows": rows})

    add("Run", [(key, fmt(rest.pop(key))) for key in ("created", "command", "seed", "device")
                if key in rest])
    source = rest.pop("gan_eval", None)
    if isinstance(source, dict):
        commit = source.get("commit")
        if commit and source.get("dirty"):
            commit = f"{commit} (tracked files changed since this commit)"
        add("gan-eval", [("version", fmt(source.get("version"))), ("commit", fmt(commit)),
                         ("source", fmt(source.get("source")))])
    software: list[tuple[str, str]] = []
    torch = rest.pop("torch", None)
    if isinstance(torch, dict):
        build = ", ".join(str(v) for v in (torch.get("version"), torch.get("build")) if v)
        if torch.get("threads") is not None:
            build += f", {torch['threads']} CPU threads"
        software.append(("torch", build))
    system = rest.pop("system", None)
    if isinstance(system, dict):
        software += [(k, fmt(v)) for k, v in system.items()]
    packages = rest.pop("packages", None)
    if isinstance(packages, dict):
        software += [(name, fmt(v) if v else "not installed") for name, v in packages.items()]
    add("Software", software)
    optional = rest.pop("optional_packages", None)
    if isinstance(optional, dict):
        add("Optional packages (each changes the numbers named)", [
            (name, f"{version or 'not installed'} — {OPTIONAL_PACKAGES.get(name, '')}".rstrip(
                " —")) for name, version in optional.items()])
    data = rest.pop("data", None)
    if isinstance(data, dict):
        data_rows: list[tuple[str, str]] = []
        for role, record in data.items():
            data_rows.append((role, describe_record(record)))
            generator = record.get("generator") if isinstance(record, dict) else None
            if isinstance(generator, dict):  # an external generator: what exactly ran
                data_rows += flatten(
                    {key: value for key, value in generator.items()
                     if key not in ("kind", "options") and value not in (None, {}, [])},
                    f"{role}.generator")
        add("Data", data_rows)
    weights = rest.pop("weights_sha256", None) or rest.pop("weights", None)
    if isinstance(weights, dict):
        add("Weights (sha256)", [(name, fmt(v)) for name, v in weights.items()])
    parts = rest.pop("parts", None)
    if isinstance(parts, dict):
        for name, part in parts.items():
            if not isinstance(part, dict):
                continue
            rows: list[tuple[str, str]] = []
            for key, value in part.items():
                if key == "data" and isinstance(value, dict):
                    rows += [(f"data.{role}", describe_record(r)) for role, r in value.items()]
                else:
                    rows += flatten(value, key)
            add(f"{name}", rows)
    add("Other", flatten(rest))
    return sections


def _leakage(recognition: dict[str, Any], pictures: Pictures) -> dict[str, Any] | None:
    leakage = recognition.get("leakage")
    if not leakage:
        return None
    levels = [
        {"name": name, "threshold": fmt(at.get("threshold")), "rate": fmt(at.get("rate")),
         "ci": fmt_ci(at.get("ci95")), "leaked": fmt(at.get("leaked")), "n": fmt(at.get("n")),
         "chance": fmt(at.get("chance_rate"))}
        for name, at in leakage.get("at", {}).items()
    ]
    pairs = leakage.get("top_pairs", [])
    tiles = pictures.pairs if len(pictures.pairs) == len(pairs) else []
    gallery = [
        {"generated": p["generated"], "reference": p["reference"], "distance": fmt(p["distance"]),
         "leaked_at": ", ".join(p.get("leaked_at", [])) or "none",
         "tiles": tiles[i] if tiles else None}
        for i, p in enumerate(pairs)
    ]
    self_match = leakage.get("reference_self_match", {})
    return {"levels": levels, "gallery": gallery, "meaning": leakage.get("chance_rate_meaning"),
            "self_match": self_match.get("meaning"),
            "missing": pictures.missing.get("pairs")}


def _diversity(recognition: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for set_name in ("generated", "reference"):
        block = (recognition.get("diversity") or {}).get(set_name) or {}
        for level, at in (block.get("at") or {}).items():
            birthday = at.get("birthday") or {}
            rows.append({"set": set_name, "level": level, "threshold": fmt(at.get("threshold")),
                         "n": fmt(block.get("n")), "identities": fmt(at.get("identities")),
                         "largest": fmt(at.get("largest_identity_share")),
                         "support": fmt(birthday.get("support")),
                         "support_ci": fmt_ci(birthday.get("support_ci95"))})
    return rows


def _identity(recognition: dict[str, Any]) -> dict[str, Any] | None:
    """Vendi, membership and authenticity rows (with their meaning), or None when the results
    have no identity-level statistics (a file from an earlier version)."""
    identity = recognition.get("identity")
    if not isinstance(identity, dict):
        return None
    vendi = identity.get("vendi") or {}
    view: dict[str, Any] = {"vendi": None, "membership": None, "authenticity": None}
    if vendi:
        view["vendi"] = {
            "rows": [{"set": key, "value": fmt(block.get("value")), "n": fmt(block.get("n")),
                      "per_image": fmt(block.get("per_image")), "subset": block.get("subset"),
                      "note": block.get("note")}
                     for key in ("generated", "reference")
                     if isinstance(block := vendi.get(key), dict)],
            "bandwidth": fmt(vendi.get("bandwidth")), "method": vendi.get("method"),
            "warning": vendi.get("warning"),
        }
    mem = identity.get("membership") or {}
    if mem.get("skipped"):
        view["membership"] = {"skipped": mem.get("reason")}
    elif mem:
        view["membership"] = {
            "skipped": None, "p_value": fmt(mem.get("p_value")),
            "statistic": fmt(mem.get("statistic")),
            "train_rate": fmt(mem.get("train_match_rate")),
            "heldout_rate": fmt(mem.get("heldout_match_rate")),
            "train": f"{fmt((mem.get('train') or {}).get('identities'))} "
                     f"(by {(mem.get('train') or {}).get('unit')})",
            "heldout": f"{fmt((mem.get('heldout') or {}).get('identities'))} "
                       f"(by {(mem.get('heldout') or {}).get('unit')})",
            "permutations": fmt(mem.get("permutations")), "method": mem.get("method"),
            "top": [(t.get("identity"), fmt(t.get("matches")))
                    for t in mem.get("most_matched_training") or []],
            "heldout_max": fmt(mem.get("heldout_max_matches")),
            "warnings": list(mem.get("warnings") or []),
        }
    auth = identity.get("authenticity") or {}
    if auth:
        rate = auth.get("rate") or {}
        held = auth.get("heldout_rate") or {}
        view["authenticity"] = {
            "rate": fmt(rate.get("estimate")), "ci": fmt_ci(rate.get("ci")),
            "n": fmt(auth.get("n")),
            "heldout_rate": fmt(held.get("estimate")) if held else None,
            "heldout_ci": fmt_ci(held.get("ci")) if held else None,
            "heldout_n": fmt(held.get("n")) if held else None,
            "p_value": fmt(auth.get("p_value")), "note": auth.get("note"),
            "method": auth.get("method"),
        }
    return view


def _section_note(section: Any) -> str | None:
    if isinstance(section, dict) and section.get("skipped"):
        return str(section.get("reason", "skipped"))
    return None


def _recognition_table(results: Results) -> str | None:
    """The recognition audit as ``gan-eval recognition`` prints it (one summary, one wording)."""
    if not results.recognition.get("leakage"):
        return None
    try:
        return recognition_table(results)
    except (KeyError, TypeError, ValueError):  # a results file from another version: skip it
        return None


def _utility(section: Any) -> list[dict[str, Any]]:
    """One block per utility protocol: its skip reason or its scalar numbers."""
    if not isinstance(section, dict) or section.get("skipped"):
        return []
    return [
        {"name": name.replace("_", " "), "note": _section_note(block),
         "rows": [] if _section_note(block) else flatten(block)}
        for name, block in section.items() if isinstance(block, dict)
    ]


def _gate_row(c: dict[str, Any]) -> dict[str, Any]:
    """One check as the table shows it; a baseline check's test columns (now vs baseline, what
    was compared, effect, p-value against alpha) and a check's span columns (span, floor,
    ceiling) are "–" where they do not apply and for results files written before them."""
    spreads = c.get("effect_in_spreads")
    effect = fmt(c.get("effect"))
    if c.get("effect") is not None and isinstance(spreads, int | float):
        effect = f"{fmt(c.get('effect'))} ({fmt(spreads)} spreads)"
    p_value = fmt(c.get("p_value"))
    if c.get("p_value") is not None and c.get("alpha") is not None:
        p_value = f"{p_value} (α {fmt(c.get('alpha'))})"
    span = c.get("span")
    unjudged = c.get("kind") == "cannot_judge"
    return {"gate": c.get("gate"), "kind": c.get("kind"), "passed": bool(c.get("passed")),
            "result": "cannot judge" if unjudged else ("pass" if c.get("passed") else "FAIL"),
            "css": "note" if unjudged else ("pass" if c.get("passed") else "fail"),
            "message": c.get("message"), "value": fmt(c.get("value")),
            "baseline": fmt(c.get("baseline")),
            "compared": estimand_label(c.get("estimand"), c.get("n")) or "–", "effect": effect,
            "p_value": p_value,
            "span": f"{span:.2f}" if isinstance(span, int | float) else "–",
            "floor": fmt(c.get("floor")), "ceiling": fmt(c.get("ceiling")),
            "sizes": c.get("control_sizes") or "–"}


def _gates(results: Results) -> dict[str, Any]:
    gates = results.gates or {}
    checks = [c for c in gates.get("checks") or [] if isinstance(c, dict)]
    unjudged = any(c.get("kind") == "cannot_judge" for c in checks)
    status = ("none" if not checks else "cannot_judge" if unjudged
              else "pass" if gates.get("passed") else "fail")
    rows = [_gate_row(c) for c in checks]
    return {"status": status, "config": gates.get("config"), "checks": rows,
            "tests": any(c.get("kind") == "baseline" for c in checks),
            "spans": any(c.get("floor") is not None for c in checks),
            "alpha": next((fmt(c.get("alpha")) for c in checks if c.get("kind") == "baseline"),
                          None)}


def build_view(results: Results, pictures: Pictures) -> dict[str, Any]:
    """Everything the template shows, as plain strings and lists (the template computes nothing)."""
    rec = results.recognition
    rob = results.robustness
    training = results.training
    prov = results.provenance
    notes = list(dict.fromkeys(prov.get("notes", [])))
    warning = (rec.get("thresholds") or {}).get("warning")
    warnings = [f"recognition: {warning}"] if isinstance(warning, str) else []
    return {
        "title": prov.get("title") or "gan-eval report",
        "subtitle": prov.get("subject") or "",
        "created": prov.get("created", ""),
        "gates": _gates(results),
        "headlines": _headlines(results),
        "notes": notes + warnings,
        "samples": pictures.samples,
        "samples_missing": pictures.missing.get("samples"),
        "metrics": [_metric_row(m) for m in results.metrics],
        "control_note": control_note(results.metrics),
        "omitted": [{"name": o.name, "extractor": o.extractor, "reason": o.reason}
                    for o in results.omitted],
        "figures": pictures.figures,
        "training": {
            "rows": [(k, fmt(training["device"] if k == "device" and training.get("device")
                          else v))
                     for k, v in (training.get("config") or {}).items()
                     if k in ("data", "resolution", "steps", "batch_size", "loss", "seed",
                              "width", "nz", "lr", "ema_decay", "device")],
            "source": training.get("run") or training.get("checkpoint"),
            "reused": training.get("reused"),
            "seconds": fmt(training.get("seconds")),
            "missing": training.get("missing"),
        } if training else None,
        "leakage": _leakage(rec, pictures),
        "diversity": _diversity(rec),
        "diversity_method": (rec.get("diversity") or {}).get("method"),
        "identity": _identity(rec),
        "verification_note": _section_note(rec.get("verification")),
        "verification": flatten(rec.get("verification")) if rec.get("verification") and not
        _section_note(rec.get("verification")) else [],
        "utility_note": _section_note(rec.get("utility")),
        "recognition_table": _recognition_table(results),
        "utility": _utility(rec.get("utility")),
        "faceness": _faceness(rec),
        "robustness": {
            "model": rob.get("model"), "units": rob.get("units"), "network": rob.get("network"),
            "goals": rob.get("goals") or {},
            "sets": [(name, s.get("data"), fmt(s.get("n"))) for name, s in
                     (rob.get("sets") or {}).items()],
        } if rob else None,
        "provenance": provenance_sections(prov),
        "restoration": restoration_view(results.restoration, pictures.figures),
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gan_eval.report", "templates"),
        autoescape=True,  # every {{ }} is escaped, whatever the file extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(results: Results, pictures: Pictures, *,
                results_sha256: str | None = None) -> str:
    """The report page as one HTML string (UTF-8, no external requests, no scripts);
    ``results_sha256``: the sha256 of the results file it is drawn from, named in a ``<meta
    name="gan-eval-results-sha256">`` so that a page can be matched with its numbers."""
    return _environment().get_template(TEMPLATE).render(
        **build_view(results, pictures), results_sha256=results_sha256)
