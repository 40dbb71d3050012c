"""``attack(target, ...)``: adversarial and corruption robustness of a face GAN's outputs.

Two models can be attacked (``model=``):

``recognizer`` (default)
    The dlib face network (:func:`~gan_eval.robustness.models.recognizer_model`). Goals:
    *dodging* (the face stops matching its own clean embedding, distance > 0.6) and
    *impersonation* (it comes to match another face of the same set, distance ≤ 0.6; the target
    is drawn at random, seeded, among the faces it does not match when clean). Attacks run on
    each set of faces side by side: for a checkpoint TARGET, ``generated`` (its samples) and
    ``real`` (the training data named in its checkpoint.json, or ``reference``, resized to the
    checkpoint's resolution); for a DATA TARGET, ``data`` (and ``real`` when ``reference`` is
    given). Corruptions (:mod:`~gan_eval.robustness.corruptions`) are measured on the same sets.

``discriminator``
    A checkpoint's D as a real/fake classifier (logit > 0 ⇔ real): can a perturbation within ε
    make D call a generated image real (``generated_as_real``) and a real one fake
    (``real_as_fake``)? The rate at ε = 0 is D's clean error. Needs a checkpoint TARGET.

Attacks and ε values: :mod:`~gan_eval.robustness.attacks` (registry, ε units and rules).
Everything lands in the ``robustness`` section of the returned :class:`Results`; see
:func:`attack` for its layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gan_eval.data import ImageSource
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.faces import MATCH_THRESHOLD, is_match
from gan_eval.features.dlib_face import dlib_weights_sha256, embed_faces
from gan_eval.generators.external import ExternalSource
from gan_eval.metrics.intervals import rate_interval
from gan_eval.results import Metric, Results, provenance
from gan_eval.robustness.attacks import (
    DEFAULT_ATTACKS,
    AttackOptions,
    AttackSpec,
    Norm,
    TargetModel,
    get_attacks,
    plan_epsilons,
)
from gan_eval.robustness.corruptions import CORRUPTIONS, embedding_drift
from gan_eval.robustness.criteria import Dodging, EmbeddingCriterion, Impersonation
from gan_eval.robustness.models import (
    FAKE,
    REAL,
    discriminator_model,
    external_discriminator_model,
    recognizer_model,
)
from gan_eval.robustness.sweep import AttackOutcome, run_attack, size_summary
from gan_eval.seeding import torch_generator
from gan_eval.sources import as_source

GOALS = ("dodging", "impersonation")
"""Recognizer goals, in report order."""

DISCRIMINATOR_GOALS = {"generated": ("generated_as_real", FAKE), "real": ("real_as_fake", REAL)}
"""Set → (goal name, true class) for discriminator attacks."""

EXTRACTOR = "dlib-face"
UNITS = ("ε and perturbation sizes in [0, 1] pixel units (foolbox bounds (0, 1)) at the images' "
         "own resolution; L2 over all 3×H×W values")

Progress = Callable[[str], None]


def _choices(kind: type[TargetModel]) -> str:
    return ", ".join(m.value for m in kind)


def subset_indices(total: int, n: int, seed: int) -> list[int]:
    """Indices of the ``n`` images taken from a source of ``total`` (all when it has fewer):
    a random subset drawn with ``torch_generator(seed, "attack-subset")``, in increasing order."""
    if total <= n:
        return list(range(total))
    gen = torch_generator(seed, "attack-subset")
    return sorted(torch.randperm(total, generator=gen)[:n].tolist())


def _subset(source: Any, n: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    indices = subset_indices(len(source), n, seed)
    return source.read(indices), indices


def _load_sets(
    target: ImageSource, *, reference: str | ImageSource | None, n: int, seed: int,
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """(images per set name, source record per set): a generator's ``n`` samples and ``n``
    real faces (``reference``, else the training data its checkpoint names), or ``n`` images of
    image data (and of ``reference`` when given)."""
    sets: dict[str, torch.Tensor] = {}
    info: dict[str, dict[str, Any]] = {}
    real: ImageSource | None = None
    checkpoint = getattr(target, "checkpoint", None)
    if hasattr(target, "generator"):
        samples = target.head(n)  # image i depends on (generator, seed, i) only
        sets["generated"] = samples.load()
        info["generated"] = {**samples.record(),
                             "role": f"samples of the generator (seed {seed})"}
        role = "--reference"
        if reference is None:
            if checkpoint is None:
                raise InputError(f"{target.data}: names no training data; pass --reference DATA")
            reference, role = (checkpoint.training_data("--reference"),
                               "training data named in checkpoint.json")
        try:
            real = as_source(reference, "--reference", resolution=target.resolution[0])
        except InputError as exc:
            raise InputError(f"reference data of {target.data}: {exc}; pass --reference DATA"
                             ) from exc
    else:
        sets["data"], indices = _subset(target, n, seed)
        info["data"] = {**target.record(), "role": "TARGET", "indices": indices}
        if reference is not None:
            real = as_source(reference, "--reference", resolution=target.resolution[0])
            role = "--reference"
    if real is not None:
        sets["real"], indices = _subset(real, n, seed)
        info["real"] = {**real.record(), "role": role, "indices": indices}
    for name, images in sets.items():
        info[name]["n"] = int(images.shape[0])
        info[name]["resolution"] = [int(images.shape[2]), int(images.shape[3])]
    return sets, info


def impersonation_targets(
    attacked: torch.Tensor, clean: torch.Tensor, threshold: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows attacked, target row per attacked row): a random face each clean face does not match.

    ``attacked``: the attacked model's embeddings of the clean images (B×128), ``clean``: the
    canonical ones that serve as targets. Candidates of row i are the other rows j it does not
    match (``‖attacked_i − clean_j‖ > threshold``), so nothing succeeds at ε = 0; one is drawn
    with ``torch_generator(seed, "impersonation-targets")``. Rows without a candidate are left
    out.
    """
    dist = torch.cdist(attacked.double().cpu(), clean.double().cpu())
    dist.fill_diagonal_(0.0)
    gen = torch_generator(seed, "impersonation-targets")
    rows, targets = [], []
    for i in range(clean.shape[0]):
        candidates = torch.nonzero(~is_match(dist[i], threshold)).flatten()
        if candidates.numel():
            rows.append(i)
            pick = torch.randint(candidates.numel(), (1,), generator=gen)
            targets.append(int(candidates[pick]))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def _record(spec: AttackSpec, outcome: AttackOutcome, *, goal: str, set_name: str,
            options: AttackOptions) -> dict[str, Any]:
    record: dict[str, Any] = {
        "attack": spec.name,
        "norm": spec.norm.value,
        "kind": spec.kind.value,
        "goal": goal,
        "set": set_name,
        "n": int(outcome.success.shape[1]),
        "epsilons": list(outcome.epsilons),
        "success_rate": outcome.rates(),
        "successes": [int(s) for s in outcome.success.sum(dim=1)],
        "settings": spec.settings(options),
        "seeds": list(outcome.seeds),
    }
    if spec.minimizes:
        record["success_rate_meaning"] = (
            "foolbox's success of the minimal perturbation scaled down to each ε")
        record["perturbation"] = {"norm": spec.norm.value, **size_summary(outcome)}
    return record


def _attack_recognizer(
    sets: dict[str, torch.Tensor], specs: list[AttackSpec], plan: dict[str, tuple[float, ...]],
    *, goals: Sequence[str], options: AttackOptions, threshold: float, batch_size: int,
    seed: int, device: torch.device, corruptions: bool, progress: Progress,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    embedder = recognizer_model(device)
    records: list[dict[str, Any]] = []
    corruption_records: list[dict[str, Any]] = []
    targets_info: dict[str, Any] = {}
    for set_name, images in sets.items():
        x_all = images.to(device).float().div_(255.0)
        clean = embed_faces(images, device=device)
        for goal in goals:
            if goal == "dodging":
                rows = torch.arange(images.shape[0])
                references = clean
                make: type[EmbeddingCriterion] = Dodging
            else:
                with torch.no_grad():
                    attacked = torch.cat([embedder(x_all[i : i + batch_size])
                                          for i in range(0, x_all.shape[0], batch_size)])
                rows, picks = impersonation_targets(attacked, clean, threshold, seed)
                references = clean[picks.to(clean.device)]
                make = Impersonation
                targets_info[set_name] = {"rows": rows.tolist(), "targets": picks.tolist()}
                if rows.numel() == 0:
                    for spec in specs:
                        records.append({
                            "attack": spec.name, "norm": spec.norm.value, "kind": spec.kind.value,
                            "goal": goal, "set": set_name, "n": 0, "skipped": True,
                            "reason": "every face matches every other face of the set: no "
                                      "impersonation target"})
                    continue
            x = x_all[rows.to(device)]

            def problem(batch: slice, refs: torch.Tensor = references,
                        make: type[EmbeddingCriterion] = make) -> tuple[Any, Any]:
                criterion = make(refs[batch], threshold=threshold)
                return criterion.as_classification(embedder)

            for spec in specs:
                progress(f"{spec.name} {goal} on {set_name} ({x.shape[0]} faces)")
                outcome = run_attack(
                    spec.build(options), x, problem, plan[spec.name],
                    minimization=spec.minimizes, batch_size=batch_size, seed=seed,
                    purpose=f"attack/{spec.name}/{goal}/{set_name}",
                )
                records.append(_record(spec, outcome, goal=goal, set_name=set_name,
                                       options=options))
        if corruptions:
            progress(f"corruptions on {set_name}")
            for rec in embedding_drift(images, clean_embeddings=clean, threshold=threshold,
                                       seed=seed, device=device):
                corruption_records.append({"set": set_name, **rec})
    return records, corruption_records, targets_info


def _attack_discriminator(
    sets: dict[str, torch.Tensor], d_model: Any, specs: list[AttackSpec],
    plan: dict[str, tuple[float, ...]], *, options: AttackOptions, batch_size: int, seed: int,
    device: torch.device, progress: Progress,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import foolbox as fb

    records: list[dict[str, Any]] = []
    clean: dict[str, Any] = {}
    for set_name, images in sets.items():
        goal, label = DISCRIMINATOR_GOALS[set_name]
        x = images.to(device).float().div_(255.0)
        labels = torch.full((x.shape[0],), label, dtype=torch.long, device=device)
        with torch.no_grad():
            logits = torch.cat([d_model(x[i : i + batch_size])[:, 1]
                                for i in range(0, x.shape[0], batch_size)]).cpu().double()
        clean[set_name] = {"called_real": float((logits > 0).double().mean()),
                           "logit_mean": float(logits.mean()), "n": int(x.shape[0])}

        def problem(batch: slice, labels: torch.Tensor = labels) -> tuple[Any, Any]:
            return d_model, fb.criteria.Misclassification(labels[batch])

        for spec in specs:
            progress(f"{spec.name} {goal} ({x.shape[0]} images)")
            outcome = run_attack(
                spec.build(options), x, problem, plan[spec.name], minimization=spec.minimizes,
                batch_size=batch_size, seed=seed, purpose=f"attack/{spec.name}/{goal}/{set_name}",
            )
            records.append(_record(spec, outcome, goal=goal, set_name=set_name, options=options))
    return records, clean


def _headline(records: list[dict[str, Any]], goal: str, set_name: str) -> dict[str, Any] | None:
    """The fixed-ε record to summarize: pgd, else another L∞ attack, else any fixed-ε one."""
    found = [r for r in records if r["goal"] == goal and r["set"] == set_name
             and r["kind"] == "fixed-epsilon" and not r.get("skipped")]
    found.sort(key=lambda r: (r["attack"] != "pgd", r["norm"] != Norm.LINF.value))
    return found[0] if found else None


def _at_epsilon(record: dict[str, Any]) -> tuple[float, float, int]:
    """(ε, rate, successes) at 8/255 when measured (L∞), else at the largest ε."""
    eps = record["epsilons"]
    k = len(eps) - 1
    if record["norm"] == Norm.LINF.value:
        close = [i for i, e in enumerate(eps) if abs(e - 8 / 255) < 1e-9]
        k = close[0] if close else k
    return eps[k], record["success_rate"][k], record["successes"][k]


def _metrics(records: list[dict[str, Any]], corruption_records: list[dict[str, Any]],
             sets: dict[str, torch.Tensor], goal: str, name: str, extractor: str) -> list[Metric]:
    primary = "generated" if "generated" in sets else "data" if "data" in sets else "real"
    n_gen = int(sets[primary].shape[0]) if primary != "real" else 0
    n_ref = int(sets["real"].shape[0]) if "real" in sets else 0
    metrics: list[Metric] = []
    head = _headline(records, goal, primary)
    if head is not None:
        eps, rate, hits = _at_epsilon(head)
        details: dict[str, Any] = {"attack": head["attack"], "norm": head["norm"],
                                   "epsilon": eps, "set": primary}
        for other in sets:
            rec = _headline(records, goal, other)
            if other != primary and rec is not None and rec["attack"] == head["attack"]:
                details[other] = dict(zip(("epsilon", "value"), _at_epsilon(rec)[:2],
                                          strict=True))
        iv = rate_interval(hits, head["n"])
        assert iv.estimate == rate, "the headline rate is its successes over its n"
        metrics.append(Metric.of(name, extractor, iv, n_generated=n_gen, n_reference=n_ref,
                                 details=details))
    mine = [r for r in corruption_records if r["set"] == primary]
    if mine:
        per_set = {}
        for set_name in sets:
            rates = [m for r in corruption_records if r["set"] == set_name
                     for m in r["match_rate"]]
            per_set[set_name] = float(np.mean(rates)) if rates else None
        metrics.append(Metric.of(
            "corruption_match_rate", extractor,
            float(np.mean([m for r in mine for m in r["match_rate"]])),
            no_interval="a mean of match rates over corruption cells that share their images: "
            "the cells' Wilson intervals (in robustness.corruptions) do not combine into one",
            n_generated=n_gen, n_reference=n_ref,
            details={"set": primary, "mean_over": f"{len(mine)} corruptions × 5 severities",
                     "by_set": per_set}))
    return metrics


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """Options of :func:`attack` (validated; bad values raise :class:`InputError`).

    ``attacks``: registered names (:data:`~gan_eval.robustness.attacks.ATTACKS`); default
    :data:`~gan_eval.robustness.attacks.DEFAULT_ATTACKS` (fgsm, pgd: seconds per set), the slow
    minimization attacks (cw, deepfool: minutes per set) only when named; ``epsilons``:
    numbers, fractions or norm-tagged strings under the rules of
    :mod:`~gan_eval.robustness.attacks` (default grids per norm). ``goals``: recognizer goals
    (dodging, impersonation). ``corruptions``: also measure embedding drift under noise, blur and
    JPEG (recognizer only). ``options``: steps and step sizes of the attacks. Images are attacked
    ``batch_size`` at a time on ``device`` (default: CUDA when available); ``seed`` fixes subsets,
    samples, impersonation targets, PGD's random starts and the noise.
    """

    model: TargetModel = TargetModel.RECOGNIZER
    attacks: tuple[str, ...] = DEFAULT_ATTACKS  # fgsm, pgd; cw and deepfool are slow: opt in
    epsilons: tuple[float | str, ...] | None = None
    n: int = 32  # images per set (a seeded subset of image data, samples of a generator)
    reference: str | ImageSource | None = None  # real faces (default for a checkpoint: its data)
    goals: tuple[str, ...] = GOALS
    corruptions: bool = True
    options: AttackOptions = field(default_factory=AttackOptions)
    threshold: float = MATCH_THRESHOLD
    batch_size: int = 32
    seed: int = 0
    device: str | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "model", TargetModel(self.model))
        except ValueError:
            raise InputError(
                f"--model {self.model!r}: unknown model; choose from {_choices(TargetModel)}"
            ) from None
        for goal in self.goals:
            if goal not in GOALS:
                raise InputError(f"goal {goal!r}: unknown; choose from {', '.join(GOALS)}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise InputError(f"--count {self.n!r}: expected a positive number of images")
        if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                or self.batch_size < 1):
            raise InputError(f"--batch-size {self.batch_size!r}: expected a positive integer")
        if not self.threshold > 0:
            raise InputError(f"threshold {self.threshold!r}: expected a positive distance")


def attack(target: str | ImageSource, config: AttackConfig | None = None) -> Results:
    """Attack the face recognizer or a generator's discriminator on ``target``'s images.

    ``target``: a GENERATOR or any DATA string (see :func:`gan_eval.open_source`), or an opened
    source; ``config.n`` images per set (a seeded random subset of image data, ``n`` samples of
    a generator).

    Returns :class:`Results` whose ``robustness`` section holds ``model``, ``threshold``,
    ``units``, ``sets`` (source record, n, resolution, subset ``indices`` per set),
    ``attacks`` (one record per attack × goal × set: ``norm``, ``kind``, ``n``, ``epsilons``,
    ``success_rate``, ``successes``, foolbox ``settings``, the torch ``seeds`` each batch ran
    under, and for minimization attacks ``perturbation``: sizes, median, mean, quantiles,
    histogram), ``impersonation_targets`` (rows and target rows per set), ``corruptions`` (per
    set × corruption: ``severities``, ``drift_mean``, ``drift_median``, ``match_rate``) and, for
    the discriminator, ``clean`` (fraction called real per set). ``metrics``:
    ``dodging_success`` (or ``discriminator_fooled``) at ε = 8/255 for pgd on the TARGET's
    images, with the other set's value in ``details``, and ``corruption_match_rate``.

    Raises :class:`InputError` (exit 2) for an unknown model, attack or goal, a bad ε (see the
    rules), ``n < 1``, and ``model="discriminator"`` on anything but a checkpoint.
    """
    config = config or AttackConfig()
    report = config.progress or (lambda message: None)
    kind = TargetModel(config.model)
    specs = get_attacks(config.attacks)
    plan = plan_epsilons(specs, config.epsilons)
    dev = resolve_device(config.device)
    seed, threshold = config.seed, config.threshold
    source = as_source(target, "TARGET", n=config.n, seed=seed, device=dev,
                       batch_size=config.batch_size)
    checkpoint = getattr(source, "checkpoint", None)
    if kind is TargetModel.RECOGNIZER and isinstance(source, ExternalSource) \
            and source.options.discriminator is not None:
        raise InputError(f"--discriminator {source.options.discriminator}: a discriminator is "
                         "attacked only with --model discriminator (this run attacks the face "
                         "recognizer)")
    external_d = (source.open_discriminator() if kind is TargetModel.DISCRIMINATOR
                  and isinstance(source, ExternalSource) else None)
    if kind is TargetModel.DISCRIMINATOR and checkpoint is None and external_d is None:
        raise InputError(
            f"{source.data}: --model discriminator needs a generator checkpoint (a run or "
            "checkpoint folder with checkpoint.json written by `gan-eval train`), because the "
            "discriminator is stored only there, or an external generator with "
            "--discriminator SPEC; a folder or DATA can be attacked with --model recognizer"
        )
    sets, set_info = _load_sets(source, reference=config.reference, n=config.n, seed=seed,
                                device=dev)

    section: dict[str, Any] = {
        "model": kind.value,
        "units": UNITS,
        "sets": set_info,
        "epsilon_rules": "gan_eval.robustness.attacks (module docstring)",
    }
    prov_extra: dict[str, Any] = {}
    if kind is TargetModel.RECOGNIZER:
        records, corruption_records, targets = _attack_recognizer(
            sets, specs, plan, goals=config.goals, options=config.options, threshold=threshold,
            batch_size=config.batch_size, seed=seed, device=dev, corruptions=config.corruptions,
            progress=report,
        )
        section.update(
            network=EXTRACTOR,
            threshold=threshold,
            goals={
                "dodging": f"embedding distance to the clean face's embedding > {threshold:g}",
                "impersonation": f"embedding distance to a target face of the same set ≤ "
                                 f"{threshold:g} (target: random face not matched when clean)",
            },
            attacks=records,
            corruptions=corruption_records,
            corruption_settings={c.name: {"parameter": c.parameter,
                                          "severities": list(c.severities)}
                                 for c in CORRUPTIONS.values()},
            impersonation_targets=targets,
        )
        metrics = _metrics(records, corruption_records, sets, "dodging", "dodging_success",
                           EXTRACTOR)
        prov_extra["weights"] = {EXTRACTOR: dlib_weights_sha256()}
    else:
        if checkpoint is not None:
            d_model, _ = discriminator_model(checkpoint.folder, dev)
        else:  # an external generator's --discriminator (refused above when missing)
            assert external_d is not None and isinstance(source, ExternalSource)
            d_module, prov_extra["discriminator"] = external_d
            d_model = external_discriminator_model(
                d_module, channels=source.source_channels, resolution=source.resolution[0],
                input_range=source.output_range, device=dev,
                name=f"--discriminator {source.options.discriminator}")
        records, clean = _attack_discriminator(
            sets, d_model, specs, plan, options=config.options, batch_size=config.batch_size,
            seed=seed, device=dev, progress=report,
        )
        section.update(
            network="discriminator",
            decision="real ⇔ D's logit > 0",
            goals={"generated_as_real": "a generated image is called real (logit > 0)",
                   "real_as_fake": "a real image is called fake (logit ≤ 0)"},
            clean=clean,
            attacks=records,
        )
        metrics = _metrics(records, [], sets, "generated_as_real", "discriminator_fooled",
                           "discriminator")
    if checkpoint is not None:
        prov_extra["checkpoint"] = {"path": str(checkpoint.folder), "step": checkpoint.step,
                                    "state_sha256": checkpoint.meta["state_sha256"]}
    prov = provenance(command="attack", seed=seed, device=str(dev), data=set_info, **prov_extra)
    return Results(provenance=prov, metrics=metrics, robustness=section)
