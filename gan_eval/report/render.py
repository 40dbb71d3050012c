"""Drawing a report folder from a results JSON: ``plots/*.png`` and the self-contained
``index.html`` (:mod:`.html`), with face pictures reopened from the sources the results name.

A report folder's ``results.json``, ``plots/`` and ``index.html`` change together
(:func:`gan_eval.fileio.write_together`): a kill at any moment leaves the previous report or the
new one, never a page drawn from other numbers than its ``results.json`` (the page names the
sha256 of the results it shows in ``<meta name="gan-eval-results-sha256">``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2

from gan_eval.errors import InputError
from gan_eval.fileio import read_committed, write_together
from gan_eval.report import face_tiles, plots
from gan_eval.report.html import Pictures, render_html
from gan_eval.report.restoration import restoration_figures
from gan_eval.results import Results
from gan_eval.sources import reopen

SAMPLE_GRID = 64
"""Faces in the sample grid."""


def _first(*candidates: Any) -> dict[str, Any] | None:
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("data"):
            return candidate
    return None


def pictures(results: Results, base: Path, *, device: str | None = "cpu",
             trusted: bool = True) -> Pictures:
    """Figures drawn from the results, and the faces the results point to (when reachable;
    ``base``: the report folder, for paths recorded relative to it). Results that gan-eval did
    not just compute (``trusted=False``) open no path outside ``base`` unless the record carries
    the content hash it must match (:func:`gan_eval.sources.reopen`)."""
    confine = None if trusted else base
    figures = {
        "training": plots.training_curves(results.training),
        "birthday": plots.birthday_curves(results.recognition),
        "attacks": plots.attack_curves(results.robustness),
        "corruptions": plots.corruption_curves(results.robustness),
    }
    pngs = {k: v for k, v in figures.items() if v is not None}
    pngs.update(restoration_figures(results.restoration, base))
    found = Pictures(figures={k: face_tiles.data_uri(v) for k, v in pngs.items()}, pngs=pngs)
    prov = results.provenance
    data = prov.get("data") or prov.get("datasets") or {}
    seed = int(prov.get("seed", 0))
    sample_record = _first(results.training.get("samples"), data.get("generated"))
    if sample_record is None:
        found.missing["samples"] = "the results name no generated images"
    else:
        opened = reopen(sample_record, base, seed=seed, device=device, confine_to=confine)
        if opened.source is None:
            found.missing["samples"] = opened.reason
        else:
            count = min(SAMPLE_GRID, len(opened.source))
            png = face_tiles.grid_png(opened.source.read(list(range(count))))
            found.samples = face_tiles.data_uri(png)
            found.pngs["samples"] = png
    pairs = (results.recognition.get("leakage") or {}).get("top_pairs") or []
    if pairs:
        gen, ref = (reopen(data.get(role) or {}, base, seed=seed, device=device,
                           confine_to=confine)
                    for role in ("generated", "reference"))
        if gen.source is None or ref.source is None:
            found.missing["pairs"] = gen.reason or ref.reason
        else:
            found.pairs = face_tiles.pair_tiles(gen.source, ref.source, pairs)
    return found


def render_report(
    results: Results, out: Path, *, base: Path | None = None, device: str | None = "cpu",
    trusted: bool = True,
) -> Path:
    """Write ``out/results.json``, ``out/plots/*.png`` and ``out/index.html`` from ``results``,
    as one change (see the module docstring); returns index.html.

    ``base``: the folder that recorded relative paths start from (default ``out``);
    ``trusted``: see :func:`pictures`.
    """
    found = pictures(results, base or out, device=device, trusted=trusted)
    text = results.to_text().encode("utf-8")
    return _write(out, found, render_html(results, found, results_sha256=_sha256(text)), text)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(out: Path, found: Pictures, page: str, results_bytes: bytes | None) -> Path:
    """Commit the page, its plots (stale ones removed) and, unless None, ``results.json``
    together (:func:`gan_eval.fileio.write_together`)."""
    files = {f"plots/{name}.png": png for name, png in found.pngs.items()}
    if results_bytes is not None:
        files["results.json"] = results_bytes
    files["index.html"] = page.encode("utf-8")
    plots = out / "plots"
    stale = sorted(f"plots/{p.name}" for p in plots.glob("*.png")
                   if f"plots/{p.name}" not in files) if plots.is_dir() else []
    write_together(out, files, remove=stale)
    return out / "index.html"


def render_from_results(path: Path, out: Path) -> Path:
    """``--from-results``: draw the report of an existing results JSON into ``out``.

    The file may come from anywhere: it is validated (:meth:`Results.load`), a section that
    cannot be drawn is an :class:`InputError` naming the file, and faces are reopened only from
    paths under the file's folder or with a matching content hash. ``out/results.json`` becomes
    the file's content (unless it is that file), committed with the page.
    """
    results = Results.load(path)
    raw = read_committed(path).read_bytes()
    try:
        view = pictures(results, path.parent, trusted=False)
        page = render_html(results, view, results_sha256=_sha256(raw))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            jinja2.TemplateError) as exc:
        raise InputError(f"{path}: a section of this results file cannot be drawn "
                         f"({type(exc).__name__}: {exc})") from exc
    same = (out / "results.json").exists() and (out / "results.json").samefile(path)
    # the folder holds what its page shows: the file's own bytes when it is copied in
    return _write(out, view, page, None if same else raw)
