"""The whole audit behind ``gan-eval report``: train (or reuse) → evaluate → recognition →
robustness → gates → HTML (rendered by :mod:`gan_eval.report`).

With no arguments the whole pipeline runs on the embedded default (``builtin:lfw-train``, 80 of the
100 real LFW faces shipped inside scikit-image; the other 20, ``builtin:lfw-heldout``, are the
people it never trains on, for the membership test) and writes ``runs/report/`` (git-ignored in
a clone, so that a first run never rewrites the committed reference copy ``reports/default/``)::

    runs/report/
      run/            the training run (checkpoint/, samples/, metrics.jsonl); reused when finished
      restoration-run/  the restoration GAN trained on the same faces (``--task restoration``,
                      :data:`~gan_eval.gan.training.QUICK_RESTORATION`), audited first in the
                      restoration section on the held-out faces; reused when finished
      results.json    every number (schema gan-eval/results/v1)
      plots/          the figures as PNG files (the same ones index.html embeds)
      index.html      the self-contained report (no external requests, no scripts)

The page is drawn by :func:`gan_eval.report.render.render_report` from the results alone
(``--from-results``); face pictures come from reopening the sources the results name
(:func:`gan_eval.sources.reopen`), checked by content hash.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from gan_eval.catalogue import EXTRACTORS, Producer, metrics_by
from gan_eval.data import ImageSource
from gan_eval.data.builtin import HELDOUT_OF
from gan_eval.environment import describe_device
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.evaluation import EvaluateConfig, evaluate
from gan_eval.features.inception_weights import resolve_inception_weights
from gan_eval.gan.checkpoint import is_checkpoint, load_checkpoint
from gan_eval.gan.task_names import TaskName
from gan_eval.gan.training import (
    CHECKPOINT_DIR,
    QUICK_RESTORATION,
    TrainConfig,
    config_for_resume,
    train,
)
from gan_eval.gates import GateConfig, check_baseline, evaluate_gates, load_config, verdict
from gan_eval.generators import GeneratorOptions, open_generator
from gan_eval.generators.spec import SpecKind, classify
from gan_eval.identity import RecognitionConfig, open_heldout, recognition
from gan_eval.metrics.intervals import DEFAULT_SPLITS
from gan_eval.preflight import data_for_external
from gan_eval.report.render import SAMPLE_GRID, render_report
from gan_eval.report.restoration import write_pictures
from gan_eval.restoration.audit import RestorationConfig, RestorationRun, audit_restoration
from gan_eval.results import Results, provenance
from gan_eval.robustness import AttackConfig, attack
from gan_eval.sources import open_source

DEFAULT_DATA = "builtin:lfw-train"
DEFAULT_OUT = Path("runs/report")  # git-ignored; reports/default is the committed copy
CURVE_POINTS = 400  # at most this many points of the training curve are kept in results.json

Progress = Callable[[str], None]


def default_gates() -> Path:
    """The gates the report judges a run by unless ``--gates`` names others (shipped file)."""
    return Path(str(resources.files("gan_eval") / "default_gates.toml"))


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """Options of ``gan-eval report`` (defaults: the embedded default run, < 5 min on 2 cores)."""

    data: str | None = None  # training/reference faces (default: the checkpoint's, else builtin)
    checkpoint: Path | str | None = None  # audit this GENERATOR instead of training one
    generator: GeneratorOptions | None = None  # an external generator's contract options
    generator_batch: int | None = None  # latents per call of an external generator (None: 64
    # on the CPU, 256 on CUDA; never more than n): what a large generator fits in memory
    heldout: str | None = None  # faces of people kept out of training (default: HELDOUT_OF)
    out: Path = DEFAULT_OUT
    steps: int = 300  # training steps of the default DCGAN
    resolution: int = 32
    batch_size: int = 64
    seed: int = 0
    n: int = 1000  # generated faces for the distribution and recognition metrics
    splits: int = DEFAULT_SPLITS  # random halves/quarters behind the split-variance intervals
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    attack_n: int = 8  # faces per set in the robustness sweep
    gates: Path | None = None  # None: default_gates()
    baseline: Path | None = None
    inception_weights: Path | None = None
    device: str | None = None
    restoration: tuple[str, ...] = ("builtin:none",)  # restoration models audited on the
    # held-out faces beside every built-in baseline (needs a held-out set; () skips it)
    restoration_steps: int = int(QUICK_RESTORATION["steps"])  # steps of the restoration GAN
    # trained on the training faces and audited first when ``restoration`` names only
    # built-in methods (0: train none, audit the baselines only)
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name, least in (("steps", 1), ("n", 2), ("attack_n", 1), ("splits", 2),
                            ("restoration_steps", 0)):
            if getattr(self, name) < least:
                option = "--" + name.replace("_", "-")
                raise InputError(f"{option}: got {getattr(self, name)}; need at least {least}")

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


def _train_or_reuse(config: AuditConfig, data: str, *, run: Path, steps: int,
                    task: TaskName, fresh: TrainConfig, what: str) -> tuple[Path, dict[str, Any]]:
    """The run folder ``run`` of ``task``: trained now from ``fresh`` (``what`` says what it
    trains), resumed to ``steps``, or reused when finished."""
    quiet = config.progress is None
    info: dict[str, Any] = {"run": str(run), "reused": False}
    if is_checkpoint(run / CHECKPOINT_DIR):
        done = load_checkpoint(run / CHECKPOINT_DIR, groups=(), task=task)
        trained_on = done.training_data("--data")
        # the same images however DATA is spelled (./faces, faces, an absolute path), and not
        # images that changed since the run was trained
        if open_source(data).content_hash() != done.meta["data"].get("content_hash"):
            raise InputError(f"--out {config.out}: {run} holds a run on {trained_on!r}, whose "
                             f"images differ from --data {data!r}; choose another --out")
        if done.step >= steps:
            config.say(f"reusing the finished run in {run} ({done.step} steps)")
            return run, {**info, "reused": True, "step": done.step}
        config.say(f"resuming {run} from step {done.step} to {steps}")
        train_config = config_for_resume(run, data=data, steps=steps, quiet=quiet)
    else:
        config.say(what)
        train_config = fresh
    start = time.perf_counter()
    train(train_config)
    return run, {**info, "step": steps, "seconds": round(time.perf_counter() - start, 1)}


def _train_dcgan(config: AuditConfig, data: str) -> tuple[Path, dict[str, Any]]:
    """``out/run``: the DCGAN the report audits when it is given no generator."""
    run = config.out / "run"
    fresh = TrainConfig(data=data, out=run, steps=config.steps, resolution=config.resolution,
                        batch_size=config.batch_size, seed=config.seed,
                        quiet=config.progress is None, device=config.device or "auto")
    return _train_or_reuse(config, data, run=run, steps=config.steps,
                           task=TaskName.GENERATION, fresh=fresh,
                           what=f"training a DCGAN on {data}: {config.steps} steps at "
                                f"{config.resolution} px")


RESTORATION_RUN = "restoration-run"
"""The report's restoration GAN: ``out/restoration-run``."""


def _train_restorer(config: AuditConfig, data: str) -> tuple[Path, dict[str, Any]]:
    """``out/restoration-run``: a restoration GAN trained on ``data`` with
    :data:`~gan_eval.gan.training.QUICK_RESTORATION` for ``config.restoration_steps`` steps
    (about a minute on 2 CPU cores at the default 400)."""
    run = config.out / RESTORATION_RUN
    options = {**QUICK_RESTORATION, "steps": config.restoration_steps}
    fresh = TrainConfig(data=data, out=run, seed=config.seed, quiet=config.progress is None,
                        device=config.device or "auto", **options)
    return _train_or_reuse(config, data, run=run, steps=config.restoration_steps,
                           task=TaskName.RESTORATION, fresh=fresh,
                           what=f"training a restoration GAN on {data}: "
                                f"{config.restoration_steps} steps at "
                                f"{options['resolution']} px")


def _trains_restorer(config: AuditConfig, heldout: str | None) -> bool:
    """Whether the report trains its own restoration GAN: a held-out set to audit it on, the
    restoration section on, and no restoration model of the caller's to audit first."""
    return (heldout is not None and bool(config.restoration) and config.restoration_steps > 0
            and config.restoration[0].startswith("builtin:"))


def _gates_for(gates: GateConfig, label: str | None, restoring: bool) -> GateConfig:
    """``gates``, less the restoration gates of the built-in default gates (``label`` None) when
    the report audits no restoration model: those judge the report's restoration GAN, and a run
    without one (no held-out faces, ``restoration_steps`` 0) is judged on the rest. A gates file
    of the caller's is kept whole: its restoration gates then cannot judge (exit 2)."""
    if label is not None or restoring:
        return gates
    restoration = metrics_by(Producer.RESTORATION)
    return replace(gates, gates=tuple(g for g in gates.gates if g.metric not in restoration))


def training_section(run: Path | None, checkpoint: Path) -> dict[str, Any]:
    """Config and loss curve of the run that made ``checkpoint`` (from its metrics.jsonl)."""
    ckpt = load_checkpoint(checkpoint, groups=())
    section: dict[str, Any] = {"checkpoint": str(ckpt.folder), "step": ckpt.step,
                               "config": ckpt.meta.get("config", {})}
    if isinstance(ckpt.meta.get("device"), str):  # what ran (the config may say "auto")
        section["device"] = describe_device(ckpt.meta["device"])
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


def _extractors(config: AuditConfig) -> tuple[tuple[str, ...], list[str]]:
    try:
        resolve_inception_weights(config.inception_weights)
    except MissingAssetError as exc:
        return ("dlib-face",), [f"Inception FID/KID/IS are not computed (dlib-face only). {exc}"]
    return ("dlib-face", "inception"), []


def _relative_to(out: Path, *records: dict[str, Any]) -> None:
    """Add each path's location relative to the report folder (``relative``), so that a report
    folder moved with its run can still be redrawn with faces."""
    for record in records:
        if Path(record["data"]).is_absolute():
            record["relative"] = os.path.relpath(record["data"], out.resolve())


PARTS: tuple[Producer, ...] = (Producer.EVALUATE, Producer.RECOGNITION, Producer.ATTACK)
"""The analyses of a generator's audit, in order (restoration audits a restoration model:
``gan-eval restoration``)."""


def audit_generator(
    generated: ImageSource,
    data: str,
    config: AuditConfig,
    *,
    parts: tuple[Producer, ...] = PARTS,
    extractors: tuple[str, ...] | None = None,
) -> Results:
    """Distribution metrics, recognition tests and the robustness sweep of a generator's
    samples (``generated``) against ``data``, as one :class:`Results` (no training section, no
    gates).

    ``extractors`` default: dlib-face, plus Inception when its weights are installed (otherwise
    a note says how to enable it).
    """
    resolution = generated.resolution[0]
    reference = open_source(data, resolution=resolution)
    notes: list[str] = []
    if extractors is None:
        extractors, notes = _extractors(config)
    done: dict[str, Results] = {}
    if Producer.EVALUATE in parts:
        config.say(f"distribution metrics on {', '.join(extractors)}: {len(generated)} generated "
                   f"vs {len(reference)} reference faces")
        done["evaluate"] = evaluate(generated, reference, EvaluateConfig(
            extractors=extractors, splits=config.splits, seed=config.seed,
            device=config.device, inception_weights=config.inception_weights,
            progress=config.progress is not None))
        notes += done["evaluate"].provenance.get("notes", [])
    if Producer.RECOGNITION in parts:
        config.say("recognition tests: leakage, identity diversity, faceness")
        done["recognition"] = recognition(generated, reference, RecognitionConfig(
            heldout=config.heldout or HELDOUT_OF.get(data), seed=config.seed,
            device=config.device, progress=config.progress is not None))
    if Producer.ATTACK in parts:
        config.say(f"robustness sweep: {', '.join(config.attacks)} on {config.attack_n} faces per"
                   " set, and corruption curves")
        done["attack"] = attack(generated, AttackConfig(
            attacks=config.attacks, n=config.attack_n, reference=data, seed=config.seed,
            device=config.device, progress=config.progress))
    return Results(
        provenance=report_provenance(done, {
            "command": "report",
            "title": "gan-eval report",
            "subject": subject(generated, data),
            "seed": config.seed,
            "data": {"generated": generated.record(), "reference": reference.record()},
            "notes": notes,
        }),
        metrics=[m for part in done.values() for m in part.metrics],
        omitted=[o for part in done.values() for o in part.omitted],
        recognition=done["recognition"].recognition if "recognition" in done else {},
        robustness=done["attack"].robustness if "attack" in done else {},
    )


def subject(generated: ImageSource, data: str) -> str:
    """The report's header line: what was audited — a checkpoint and the data it was trained on
    (from the checkpoint itself), or an external generator's spec, kind and sha256 — and the
    real faces it was compared with. An external generator names no training data, so none is
    claimed."""
    record = generated.record()
    external = record.get("generator")
    if isinstance(external, dict):
        files = list((external.get("files_sha256") or {}).values())
        digest = files[0] if len(files) == 1 else external.get("weights_sha256") or \
            record.get("content_hash") or ""
        what = f"{external.get('spec')} · {external.get('kind')} generator, sha256 {digest[:12]}…"
        return f"{what} · compared with {data}"
    meta = getattr(getattr(generated, "checkpoint", None), "meta", None) or {}
    trained_on = (meta.get("data") or {}).get("data")
    digest = str(meta.get("state_sha256", ""))[:12]
    what = f"{generated.data} (checkpoint, state sha256 {digest}…)" if digest else generated.data
    if trained_on is None:
        return f"{what} · compared with {data}"
    if trained_on == data:
        return f"{what} · trained on and compared with {data}"
    return f"{what} · trained on {trained_on} · compared with {data}"


_PER_PART = ("created", "command", "notes", "seed", "gan_eval", "torch", "packages",
             "optional_packages", "system")
"""Provenance keys every part repeats: said once, at the report's level."""


def report_provenance(parts: dict[str, Results], head: dict[str, Any]) -> dict[str, Any]:
    """One provenance for the report, folded from its parts: the environment, seed and notes
    once; the generated and reference records once under ``data`` (a part keeps only records of
    its own: the held-out faces, the attack's subsets); the devices that ran and the weights'
    sha256 once each; no empty entries. ``head`` gives the report-level keys (command, title,
    subject, seed, data, notes)."""
    folded = provenance(**head)
    data = folded["data"]
    devices: dict[str, None] = {}
    weights: dict[str, str] = {}
    kept: dict[str, dict[str, Any]] = {}
    for name, part in parts.items():
        own: dict[str, Any] = {}
        for key, value in part.provenance.items():
            if key in _PER_PART:
                continue
            if key == "device":
                devices[str(value)] = None
            elif key == "weights" and isinstance(value, dict):
                weights.update(value)
            elif key == "data" and isinstance(value, dict):
                for role, record in value.items():
                    if role not in data or not _same_record(record, data[role]):
                        own.setdefault("data", {})[role] = record
            elif key == "extractors" and isinstance(value, dict):
                for extractor, info in value.items():
                    rest = dict(info)
                    if rest.get("device") is not None:
                        devices[str(rest.pop("device"))] = None
                    if rest.get("weights_sha256") is not None:
                        weights[extractor] = rest.pop("weights_sha256")
                    if rest:
                        own.setdefault("extractors", {})[extractor] = rest
            elif value not in (None, "", [], {}):
                own[key] = value
        if own:
            kept[name] = own
    if devices:
        names = list(devices)
        folded["device"] = describe_device(names[0]) if len(names) == 1 else \
            ", ".join(describe_device(d) for d in names)
    if weights:
        folded["weights_sha256"] = weights
    folded["parts"] = kept
    return {k: v for k, v in folded.items() if v not in (None, "", [], {})}


def _same_record(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two records of the same data (a part's copy lacks the report's ``relative`` path)."""
    return {k: v for k, v in a.items() if k != "relative"} == \
        {k: v for k, v in b.items() if k != "relative"}


def judge(results: Results, gates: GateConfig, baseline: Results | None, label: str,
          baseline_source: str = "--baseline") -> bool:
    """Run the gates on ``results`` and record them in ``results.gates`` (with the verdict:
    pass, fail or cannot judge); True when all pass."""
    checks = evaluate_gates(gates, results, baseline, source="results",
                            baseline_source=baseline_source)
    passed = all(c.passed for c in checks)
    results.gates = {"config": label, "passed": passed, "verdict": verdict(checks),
                     "checks": [vars(c) for c in checks]}
    return passed


def run_audit(config: AuditConfig) -> Path:
    """Run the whole pipeline and write ``config.out``; returns the path of index.html."""
    gates = load_config(config.gates or default_gates())  # a bad config fails before any work
    baseline = Results.load(config.baseline) if config.baseline is not None else None
    held_source = open_heldout(config.heldout) if config.heldout is not None else None
    # (so does a --heldout that cannot be opened)
    run: Path | None = None
    train_info: dict[str, Any] = {}
    native = True
    if config.checkpoint is not None and classify(str(config.checkpoint)) \
            is not SpecKind.CHECKPOINT:
        native = False  # an external generator: no run, no training data of its own
        spec = str(config.checkpoint)
        data = data_for_external(spec, config.data)
    elif config.checkpoint is not None:
        given = load_checkpoint(config.checkpoint, groups=())
        spec = str(given.folder)
        data = config.data or given.training_data("--data")
    else:
        data = config.data or DEFAULT_DATA
        _heldout_is_not_training_data(held_source, data)  # before training, too
        spec = str(config.out / "run" / CHECKPOINT_DIR)
    heldout = config.heldout or HELDOUT_OF.get(data)
    restores = bool(config.restoration) and heldout is not None
    trains_restorer = _trains_restorer(config, heldout)
    gates = _gates_for(gates, None if config.gates is None else str(config.gates),
                       restores and (trains_restorer
                                     or not config.restoration[0].startswith("builtin:")))
    if baseline is not None:  # an unusable baseline fails before any work, too
        check_baseline(gates, baseline, baseline_source=str(config.baseline))
    if config.checkpoint is None:
        run, train_info = _train_dcgan(config, data)
    generated = open_generator(spec, n=config.n, seed=config.seed, device=config.device,
                               options=config.generator, batch_size=config.generator_batch)
    results = audit_generator(generated, data, config)
    if restores and isinstance(heldout, str):
        models = config.restoration
        restorer_info: dict[str, Any] = {}
        if trains_restorer:
            restorer, restorer_info = _train_restorer(config, data)
            models = (str(restorer / CHECKPOINT_DIR), *models)
        config.say(f"restoration: {models[0]} and the baselines on the held-out faces {heldout}")
        part = restoration_part(models, heldout, config.out, seed=config.seed,
                                device=config.device, progress=config.progress,
                                gated=not models[0].startswith("builtin:"))
        results.restoration = part.restoration
        if restorer_info:
            results.restoration["trained"] = restorer_info
        results.metrics += part.metrics
        results.provenance["notes"] = [*results.provenance.get("notes", []),
                                       *part.restoration.get("notes", [])]
    section = (training_section(run, Path(spec)) if native else
               {"checkpoint": generated.record()["data"],
                "missing": f"no training curve: {spec} is an external generator"})
    results.training = {**section, **train_info,
                        "samples": generated.head(SAMPLE_GRID).record()}
    _relative_to(config.out, *results.provenance["data"].values(), results.training["samples"])
    judge(results, gates, baseline, str(config.gates or "built-in default gates"),
          str(config.baseline))
    config.say("writing the report")
    return render_report(results, config.out, device=config.device)  # results.json with it


def _heldout_is_not_training_data(heldout: ImageSource | None, data: str) -> None:
    """:class:`InputError` naming --heldout when it is the training data itself (the same
    content); held-out images among other ones are found by recognition, after embedding."""
    if heldout is not None and heldout.content_hash() == open_source(data).content_hash():
        raise InputError(f"--heldout {heldout.data}: the same images as the training data "
                         f"(--data {data}); held-out faces must show people who are not in the "
                         "training set")


def _gate_extractor(metric: str, extractor: str | None) -> str:
    """The extractor a gate's metric is computed on: the one it names, else Inception for
    metrics that need class logits, else dlib-face."""
    if extractor is not None:
        return extractor
    return "inception" if metric == "is" else "dlib-face"


def gate_generator(generator: Path | str, gates: GateConfig, config: AuditConfig) -> Results:
    """``gan-eval gate GENERATOR``: the parts of the audit the gates need, on the generator's
    samples against ``config.data`` (default for a checkpoint: the training data it names; an
    external generator needs it)."""
    if classify(str(generator)) is SpecKind.CHECKPOINT:
        ckpt = load_checkpoint(generator, groups=())
        spec = str(ckpt.folder)
        data = config.data or ckpt.training_data("--data")
    else:
        spec = str(generator)
        data = data_for_external(spec, config.data)
    named = {g.metric for g in gates.gates}
    restoration = sorted(named & metrics_by(Producer.RESTORATION))
    if restoration:
        raise InputError(f"--config: {', '.join(restoration)} measure a restoration model, not a "
                         "generator: run `gan-eval restoration MODEL --data DATA --json "
                         "RESULTS.json` and gate that file")
    parts = tuple(p for p in PARTS if named & metrics_by(p)) or (Producer.EVALUATE,)
    wanted = {_gate_extractor(g.metric, g.extractor) for g in gates.gates
              if g.metric in metrics_by(Producer.EVALUATE)}
    extractors = tuple(name for name in EXTRACTORS if name in wanted) or ("dlib-face",)
    generated = open_generator(spec, n=config.n, seed=config.seed, device=config.device,
                               options=config.generator, batch_size=config.generator_batch)
    return audit_generator(generated, data, config, parts=parts, extractors=extractors)


# ----------------------------------------------------------------------------------------------
# restoration: gan-eval restoration --out, and the report's restoration section
# ----------------------------------------------------------------------------------------------

def write_restoration_report(run: RestorationRun, out: Path, *, gates: Path | None = None,
                             label: str | None = None) -> Path:
    """``gan-eval restoration --out DIR``: the tiles and swap gallery (``plots/``), the gates'
    verdict (shown on the page; the exit code stays 0), ``results.json`` and ``index.html``.
    Returns index.html."""
    results = run.results
    out.mkdir(parents=True, exist_ok=True)
    write_pictures(run.tiles, results.restoration, out)
    if gates is not None:
        judge(results, load_config(gates), None, label or str(gates))
    return render_report(results, out)  # results.json committed with the page


REPORT_RESTORATION_FACES = 100
"""The report's restoration section uses at most this many held-out faces (minutes on 2 cores)."""


def restoration_part(models: tuple[str, ...], data: str, out: Path, *, seed: int = 0,
                     device: str | None = None, progress: Progress | None = None,
                     gated: bool = False) -> Results:
    """The restoration section of ``gan-eval report``: ``models`` (default report:
    ``builtin:none``; a trained restoration checkpoint goes first) and every built-in baseline
    on the first :data:`REPORT_RESTORATION_FACES` faces of ``data`` (the held-out faces),
    pictures written under ``out/plots``. The returned results
    hold the section, and the first model's catalogue metrics only when ``gated`` (a trained
    restoration model, not a baseline, is what gates should judge)."""
    config = RestorationConfig(seed=seed, device=device, progress=progress, tile_faces=1,
                               n=REPORT_RESTORATION_FACES)
    run = audit_restoration(models, data, config)
    write_pictures(run.tiles, run.results.restoration, out)
    if not gated:
        run.results.metrics = []
    return run.results
