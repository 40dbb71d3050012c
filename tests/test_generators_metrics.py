"""External generators give the native checkpoint's metrics in evaluate, recognition, gate,
report and the discriminator attack (tiny sizes: n ≤ 30, 10 interval splits).

TorchScript and ``py:`` give the native pixels bit for bit (tests/test_generators_external.py),
so their metrics must be equal exactly; ONNX may differ by one gray level at ≤ 0.1% of pixels,
so its distances are compared with a tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from generator_fixture import Exported, export_all
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.evaluation import EvaluateConfig, evaluate
from gan_eval.generators import GeneratorOptions
from gan_eval.identity import RecognitionConfig, recognition
from gan_eval.results import Results

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REFERENCE = "builtin:lfw-subset"


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    with pytest.MonkeyPatch.context() as mp:
        yield export_all(tiny_run, tmp_path_factory.mktemp("exported"), mp,
                         module="dcgan_factory_metrics")


def _values(results: Results) -> dict[tuple[str, str], tuple[float, object]]:
    return {(m.name, m.extractor): (m.value, m.ci95) for m in results.metrics}


def test_evaluate_same_metrics(exported: Exported, tmp_path: Path) -> None:
    config = EvaluateConfig(n=30, splits=10, cache_dir=tmp_path / "cache", progress=False,
                            device="cpu")
    native = _values(evaluate(exported.native, REFERENCE, config))
    assert ("fid", "dlib-face") in native
    for spec in (exported.torchscript, exported.py):
        assert _values(evaluate(spec, REFERENCE, config)) == native, spec
    onnx = _values(evaluate(exported.onnx, REFERENCE, config))
    assert onnx.keys() == native.keys()
    for key, (value, _) in native.items():
        # one gray level at ≤ 0.1% of the pixels moves dlib embeddings by ~1e-4
        assert onnx[key][0] == pytest.approx(value, rel=1e-2, abs=1e-3), key


def test_recognition_same_metrics(exported: Exported, tmp_path: Path) -> None:
    config = RecognitionConfig(n=30, seed=0, device="cpu", cache_dir=tmp_path / "cache")
    native = recognition(exported.native, REFERENCE, config)
    external = recognition(exported.torchscript, REFERENCE, config)
    assert _values(external) == _values(native)
    assert external.recognition["leakage"] == native.recognition["leakage"]


def test_gate_cli_same_verdict_and_numbers(exported: Exported, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    gates = tmp_path / "gates.toml"
    gates.write_text('[[gate]]\nmetric = "fid"\nmax = 1e9\n\n'
                     '[[gate]]\nmetric = "leakage_rate_calibrated"\nmax = 1.0\n')
    runner = CliRunner()
    outputs = {}
    for name, spec, extra in (("native", exported.native, []),
                              ("ts", exported.torchscript_plain,
                               ["--z-dim", str(exported.z_dim)])):
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["gate", spec, "--config", str(gates), "--n", "20",
                                     "--data", REFERENCE, "--device", "cpu", "--json", str(out),
                                     *extra])
        assert result.exit_code == 0, result.output
        outputs[name] = Results.load(out)
    assert _values(outputs["ts"]) == _values(outputs["native"])
    generated = outputs["ts"].provenance["data"]["generated"]
    assert generated["generator"]["kind"] == "torchscript"
    assert generated["generator"]["options"]["z_dim"] == exported.z_dim
    missing = runner.invoke(app, ["gate", exported.torchscript, "--config", str(gates),
                                  "--n", "20", "--device", "cpu"])
    assert missing.exit_code == 2 and "pass --data DATA" in missing.output


@pytest.mark.slow
def test_report_same_metrics_and_shows_provenance(exported: Exported, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gan_eval.audit import AuditConfig, run_audit

    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    common = {"data": REFERENCE, "n": 20, "splits": 10, "attack_n": 2,
              "attacks": ("fgsm",), "device": "cpu"}
    native = run_audit(AuditConfig(checkpoint=exported.native, out=tmp_path / "native",
                                   **common))  # type: ignore[arg-type]
    external = run_audit(AuditConfig(checkpoint=exported.py, out=tmp_path / "py",
                                     **common))  # type: ignore[arg-type]
    a = Results.load(native.parent / "results.json")
    b = Results.load(external.parent / "results.json")
    assert _values(a) == _values(b)
    assert a.gates["passed"] == b.gates["passed"]
    html = external.read_text()
    assert "generator.files_sha256" in html and "generator.weights_sha256" in html
    assert "is an external generator" in html  # the training section says why no curve
    # --from-results redraws the faces from the external generator's record (reopened)
    again = CliRunner().invoke(app, ["report", "--from-results",
                                     str(external.parent / "results.json"), "--out",
                                     str(tmp_path / "redrawn")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "redrawn" / "index.html").read_text().count("<img") == \
        html.count("<img")


def test_discriminator_attack_on_external_models(exported: Exported, tmp_path: Path) -> None:
    from gan_eval.robustness import AttackConfig, attack

    config = AttackConfig(model="discriminator", attacks=("fgsm",), n=4, seed=0, device="cpu",
                          reference=REFERENCE, epsilons=("8/255",))
    native = attack(exported.native, config)
    for d_spec in (exported.d_py, exported.d_torchscript):
        from gan_eval.sources import open_source

        source = open_source(exported.torchscript, n=4, device="cpu",
                             options=GeneratorOptions(discriminator=d_spec))
        external = attack(source, config)
        assert _values(external) == _values(native), d_spec
        assert external.robustness["clean"] == native.robustness["clean"]
        assert external.provenance["discriminator"]["spec"] == d_spec
    result = CliRunner().invoke(app, ["attack", exported.torchscript, "--model",
                                      "discriminator", "--count", "2", "--attack", "fgsm",
                                      "--eps", "8/255", "--reference", REFERENCE, "--device",
                                      "cpu", "--discriminator", exported.d_torchscript,
                                      "--json", str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a.json").read_text())["robustness"]["model"] == \
        "discriminator"
    no_d = CliRunner().invoke(app, ["attack", exported.torchscript, "--model", "discriminator",
                                    "--count", "2", "--reference", REFERENCE, "--device", "cpu"])
    assert no_d.exit_code == 2 and "--discriminator SPEC" in no_d.output
    onnx_d = CliRunner().invoke(app, ["attack", exported.torchscript, "--model",
                                      "discriminator", "--count", "2", "--reference", REFERENCE,
                                      "--device", "cpu", "--discriminator", exported.onnx])
    assert onnx_d.exit_code == 2 and "need gradients" in onnx_d.output
