"""Robustness: our numbers are foolbox's, the criteria mean what they say, bad input exits 2.

Reference tests call the foolbox attack directly on the same wrapped model, criterion, inputs,
ε list and seed, and require the reported rates to be equal (not close: the same computation).
Everything runs on 4 builtin LFW faces (25×25) with 1–2 attack steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import foolbox as fb
import pytest
import torch
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.features.dlib_face import embed_faces
from gan_eval.report.tables import attack_table
from gan_eval.results import Results
from gan_eval.robustness import (
    ATTACKS,
    AttackConfig,
    AttackOptions,
    Dodging,
    Impersonation,
    attack,
    recognizer_model,
)
from gan_eval.robustness.models import MATCH, NO_MATCH
from gan_eval.robustness.sweep import run_attack, seeded
from gan_eval.sources import open_source

EPS = [0.0, 4 / 255, 32 / 255]
CPU = torch.device("cpu")
runner = CliRunner()


def _record(results: Results, name: str, goal: str = "dodging", set_name: str = "data") -> Any:
    (found,) = [r for r in results.robustness["attacks"]
                if r["attack"] == name and r["goal"] == goal and r["set"] == set_name]
    return found


@pytest.fixture(scope="module")
def fixed_run() -> Results:
    return attack("builtin:lfw-subset", AttackConfig(
        n=4, attacks=("fgsm", "pgd"), epsilons=EPS, goals=("dodging",), corruptions=False,
        options=AttackOptions(steps=2), seed=5, device="cpu"))


@pytest.fixture(scope="module")
def faces(fixed_run: Results) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's uint8 faces and their [0, 1] float form."""
    indices = fixed_run.robustness["sets"]["data"]["indices"]
    images = open_source("builtin:lfw-subset").read(indices)
    return images, images.float() / 255


@pytest.fixture(scope="module")
def clean(faces: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return embed_faces(faces[0])


def _direct(name: str, x: torch.Tensor, criterion: Any, eps: list[float | None],
            seed: int, options: AttackOptions | None = None) -> tuple[Any, Any, torch.Tensor]:
    """foolbox's own call: attack(model, x, Misclassification, epsilons) under ``seed``."""
    model, labels = criterion.as_classification(recognizer_model(CPU))
    with seeded(seed, CPU):
        return ATTACKS[name].build(options)(model, x, labels, epsilons=eps)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_fixed_epsilon_rates_are_foolboxs(
    name: str, fixed_run: Results, faces: Any, clean: torch.Tensor
) -> None:
    record = _record(fixed_run, name)
    assert record["epsilons"] == EPS and record["n"] == 4
    _, _, success = _direct(name, faces[1], Dodging(clean), EPS, record["seeds"][0],
                            AttackOptions(steps=2))
    assert success.shape == (3, 4)
    assert record["success_rate"] == success.float().mean(dim=1).tolist()
    assert record["settings"]["random_start"] is (name == "pgd")


def test_no_success_at_zero_and_monotone_in_epsilon(fixed_run: Results) -> None:
    for name in ("fgsm", "pgd"):
        rates = _record(fixed_run, name)["success_rate"]
        assert rates[0] == 0.0, name
    fgsm = _record(fixed_run, "fgsm")["success_rate"]
    assert fgsm == sorted(fgsm)
    assert fgsm[-1] > 0  # one step of 32/255 moves most 25×25 faces past the threshold
    assert _record(fixed_run, "pgd")["success_rate"][-1] == 1.0


def test_pgd_without_random_start_is_monotone(faces: Any, clean: torch.Tensor) -> None:
    options = AttackOptions(steps=2, random_start=False)
    eps = [0.0, 2 / 255, 8 / 255]

    def problem(rows: slice) -> Any:
        return Dodging(clean[:2][rows]).as_classification(recognizer_model(CPU))

    outcome = run_attack(ATTACKS["pgd"].build(options), faces[1][:2], problem, eps,
                         minimization=False, batch_size=4, seed=0, purpose="test")
    rates = outcome.rates()
    assert rates[0] == 0.0 and rates == sorted(rates)


def test_dodging_verdict_agrees_with_embedding_distances(faces: Any, clean: torch.Tensor) -> None:
    """foolbox's success on its own adversarials = our criterion = distances by embed_faces."""
    _, clipped, success = _direct("fgsm", faces[1], Dodging(clean), [1 / 255, 2 / 255], 0)
    embedder = recognizer_model(CPU)
    for xpc, hit in zip(clipped, success, strict=True):
        d = torch.linalg.vector_norm(embed_faces(xpc * 255, requires_grad=True).detach() - clean,
                                     dim=1)
        clear = (d - 0.6).abs() > 1e-4
        assert clear.all()
        assert torch.equal(hit, d >= 0.6)
        assert torch.equal(Dodging(clean)(xpc, embedder(xpc)), hit)


def test_verification_view_equals_both_criteria(faces: Any, clean: torch.Tensor) -> None:
    """Misclassification on the 2-logit view = the embedding criterion, input by input."""
    embedder = recognizer_model(CPU)
    gen = torch.Generator().manual_seed(0)
    x = faces[1]
    inputs = torch.cat([x, (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)])
    references = torch.cat([clean, clean.roll(1, dims=0)])
    outputs = embedder(inputs)
    direct = torch.linalg.vector_norm(outputs - references, dim=1)
    for make, expected in ((Dodging, direct > 0.6), (Impersonation, direct <= 0.6)):
        criterion = make(references)
        model, labels = criterion.as_classification(embedder)
        assert int(labels.labels.raw[0]) == (MATCH if make is Dodging else NO_MATCH)
        logits = model(inputs)
        assert torch.allclose(logits[:, MATCH], 0.6 - direct, atol=1e-6)
        assert torch.allclose(logits[:, NO_MATCH], direct - 0.6, atol=1e-6)
        assert torch.equal(labels(inputs, logits), expected)
        assert torch.equal(criterion(inputs, outputs), expected)


def test_minimization_attacks_report_foolboxs_result() -> None:
    options = AttackOptions(cw_binary_search_steps=1, cw_steps=3, deepfool_steps=2)
    results = attack("builtin:lfw-subset", AttackConfig(
        n=2, attacks=("cw", "deepfool"), goals=("dodging",), corruptions=False, options=options,
        seed=5, device="cpu"))
    indices = results.robustness["sets"]["data"]["indices"]
    images = open_source("builtin:lfw-subset").read(indices)
    x, clean = images.float() / 255, embed_faces(images)
    for name in ("cw", "deepfool"):
        record = _record(results, name)
        eps = record["epsilons"]
        advs, _, success = _direct(name, x, Dodging(clean), [*eps, None], record["seeds"][0],
                                   options)
        assert record["success_rate"] == success[:-1].float().mean(dim=1).tolist()
        perturbation = record["perturbation"]
        # all-zero output = C&W's "nothing found" (a black image can still dodge)
        zero = (advs[-1] == 0).flatten(1).all(dim=1)
        hits = success[-1] & ~zero
        assert perturbation["n_found"] == int(hits.sum())
        assert perturbation["n_fallback"] == int(zero.sum())
        sizes = ATTACKS[name].build(options).distance(x, advs[-1])
        expected = [float(s) if hit else None for s, hit in zip(sizes, hits, strict=True)]
        assert perturbation["sizes"] == pytest.approx(expected)
        assert record["kind"] == "minimization" and record["norm"] == "l2"
    assert "deepfool" in attack_table(results)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gan_eval.gan.training import TrainConfig, train

    out = tmp_path_factory.mktemp("gan") / "run"
    train(TrainConfig(data="builtin:lfw-subset", out=out, steps=2, batch_size=16, width=8, nz=16,
                      quiet=True, device="cpu"))
    return out / "checkpoint"


def test_discriminator_rates_are_foolboxs(checkpoint: Path) -> None:
    from gan_eval.robustness import discriminator_model

    results = attack(str(checkpoint), AttackConfig(
        model="discriminator", attacks=("fgsm",), epsilons=(0, "8/255"), n=4, device="cpu"))
    rob = results.robustness
    assert set(rob["sets"]) == {"generated", "real"}
    d_model, _ = discriminator_model(checkpoint)
    generated = open_source(str(checkpoint), n=4, seed=0, device="cpu").load().float() / 255
    labels = fb.criteria.Misclassification(torch.zeros(4, dtype=torch.long))  # FAKE
    _, _, success = ATTACKS["fgsm"].build()(d_model, generated, labels, epsilons=[0, 8 / 255])
    record = _record(results, "fgsm", "generated_as_real", "generated")
    assert record["success_rate"] == success.float().mean(dim=1).tolist()
    # at ε = 0 the "success" is D's clean mistake
    assert record["success_rate"][0] == rob["clean"]["generated"]["called_real"]
    assert results.metric("discriminator_fooled").n_generated == 4


def test_recognizer_on_a_checkpoint_compares_generated_and_real(checkpoint: Path) -> None:
    results = attack(str(checkpoint), AttackConfig(
        attacks=("fgsm",), epsilons=(0, "4/255"), n=2, goals=("dodging",), corruptions=False,
        device="cpu"))
    rob = results.robustness
    assert rob["sets"]["real"]["data"] == "builtin:lfw-subset"
    assert rob["sets"]["real"]["resolution"] == [32, 32]  # resized to the checkpoint's
    assert {r["set"] for r in rob["attacks"]} == {"generated", "real"}
    metric = results.metric("dodging_success")
    assert metric.details["set"] == "generated" and "real" in metric.details


def test_corruptions_have_five_severities_and_embedding_drift() -> None:
    from gan_eval.robustness.corruptions import (
        CORRUPTIONS,
        embedding_drift,
        gaussian_blur,
        gaussian_noise,
        jpeg,
    )

    flat = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 1.5), flat)
    noisy = gaussian_noise(flat, 0.04, seed=1).float()
    assert 8.0 < float(noisy.std()) < 12.0  # σ = 0.04 · 255 ≈ 10 gray levels
    assert jpeg(flat, 50).shape == flat.shape
    assert all(len(c.severities) == 5 for c in CORRUPTIONS.values())
    images = open_source("builtin:lfw-subset").read([0, 1])
    records = embedding_drift(images, corruptions=("gaussian_noise",), seed=3)
    (record,) = records
    clean = embed_faces(images)
    severity = record["severities"][-1]
    corrupted = gaussian_noise(images, severity, seed=_noise_seed(3, 5))
    drift = torch.linalg.vector_norm(embed_faces(corrupted) - clean, dim=1)
    assert record["drift_mean"][-1] == pytest.approx(float(drift.double().mean()))
    assert record["match_rate"][-1] == float((drift < 0.6).double().mean())


def _noise_seed(seed: int, level: int) -> int:
    from gan_eval.seeding import derive_seed

    return derive_seed(seed, "corruption/gaussian_noise", level)


def test_cli_runs_and_writes_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    result = runner.invoke(app, ["attack", "builtin:lfw-subset", "--attack", "fgsm", "--eps",
                                 "4/255", "--n", "2", "--no-corruptions", "--json", str(path),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "fgsm" in result.output and "4/255" in result.output
    saved = Results.load(path)
    assert saved.robustness["attacks"][0]["epsilons"] == [4 / 255]
    assert json.loads(path.read_text())["schema"] == "gan-eval/results/v1"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--attack", "jsma"], ["jsma", "fgsm", "pgd", "pgd-l2", "cw", "deepfool"]),
        (["--attack", "fgsm", "--eps", "-0.1"], ["negative", "8/255"]),
        (["--attack", "fgsm", "--eps", "abc"], ["not a number", "8/255"]),
        (["--attack", "fgsm", "--eps", "1/0"], ["not a number"]),
        (["--attack", "fgsm", "--eps", "nan"], ["not finite"]),
        (["--attack", "fgsm", "--eps", "8"], ["8/255", "l2:"]),
        (["--attack", "pgd", "--eps", "l2:0.5"], ["mismatch", "pgd (linf)"]),
        (["--attack", "pgd", "--eps", "l3:0.5"], ["linf:", "l2:"]),
        (["--attack", "deepfool", "--eps", "0.03"], ["minimal", "fgsm", "pgd", "pgd-l2"]),
        (["--attack", "fgsm", "--attack", "pgd-l2", "--eps", "0.03"],
         ["fgsm (linf)", "pgd-l2 (l2)", "linf:"]),
        (["--model", "discriminator"], ["checkpoint", "--model recognizer"]),
        (["--model", "classifier"], ["recognizer", "discriminator"]),
        (["--n", "0"], ["--count"]),
    ],
)
def test_cli_bad_input_exits_2_and_lists_choices(args: list[str], needles: list[str]) -> None:
    result = runner.invoke(app, ["attack", "builtin:lfw-subset", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def test_epsilon_plan() -> None:
    from gan_eval.robustness.attacks import DEFAULT_EPSILONS, Norm, get_attacks, plan_epsilons

    specs = get_attacks(["fgsm", "pgd-l2", "cw"])
    plan = plan_epsilons(specs, ["linf:8/255", "linf:0", "l2:0.5", "l2:1/2"])
    assert plan["fgsm"] == (0.0, 8 / 255)
    assert plan["pgd-l2"] == (0.5,)
    assert plan["cw"] == tuple(sorted({*DEFAULT_EPSILONS[Norm.L2], 0.5}))
    assert plan_epsilons(get_attacks(["pgd"]), None)["pgd"] == DEFAULT_EPSILONS[Norm.LINF]
    assert plan_epsilons(get_attacks(["pgd", "fgsm"]), [0.01, "2/255"])["fgsm"] == (2 / 255, 0.01)


@pytest.mark.slow
def test_full_default_run_has_what_a_plot_needs(tmp_path: Path) -> None:
    options = AttackOptions(steps=3, cw_binary_search_steps=2, cw_steps=10, deepfool_steps=10)
    results = attack("builtin:lfw-subset", AttackConfig(  # every attack: the slow ones are opt-in
        n=4, attacks=tuple(ATTACKS), options=options, device="cpu", seed=1))
    rob = results.robustness
    names = {r["attack"] for r in rob["attacks"]}
    assert names == set(ATTACKS)
    for record in rob["attacks"]:
        assert len(record["epsilons"]) == len(record["success_rate"]) and record["n"] > 0
        if record["kind"] == "minimization":
            p = record["perturbation"]
            assert set(p) >= {"median", "quantiles", "histogram", "sizes", "n_found"}
    assert {(c["corruption"], len(c["severities"]), len(c["match_rate"]))
            for c in rob["corruptions"]} == {(n, 5, 5) for n in ("gaussian_noise",
                                                                  "gaussian_blur", "jpeg")}
    results.save(tmp_path / "r.json")
    assert Results.load(tmp_path / "r.json").robustness == json.loads(json.dumps(rob))
    table = attack_table(results)
    assert all(name in table for name in ATTACKS)


@pytest.mark.slow
def test_impersonation_rates_are_foolboxs() -> None:
    results = attack("builtin:lfw-subset", AttackConfig(
        n=6, attacks=("pgd",), epsilons=EPS, goals=("impersonation",), corruptions=False,
        options=AttackOptions(steps=5), seed=2, device="cpu"))
    rob = results.robustness
    images = open_source("builtin:lfw-subset").read(rob["sets"]["data"]["indices"])
    clean = embed_faces(images)
    targets = rob["impersonation_targets"]["data"]
    rows, picks = targets["rows"], targets["targets"]
    with torch.no_grad():
        attacked = recognizer_model(CPU)(images.float() / 255)
    assert all(float(torch.dist(attacked[r], clean[t])) >= 0.6
               for r, t in zip(rows, picks, strict=True))
    record = _record(results, "pgd", "impersonation")
    _, _, success = _direct("pgd", images[rows].float() / 255, Impersonation(clean[picks]),
                            EPS, record["seeds"][0], AttackOptions(steps=5))
    assert record["success_rate"] == success.float().mean(dim=1).tolist()
    assert record["success_rate"][0] == 0.0
