"""One registration route: ``register_extractor(spec)`` on a class is all it takes for
``evaluate -e NAME``, the catalogue (gates), torch-fidelity's registry and ``gan-eval weights`` to
know an extractor (the toy of ``tests/toy_extractor.py``, registered in one place)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
import toy_extractor as toy
from faults_helpers import child_env
from spaces_fixture import hide_installed_weights
from torch.utils.data import Dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from typer.testing import CliRunner

from gan_eval import EvaluateConfig, catalogue
from gan_eval import weights as w
from gan_eval.catalogue import ExtractorSpec, metric_spec
from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.features.base import EXTRACTORS, FeatureExtractor, register_extractor
from gan_eval.features.registry import build_extractor, weights_check
from gan_eval.fileio import sha256_file
from gan_eval.gates import load_config

runner = CliRunner()
NAME = toy.TOY


@pytest.fixture(autouse=True)
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_installed_weights(tmp_path, monkeypatch)


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    path = tmp_path / f"{NAME}-weights.pth"
    path.write_bytes(toy.file_bytes(seed=0))
    return path


class _Images(Dataset):  # type: ignore[type-arg]
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _gates(tmp_path: Path) -> Path:
    config = tmp_path / "gates.toml"
    config.write_text(f'[[gate]]\nmetric = "fid"\nextractor = "{NAME}"\nmax = 1e9\n')
    return config


def test_unregistered_name_is_unknown_everywhere(tmp_path: Path) -> None:
    assert NAME not in catalogue.EXTRACTORS and NAME not in w.WEIGHTS
    assert NAME not in EXTRACTORS and NAME not in FEATURE_EXTRACTORS_REGISTRY
    with pytest.raises(InputError, match=NAME):
        load_config(_gates(tmp_path))
    with pytest.raises(InputError, match=NAME):
        EvaluateConfig(extractors=(NAME,))
    result = runner.invoke(app, ["weights", "list", NAME])
    assert result.exit_code == 2 and "unknown weights name" in result.output


def test_one_registration_reaches_every_consumer(tmp_path: Path, weights_file: Path) -> None:
    with toy.registered() as cls:
        # the catalogue: gates accept it, metrics on any extractor are allowed on it
        assert catalogue.EXTRACTORS[NAME] is cls.spec and cls.name == NAME
        assert NAME in metric_spec("fid").allowed_extractors()
        assert NAME not in metric_spec("copy_rate").allowed_extractors()  # face=False
        assert load_config(_gates(tmp_path))
        # gan-eval weights: list, the content check, --weights / env
        listed = runner.invoke(app, ["weights", "list", NAME])
        assert listed.exit_code == 0 and f"{NAME}-weights.pth" in listed.output
        assert w.WEIGHTS[NAME] is cls.spec.weights
        assert weights_check(NAME) == cls.check_weights
        assert "two tensors" in str(weights_check(NAME)(weights_file))  # type: ignore[misc]
        # evaluate -e NAME --weights NAME=PATH, then gate on what it wrote
        out = tmp_path / "results.json"
        result = runner.invoke(app, [
            "evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-nonfaces", "-e", NAME,
            "--weights", f"{NAME}={weights_file}", "--splits", "10", "--no-cache", "-q",
            "--device", "cpu", "--json", str(out)])
        assert result.exit_code == 0, result.output
        saved = json.loads(out.read_text())
        fid = next(m for m in saved["metrics"] if (m["name"], m["extractor"]) == ("fid", NAME))
        assert fid["value"] > 0 and fid["n_generated"] == 100
        sha = saved["provenance"]["extractors"][NAME]["weights_sha256"]
        assert sha == sha256_file(weights_file)
        gate = runner.invoke(app, ["gate", str(out), "--config", str(_gates(tmp_path))])
        assert gate.exit_code == 0, gate.output
        # torch-fidelity's own metric code on it (the generic adapter), against the formula
        extractor = build_extractor(NAME, device="cpu", weights=weights_file)
        gen = torch.Generator().manual_seed(0)
        a = torch.randint(0, 256, (40, 3, 16, 16), dtype=torch.uint8, generator=gen)
        b = torch.randint(0, 200, (40, 3, 16, 16), dtype=torch.uint8, generator=gen)
        theirs = torch_fidelity.calculate_metrics(
            input1=_Images(a), input2=_Images(b), fid=True, feature_extractor=NAME,
            feature_extractor_weights_path=str(weights_file), cuda=False, cache=False,
            verbose=False, batch_size=16, save_cpu_ram=True)["frechet_inception_distance"]
        fa, fb = (extractor(x)["mean"].double().numpy() for x in (a, b))
        mu = fa.mean(0) - fb.mean(0)
        s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
        eig = np.linalg.eigvals(s1 @ s2)
        expected = float(mu @ mu + np.trace(s1) + np.trace(s2)
                         - 2 * np.sqrt(np.abs(eig.real)).sum())
        assert expected > 1e-3 and theirs == pytest.approx(expected, rel=1e-4)
    # gone again from every registry
    assert NAME not in catalogue.EXTRACTORS and NAME not in EXTRACTORS
    assert NAME not in FEATURE_EXTRACTORS_REGISTRY and NAME not in w.WEIGHTS


def test_an_inline_face_spec_feeds_copy_rate() -> None:
    with toy.registered(toy.spec(face=True)):
        assert NAME in metric_spec("copy_rate").allowed_extractors()


class _NoCheck(FeatureExtractor):
    primary = "x"

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": images.float().mean((1, 2, 3))[:, None]}

    def weights_sha256(self) -> str:
        return "0" * 64


@pytest.mark.parametrize("mistake", ["no-check-for-its-weights", "logits-disagree", "name-taken",
                                     "declared-differently", "not-an-extractor"])
def test_registration_mistakes_are_refused_and_leave_nothing(mistake: str) -> None:
    before = (dict(catalogue.EXTRACTORS), dict(EXTRACTORS), dict(FEATURE_EXTRACTORS_REGISTRY))
    spec, cls, error = toy.spec(), toy.make_class(), ValueError
    if mistake == "no-check-for-its-weights":
        cls, error = _NoCheck, TypeError
    elif mistake == "logits-disagree":
        spec = ExtractorSpec(NAME, "toy", logits=True, weights=spec.weights)
    elif mistake == "name-taken":  # inception's own spec, on a class that fits it otherwise
        spec, cls = catalogue.EXTRACTORS["inception"], type("T", (cls,), {"logits": "mean"})
    elif mistake == "declared-differently":  # declared (as torch-free code may), then another
        catalogue.declare_extractor(toy.spec())
        spec = toy.spec(face=True)
    else:
        cls, error = object, TypeError  # type: ignore[assignment]
    try:
        with pytest.raises(error):
            register_extractor(spec)(cls)
        assert (dict(EXTRACTORS), dict(FEATURE_EXTRACTORS_REGISTRY)) == before[1:]
        assert catalogue.EXTRACTORS.get(NAME) == (
            toy.spec() if mistake == "declared-differently" else None)
    finally:
        catalogue.EXTRACTORS.pop(NAME, None)
    assert dict(catalogue.EXTRACTORS) == before[0]


def test_builtin_declarations_are_readable_without_torch() -> None:
    """The catalogue (what gates and ``weights list`` read) knows every built-in extractor and
    its weights file without importing torch; the torch side registers exactly those."""
    code = ("import sys\nfrom gan_eval import catalogue\n"
            "print(','.join(catalogue.EXTRACTORS))\n"
            "print(','.join(n for n, s in catalogue.EXTRACTORS.items() if s.weights))\n"
            "print('torch' in sys.modules)\n")
    names, with_files, torch_loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(),
        check=True).stdout.split()
    assert torch_loaded == "False"
    assert set(names.split(",")) == set(EXTRACTORS)
    assert set(with_files.split(",")) == set(w.WEIGHTS)
    for name, cls in EXTRACTORS.items():
        assert cls.spec is catalogue.EXTRACTORS[name] and cls.name == name
        assert FEATURE_EXTRACTORS_REGISTRY[name] is not None
