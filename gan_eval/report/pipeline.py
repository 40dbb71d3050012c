"""``gan-eval report``: train (or reuse) → evaluate → recognition → robustness → gates → HTML.

With no arguments the whole pipeline runs on the embedded default (``builtin:lfw-subset``, real
LFW faces shipped inside scikit-image) and writes ``reports/default/``::

    reports/default/
      run/            the training run (checkpoint/, samples/, metrics.jsonl); reused when finished
      results.json    every number (schema gan-eval/results/v1)
      plots/          the figures as PNG files (the same ones index.html embeds)
      index.html      the self-contained report (no external requests, no scripts)

:func:`render_report` draws the page from a results JSON alone (``--from-results``); face pictures
come from reopening the sources the results name, checked by content hash.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import atomic_write_bytes, atomic_write_text
from gan_eval.report import images as pics
from gan_eval.report import plots
from gan_eval.report.gates import GateConfig, evaluate_gates, load_config
from gan_eval.report.html import Pictures, render_html
from gan_eval.report.results import Results, provenance

DEFAULT_DATA = "builtin:lfw-subset"
DEFAULT_OUT = Path("reports/default")
SAMPLE_GRID = 64  # faces in the sample grid
CURVE_POINTS = 400  # at most this many points of the training curve are kept in results.json

Progress = Callable[[str], None]


def default_gates() -> Path:
    """The gates the report judges a run by unless ``--gates`` names others (shipped file)."""
    return Path(str(resources.files("gan_eval.report") / "default_gates.toml"))


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """Options of ``gan-eval report`` (defaults: the embedded default run, < 5 min on 2 cores)."""

    data: str | None = None  # training/reference faces (default: the checkpoint's, else builtin)
    checkpoint: Path | None = None  # audit this checkpoint instead of training one
    out: Path = DEFAULT_OUT
    steps: int = 300  # training steps of the default DCGAN
    resolution: int = 32
    batch_size: int = 64
    seed: int = 0
    n: int = 1000  # generated faces for the distribution and recognition metrics
    bootstrap: int = 200  # resamples behind every 95% interval
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    attack_n: int = 8  # faces per set in the robustness sweep
    gates: Path | None = None  # None: default_gates()
    baseline: Path | None = None
    inception_weights: Path | None = None
    device: str | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name, least in (("steps", 1), ("n", 2), ("attack_n", 1), ("bootstrap", 2)):
            if getattr(self, name) < least:
                option = "--" + name.replace("_", "-")
                raise InputError(f"{option}: got {getattr(self, name)}; need at least {least}")

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


def _train_or_reuse(config: ReportConfig, data: str) -> tuple[Path, dict[str, Any]]:
    """The run folder ``out/run``: trained now, resumed to ``steps``, or reused when finished."""
    from gan_eval.data import open_source
    from gan_eval.gan.checkpoint import is_checkpoint, load_checkpoint
    from gan_eval.gan.train import CHECKPOINT_DIR, TrainConfig, config_for_resume, train

    run = config.out / "run"
    quiet = config.progress is None
    info: dict[str, Any] = {"run": str(run), "reused": False}
    if is_checkpoint(run / CHECKPOINT_DIR):
        done = load_checkpoint(run / CHECKPOINT_DIR, groups=())
        trained_on = done.training_data("--data")
        # the same images however DATA is spelled (./faces, faces, an absolute path), and not
        # images that changed since the run was trained
        if open_source(data).content_hash() != done.meta["data"].get("content_hash"):
            raise InputError(f"--out {config.out}: {run} holds a run on {trained_on!r}, whose "
                             f"images differ from --data {data!r}; choose another --out")
        if done.step >= config.steps:
            config.say(f"reusing the finished run in {run} ({done.step} steps)")
            return run, {**info, "reused": True}
        config.say(f"resuming {run} from step {done.step} to {config.steps}")
        train_config = config_for_resume(run, data=data, steps=config.steps, quiet=quiet)
    else:
        config.say(f"training a DCGAN on {data}: {config.steps} steps at {config.resolution} px")
        train_config = TrainConfig(data=data, out=run, steps=config.steps,
                                   resolution=config.resolution, batch_size=config.batch_size,
                                   seed=config.seed, quiet=quiet,
                                   device=config.device or "auto")
    start = time.perf_counter()
    train(train_config)
    return run, {**info, "seconds": round(time.perf_counter() - start, 1)}


def training_section(run: Path | None, checkpoint: Path) -> dict[str, Any]:
    """Config and loss curve of the run that made ``checkpoint`` (from its metrics.jsonl)."""
    from gan_eval.gan.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, groups=())
    section: dict[str, Any] = {"checkpoint": str(ckpt.folder), "step": ckpt.step,
                               "config": ckpt.meta.get("config", {})}
    metrics = (run or ckpt.folder.parent) / "metrics.jsonl"
    if not metrics.is_file():
        section["missing"] = f"no training curve: {metrics} does not exist"
        return section
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interrupted run
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    stride = max(1, -(-len(rows) // CURVE_POINTS))
    kept = rows[::stride]
    section["curve"] = {key: [r.get(key) for r in kept] for key in ("step", "d_loss", "g_loss")}
    section["curve_stride"] = stride
    return section


def _extractors(config: ReportConfig) -> tuple[tuple[str, ...], list[str]]:
    from gan_eval.features.inception_weights import resolve_inception_weights

    try:
        resolve_inception_weights(config.inception_weights)
    except MissingAssetError as exc:
        return ("dlib-face",), [f"Inception FID/KID/IS are not computed (dlib-face only). {exc}"]
    return ("dlib-face", "inception"), []


def _record(source: Any, resize: int | None = None) -> dict[str, Any]:
    """How to reopen ``source`` for pictures: DATA string (a path made absolute), size, count
    and content hash."""
    data = Path(source.data)
    return {"data": str(data.resolve()) if data.exists() else source.data,
            "content_hash": source.content_hash(), "n": len(source), "resize": resize}


def _relative_to(out: Path, *records: dict[str, Any]) -> None:
    """Add each path's location relative to the report folder (``relative``), so that a report
    folder moved with its run can still be redrawn with faces."""
    for record in records:
        if Path(record["data"]).is_absolute():
            record["relative"] = os.path.relpath(record["data"], out.resolve())


PART_METRICS: dict[str, frozenset[str]] = {
    "evaluate": frozenset({"fid", "kid", "is", "precision", "recall", "density", "coverage",
                           "copy_rate"}),
    "recognition": frozenset({"leakage_rate", "identity_diversity", "faceness"}),
    "attack": frozenset({"dodging_success", "corruption_match_rate"}),
}
"""Which step of the audit computes which metric (``gan-eval gate CKPT`` runs only those needed)."""


def audit_checkpoint(
    checkpoint: Path,
    data: str,
    config: ReportConfig,
    *,
    parts: tuple[str, ...] = tuple(PART_METRICS),
    extractors: tuple[str, ...] | None = None,
) -> Results:
    """Distribution metrics, recognition tests and the robustness sweep of ``checkpoint``'s
    samples against ``data``, as one :class:`Results` (no training section, no gates).

    ``extractors`` default: dlib-face, plus Inception when its weights are installed (otherwise
    a note says how to enable it).
    """
    from gan_eval.data import open_source
    from gan_eval.evaluate import EvaluateConfig, evaluate
    from gan_eval.features.cache import FeatureCache
    from gan_eval.recognition import recognition
    from gan_eval.robustness import AttackOptions, attack

    generated = open_source(str(checkpoint), n=config.n, seed=config.seed, device=config.device)
    resolution = generated.resolution[0]
    reference = open_source(data, resolution=resolution)
    notes: list[str] = []
    if extractors is None:
        extractors, notes = _extractors(config)
    done: dict[str, Results] = {}
    if "evaluate" in parts:
        config.say(f"distribution metrics on {', '.join(extractors)}: {config.n} generated vs "
                   f"{len(reference)} reference faces")
        done["evaluate"] = evaluate(generated, reference, EvaluateConfig(
            extractors=extractors, bootstrap=config.bootstrap, seed=config.seed,
            device=config.device, inception_weights=config.inception_weights,
            progress=config.progress is not None))
        notes += done["evaluate"].provenance.get("notes", [])
    if "recognition" in parts:
        config.say("recognition tests: leakage, identity diversity, faceness")
        done["recognition"] = recognition(generated, reference, seed=config.seed,
                                          device=config.device, cache=FeatureCache.default())
    if "attack" in parts:
        config.say(f"robustness sweep: {', '.join(config.attacks)} on {config.attack_n} faces per"
                   " set, and corruption curves")
        done["attack"] = attack(str(checkpoint), attacks=config.attacks, n=config.attack_n,
                                reference=data, options=AttackOptions(), seed=config.seed,
                                device=config.device, progress=config.progress)
    shared = provenance()
    return Results(
        provenance={
            **shared,
            "command": "report",
            "title": "gan-eval report",
            "subject": f"{checkpoint} · trained on {data}",
            "seed": config.seed,
            "data": {"generated": _record(generated), "reference": _record(reference, resolution)},
            "checkpoint": str(checkpoint),
            "notes": notes,
            "parts": {name: {k: v for k, v in part.provenance.items()
                             if k not in shared or k == "created"}
                      for name, part in done.items()},
        },
        metrics=[m for part in done.values() for m in part.metrics],
        recognition=done["recognition"].recognition if "recognition" in done else {},
        robustness=done["attack"].robustness if "attack" in done else {},
    )


def judge(results: Results, gates: GateConfig, baseline: Results | None, label: str) -> bool:
    """Run the gates on ``results`` and record them in ``results.gates``; True when all pass."""
    checks = evaluate_gates(gates, results, baseline, source="results")
    passed = all(c.passed for c in checks)
    results.gates = {"config": label, "passed": passed, "checks": [vars(c) for c in checks]}
    return passed


def run_report(config: ReportConfig) -> Path:
    """Run the whole pipeline and write ``config.out``; returns the path of index.html."""
    from gan_eval.data import open_source
    from gan_eval.gan.checkpoint import load_checkpoint
    from gan_eval.gan.train import CHECKPOINT_DIR

    gates = load_config(config.gates or default_gates())  # a bad config fails before any work
    baseline = Results.load(config.baseline) if config.baseline is not None else None
    if config.checkpoint is not None:
        given = load_checkpoint(config.checkpoint, groups=())
        checkpoint = given.folder
        data = config.data or given.training_data("--data")
        run: Path | None = None
        train_info: dict[str, Any] = {}
    else:
        data = config.data or DEFAULT_DATA
        run, train_info = _train_or_reuse(config, data)
        checkpoint = run / CHECKPOINT_DIR
    results = audit_checkpoint(checkpoint, data, config)
    samples = open_source(str(checkpoint), n=SAMPLE_GRID, seed=config.seed, device=config.device)
    results.training = {**training_section(run, checkpoint), **train_info,
                        "samples": _record(samples)}
    _relative_to(config.out, *results.provenance["data"].values(), results.training["samples"])
    judge(results, gates, baseline, str(config.gates or "built-in default gates"))
    config.out.mkdir(parents=True, exist_ok=True)
    results.save(config.out / "results.json")
    config.say("writing the report")
    return render_report(results, config.out, device=config.device)


def gate_checkpoint(checkpoint: Path, gates: GateConfig, config: ReportConfig) -> Results:
    """``gan-eval gate CKPT``: the parts of the audit the gates need, on ``checkpoint``'s samples
    against ``config.data`` (default: its training data)."""
    from gan_eval.gan.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, groups=())
    data = config.data or ckpt.training_data("--data")
    named = {g.metric for g in gates.gates}
    parts = tuple(p for p, metrics in PART_METRICS.items() if named & metrics)
    inception = any(g.extractor == "inception" or g.metric == "is" for g in gates.gates)
    dlib_face = any(g.extractor in (None, "dlib-face") and g.metric != "is" for g in gates.gates)
    extractors = ("dlib-face",) * dlib_face + ("inception",) * inception
    return audit_checkpoint(ckpt.folder, data, config, parts=parts or ("evaluate",),
                            extractors=extractors or ("dlib-face",))


def _first(*candidates: Any) -> dict[str, Any] | None:
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("data"):
            return candidate
    return None


def pictures(results: Results, base: Path, *, device: str | None = "cpu") -> Pictures:
    """Figures drawn from the results, and the faces the results point to (when reachable;
    ``base``: the report folder, for paths recorded relative to it)."""
    figures = {
        "training": plots.training_curves(results.training),
        "birthday": plots.birthday_curves(results.recognition),
        "attacks": plots.attack_curves(results.robustness),
        "corruptions": plots.corruption_curves(results.robustness),
    }
    pngs = {k: v for k, v in figures.items() if v is not None}
    found = Pictures(figures={k: pics.data_uri(v) for k, v in pngs.items()}, pngs=pngs)
    prov = results.provenance
    data = prov.get("data") or prov.get("datasets") or {}
    seed = int(prov.get("seed", 0))
    sample_record = _first(results.training.get("samples"), data.get("generated"))
    if sample_record is None:
        found.missing["samples"] = "the results name no generated images"
    else:
        opened = pics.reopen(sample_record, base, seed=seed, device=device)
        if opened.source is None:
            found.missing["samples"] = opened.reason
        else:
            count = min(SAMPLE_GRID, len(opened.source))
            png = pics.grid_png(opened.source.read(list(range(count))))
            found.samples = pics.data_uri(png)
            found.pngs["samples"] = png
    pairs = (results.recognition.get("leakage") or {}).get("top_pairs") or []
    if pairs:
        gen, ref = (pics.reopen(data.get(role) or {}, base, seed=seed,
                                device=device)
                    for role in ("generated", "reference"))
        if gen.source is None or ref.source is None:
            found.missing["pairs"] = gen.reason or ref.reason
        else:
            found.pairs = pics.pair_tiles(gen.source, ref.source, pairs)
    return found


def render_report(
    results: Results, out: Path, *, base: Path | None = None, device: str | None = "cpu"
) -> Path:
    """Write ``out/plots/*.png`` and ``out/index.html`` from ``results``; returns index.html.

    ``base``: the folder that recorded relative paths start from (default ``out``).
    """
    found = pictures(results, base or out, device=device)
    for name, png in found.pngs.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", png)
    index = out / "index.html"
    atomic_write_text(index, render_html(results, found))
    return index


def render_from_results(path: Path, out: Path) -> Path:
    """``--from-results``: draw the report of an existing results JSON into ``out``."""
    results = Results.load(path)
    if not (out / "results.json").exists() or not (out / "results.json").samefile(path):
        results.save(out / "results.json")  # the folder holds what its page shows
    return render_report(results, out, base=path.parent)


