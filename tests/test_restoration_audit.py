"""``gan-eval restoration``: degradations, models and their contract, bounds, swaps and gates.

The models of tests/restoration_models.py bound what a restorer can do on builtin:lfw-heldout:
the oracle returns each clean face (the best possible), builtin:none restores nothing, and the
swapper returns another person's clean face — perfect pixels, wrong person — which identity
swap rate must catch and a gate must fail (exit 1).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lpips_fixture import write_random_alexnet
from PIL import Image
from typer.testing import CliRunner

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.restoration import ModelOptions, RestorationConfig, audit_restoration
from gan_eval.restoration.degradations import degrade, gaussian_kernel
from gan_eval.restoration.plan import KINDS, Condition, default_grid, parse_degradations
from gan_eval.results import Results
from gan_eval.sources import open_source

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "restoration_models.py"
GATES = ROOT / "examples" / "restoration" / "gates.toml"
GRID = ["--degradation", "blur:2", "--degradation", "downsample:4", "--degradation", "noise:25",
        "--degradation", "jpeg:20"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def alexnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alexnet")
    return write_random_alexnet(folder / catalogue.ALEXNET_FILENAME)


@pytest.fixture(scope="module")
def bounds_run(tmp_path_factory: pytest.TempPathFactory, alexnet: Path) -> Path:
    """The swapper (audited) and the oracle beside builtin:none, through the CLI, with a report
    folder; returns the folder (results.json inside)."""
    out = tmp_path_factory.mktemp("bounds") / "report"
    result = CliRunner().invoke(app, [
        "restoration", f"{MODELS}:make_swapper", f"{MODELS}:make_oracle",
        "--data", "builtin:lfw-heldout", *GRID, "--no-baselines", "--quiet",
        "--weights", f"lpips-alex={alexnet}", "--out", str(out), "--gates", str(GATES),
        "--json", str(out.parent / "r.json")])
    assert result.exit_code == 0, result.output
    return out


def _values(results: Results, method: str, key: str) -> dict:
    return results.restoration["values"][method][key]


def test_the_swapper_is_caught_by_identity_swap_rate_and_fails_the_gate(bounds_run: Path
                                                                         ) -> None:
    results = Results.load(bounds_run.parent / "r.json")
    swap = results.metric("identity_swap_rate", "dlib-face")
    assert swap.value >= 0.9 and swap.ci95 is not None and swap.ci95[0] > 0.5
    assert results.restoration["audited"].endswith("make_swapper")
    for key in ("blur:2", "downsample:4", "noise:25", "jpeg:20"):  # every degradation: worse
        swapper = _values(results, f"{MODELS}:make_swapper", key)["identity_swap_rate"]
        none = _values(results, "builtin:none", key)["identity_swap_rate"]
        assert swapper["difference"]["ci95"][0] > 0, key
        assert swapper["value"] > none["value"]
    gate = CliRunner().invoke(app, ["gate", str(bounds_run.parent / "r.json"), "--config",
                                    str(GATES)])
    assert gate.exit_code == 1, gate.output
    assert "identity_swap_rate" in gate.output and "FAIL" in gate.output.upper()
    # the report page shows the verdict and exits 0 (gan-eval gate is what fails CI)
    page = (bounds_run / "index.html").read_text()
    assert "Gates failed" in page and "Face restoration" in page


def test_the_oracle_and_no_restoration_bound_every_metric(bounds_run: Path) -> None:
    results = Results.load(bounds_run.parent / "r.json")
    perfect = {"psnr": 100.0, "ssim": 1.0, "lpips": 0.0, "identity_distance": 0.0,
               "identity_kept_rate": 1.0, "identity_swap_rate": 0.0, "verification_tar": 1.0,
               "landmark_distance": 0.0}
    better_higher = {"psnr", "ssim", "identity_kept_rate", "verification_tar"}
    for key in ("blur:2", "downsample:4", "noise:25", "jpeg:20"):
        oracle = _values(results, f"{MODELS}:make_oracle", key)
        none = _values(results, "builtin:none", key)
        for metric, best in perfect.items():
            assert oracle[metric]["value"] == pytest.approx(best, abs=1e-6), (key, metric)
            sign = 1 if metric in better_higher else -1
            assert sign * (best - none[metric]["value"]) >= 0, (key, metric)
        for metric in ("psnr", "ssim", "lpips", "identity_distance", "landmark_distance"):
            assert none[metric]["value"] != pytest.approx(perfect[metric], abs=1e-6)
            low, high = oracle[metric]["difference"]["ci95"]
            assert (low > 0) if metric in better_higher else (high < 0), (key, metric)
        assert results.restoration["fid"][f"{MODELS}:make_oracle"][key]["dlib-face"][
            "value"] == pytest.approx(0.0, abs=1e-6)


def test_an_oracle_passes_the_gates(tmp_path: Path, alexnet: Path) -> None:
    run = audit_restoration([f"{MODELS}:make_oracle"], "builtin:lfw-heldout", RestorationConfig(
        conditions=(Condition("noise", 25.0),), baselines=False, weights={"lpips-alex": alexnet}))
    run.results.save(tmp_path / "r.json")
    gate = CliRunner().invoke(app, ["gate", str(tmp_path / "r.json"), "--config", str(GATES)])
    assert gate.exit_code == 0, gate.output


def test_the_report_folder_and_its_redraw(bounds_run: Path, tmp_path: Path) -> None:
    for name in ("tiles", "swaps"):
        png = bounds_run / "plots" / f"restoration_{name}.png"
        assert Image.open(png).size[0] > 200
    assert (bounds_run / "plots" / "restoration_curves.png").is_file()
    again = CliRunner().invoke(app, ["report", "--from-results", str(bounds_run / "results.json"),
                                     "--out", str(bounds_run)])
    assert again.exit_code == 0, again.output
    page = (bounds_run / "index.html").read_text()
    assert page.count("data:image/png;base64") >= 3 and "Identity swaps" in page
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "results.json").write_bytes((bounds_run / "results.json").read_bytes())
    redrawn = CliRunner().invoke(app, ["report", "--from-results", str(moved / "results.json"),
                                       "--out", str(moved)])
    assert redrawn.exit_code == 0, redrawn.output
    assert "their pictures are not in this folder" in (moved / "index.html").read_text()


def test_results_carry_the_grid_provenance_and_intervals(bounds_run: Path) -> None:
    raw = json.loads((bounds_run / "results.json").read_text())
    section = raw["restoration"]
    assert [c["key"] for c in section["conditions"]] == ["blur:2", "downsample:4", "noise:25",
                                                         "jpeg:20"]
    assert section["seed"] == 0 and section["n"] == 20 and section["resolution"] == 64
    assert set(section["weights_sha256"]) >= {"lpips", "landmarks", "dlib-face"}
    assert any("not torchvision's" in note for note in section["notes"])  # random trunk
    assert section["methods"]["builtin:none"]["kind"] == "builtin"
    for metric in raw["metrics"]:
        if metric["name"] != "restoration_fid":
            assert metric["details"]["interval"]["n"] == 20
    psnr = section["values"]["builtin:none"]["blur:2"]["psnr"]
    assert psnr["ci95"][0] < psnr["value"] < psnr["ci95"][1] and psnr["se"] > 0


# -- the contract of a MODEL ---------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["restoration", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("name", "says"), [
    ("drops_an_image", "expected (2, 3, 64, 64)"), ("gray_output", "expected (2, 3, 64, 64)"),
    ("wrong_size", "expected (2, 3, 64, 64)"), ("nan", "NaN"), ("out_of_range", "spans"),
    ("not_a_tensor", "returned a list"), ("integers", "torch.int64"), ("raises", "boom"),
])
def test_a_model_breaking_its_contract_is_refused_naming_model(name: str, says: str) -> None:
    code, output = _run(f"{MODELS}:{name}", "--data", "builtin:lfw-heldout",
                        "--degradation", "blur:1", "--count", "4", "--no-baselines", "--quiet")
    assert code == 2, output
    assert f"MODEL {MODELS}:{name}" in output and says in output


def test_a_super_resolution_model_restores_only_its_scale(alexnet: Path) -> None:
    run = audit_restoration([f"{MODELS}:upscale4"], "builtin:lfw-heldout", RestorationConfig(
        conditions=parse_degradations(["downsample:2,4", "blur:1"]), n=8,  # too few to calibrate
        model=ModelOptions(scale=4), weights={"lpips-alex": alexnet}))
    values = run.results.restoration["values"]
    assert list(values[f"{MODELS}:upscale4"]) == ["downsample:4"]
    ours = values[f"{MODELS}:upscale4"]["downsample:4"]["psnr"]["value"]
    bicubic = values["builtin:bicubic"]["downsample:4"]["psnr"]["value"]
    assert ours == pytest.approx(bicubic, abs=0.3)  # the same interpolation, other rounding
    assert run.results.metric("psnr").details["conditions"] == ["downsample:4"]
    # 8 faces give 28 pairs: no threshold at FAR 1%, so no kept rate and no TAR, said so
    names = {m.name for m in run.results.metrics}
    assert "identity_kept_rate" not in names and "verification_tar" not in names
    assert values["builtin:none"]["blur:1"]["identity_kept_rate"]["value"] is None
    assert run.results.restoration["identity"]["threshold"]["reason"]


def test_torchscript_and_onnx_models_run_under_the_same_contract(tmp_path: Path,
                                                                 alexnet: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    class Same(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    scripted = tmp_path / "same.ts"
    torch.jit.save(torch.jit.script(Same()), str(scripted))
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, "h", "w"])
    out = helper.make_tensor_value_info("restored", TensorProto.FLOAT, ["b", 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["restored"])], "same",
                              [image], [out])
    onnx_path = tmp_path / "same.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              str(onnx_path))
    run = audit_restoration([str(scripted), str(onnx_path)], "builtin:lfw-heldout",
                            RestorationConfig(conditions=(Condition("blur", 2.0),), n=6,
                                              baselines=False, weights={"lpips-alex": alexnet}))
    values = run.results.restoration["values"]
    none = values["builtin:none"]["blur:2"]
    for spec in (str(scripted), str(onnx_path)):  # restoring nothing = no restoration, exactly
        mine = values[spec]["blur:2"]
        assert mine["psnr"]["value"] == none["psnr"]["value"]
        assert mine["identity_distance"]["difference"]["value"] == 0.0
    methods = run.results.restoration["methods"]
    assert methods[str(scripted)]["kind"] == "torchscript" and methods[str(onnx_path)]["kind"] \
        == "onnx"
    assert all(len(h) == 64 for h in methods[str(onnx_path)]["files_sha256"].values())


def test_a_dcgan_checkpoint_is_not_a_restoration_model(tiny_run: Path) -> None:
    code, output = _run(str(tiny_run / "checkpoint"), "--data", "builtin:lfw-heldout",
                        "--degradation", "blur:1", "--count", "4", "--quiet")
    assert code == 2, output
    assert "MODEL" in output and "checkpoint" in output


def test_a_pickle_is_never_loaded(tmp_path: Path) -> None:
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    code, output = _run(str(pickled), "--data", "builtin:lfw-heldout", "--count", "4", "--quiet")
    assert code == 2 and "pickle" in output


# -- bad input: exit 2 naming the option, before torch is imported --------------------------

PROBE = """
import json, sys
from gan_eval.cli import app
out = []
for args in json.loads(sys.argv[1]):
    try:
        code = app(["restoration", *args], standalone_mode=False) or 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        code = getattr(exc, "exit_code", repr(exc))
    out.append(code)
print("CODES=" + json.dumps(out))
print("TORCH=" + str("torch" in sys.modules))
"""

BAD_INPUT = {
    "unknown kind": (["--degradation", "sharpen"], "--degradation"),
    "blur 0": (["--degradation", "blur:0"], "--degradation"),
    "blur negative": (["--degradation", "blur:-1"], "--degradation"),
    "blur nan": (["--degradation", "blur:nan"], "--degradation"),
    "blur too wide": (["--degradation", "blur:17"], "--degradation"),
    "downsample 1": (["--degradation", "downsample:1"], "--degradation"),
    "downsample fraction": (["--degradation", "downsample:2.5"], "--degradation"),
    "noise 0": (["--degradation", "noise:0"], "--degradation"),
    "noise 300": (["--degradation", "noise:300"], "--degradation"),
    "jpeg 0": (["--degradation", "jpeg:0"], "--degradation"),
    "jpeg 101": (["--degradation", "jpeg:101"], "--degradation"),
    "jpeg fraction": (["--degradation", "jpeg:50.5"], "--degradation"),
    "no severity": (["--degradation", "noise:"], "--degradation"),
    "word severity": (["--degradation", "noise:high"], "--degradation"),
}


def test_bad_input_exits_2_naming_the_option_before_torch_is_imported(tmp_path: Path) -> None:
    cases = {name: ["builtin:none", "--data", "builtin:lfw-heldout", *args]
             for name, (args, _) in BAD_INPUT.items()}
    cases["missing data"] = ["builtin:none", "--data", str(tmp_path / "nowhere")]
    cases["unknown builtin"] = ["builtin:magic", "--data", "builtin:lfw-heldout"]
    cases["missing model file"] = [str(tmp_path / "m.py:make"), "--data", "builtin:lfw-heldout"]
    bad_gates = tmp_path / "gates.toml"
    bad_gates.write_text('[[gate]]\nmetric = "psnrr"\nmin = 1\n')
    cases["bad gates"] = ["builtin:none", "--data", "builtin:lfw-heldout", "--gates",
                          str(bad_gates)]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(cases.values()))],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    codes_line = next(x for x in done.stdout.splitlines() if x.startswith("CODES="))
    codes = json.loads(codes_line.removeprefix("CODES="))
    assert dict(zip(cases, codes, strict=True)) == dict.fromkeys(cases, 2), done.stderr
    assert "TORCH=False" in done.stdout
    for name, (_, option) in BAD_INPUT.items():
        assert option in done.stderr, name
    for option in ("--data", "builtin:magic", "m.py", "--gates"):
        assert option in done.stderr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdehijklmnopqrstuwxyz:,.-0123456789", max_size=14),
                min_size=1, max_size=3))
def test_degradation_strings_parse_or_are_refused_naming_the_option(values: list[str]) -> None:
    try:
        grid = parse_degradations(values)
    except InputError as exc:
        assert str(exc).startswith("--degradation")
        return
    for condition in grid:
        kind = KINDS[condition.kind]
        assert kind.low <= condition.severity <= kind.high


def test_the_default_grid_and_its_order() -> None:
    assert [c.key for c in default_grid()] == [
        "blur:1", "blur:2", "blur:3", "downsample:2", "downsample:4", "noise:10", "noise:25",
        "noise:50", "jpeg:50", "jpeg:20", "jpeg:10"]
    assert [c.key for c in parse_degradations(["jpeg:10,50", "blur"])] == [
        "blur:1", "blur:2", "blur:3", "jpeg:50", "jpeg:10"]


# -- degradations ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return open_source("builtin:lfw-heldout", resolution=64).head(6).load()


@pytest.mark.parametrize("condition", list(default_grid()), ids=lambda c: c.key)
def test_degradations_are_seeded_per_image_and_batch_invariant(faces: torch.Tensor,
                                                               condition: Condition) -> None:
    whole = degrade(faces, condition, seed=5, indices=range(6))
    again = degrade(faces, condition, seed=5, indices=range(6))
    alone = degrade(faces[3:4], condition, seed=5, indices=[3])
    assert torch.equal(whole.observed, again.observed)
    assert torch.equal(whole.observed[3:4], alone.observed)
    assert whole.at_size.shape == faces.shape and whole.at_size.dtype == torch.uint8
    if condition.kind == "downsample":
        side = 64 // int(condition.severity)
        assert whole.observed.shape[-2:] == (side, side)
    other = degrade(faces, condition, seed=6, indices=range(6))
    assert torch.equal(other.observed, whole.observed) == (condition.kind != "noise")


def test_blur_is_scipys_gaussian_filter(faces: torch.Tensor) -> None:
    from scipy.ndimage import gaussian_filter

    for sigma in (0.7, 2.0, 3.0):
        ours = degrade(faces, Condition("blur", sigma), seed=0, indices=range(6)).observed
        theirs = gaussian_filter(faces.double().numpy(), sigma=(0, 0, sigma, sigma),
                                 mode="nearest", truncate=4.0)
        assert np.abs(ours.numpy().astype(float) - np.round(theirs)).max() <= 1
        assert gaussian_kernel(sigma).numel() == 2 * int(4 * sigma + 0.5) + 1


def test_jpeg_is_pils_encoder_at_that_quality(faces: torch.Tensor) -> None:
    ours = degrade(faces, Condition("jpeg", 20.0), seed=0, indices=range(6)).observed
    for i in range(6):
        buffer = io.BytesIO()
        Image.fromarray(faces[i].permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=20)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        assert np.array_equal(ours[i].permute(1, 2, 0).numpy(), decoded)


def test_noise_has_the_stated_sd(faces: torch.Tensor) -> None:
    noisy = degrade(faces, Condition("noise", 10.0), seed=0, indices=range(6)).observed
    diff = noisy.double() - faces.double()
    inside = (faces > 40) & (faces < 215)  # away from clipping
    assert float(diff[inside].std()) == pytest.approx(10.0, rel=0.05)


# -- the face recognizer is a parameter; labels say who is who --------------------------------


def test_identity_metrics_use_the_face_embedding_function_given(alexnet: Path) -> None:
    def pixels(images: torch.Tensor) -> torch.Tensor:  # a stand-in "recognizer": 8×8 means
        return torch.nn.functional.avg_pool2d(images.float(), 8).flatten(1) / 255.0

    condition = Condition("blur", 2.0)
    run = audit_restoration(["builtin:none"], "builtin:lfw-heldout", RestorationConfig(
        conditions=(condition,), baselines=False, embed=pixels, weights={"lpips-alex": alexnet}))
    clean = open_source("builtin:lfw-heldout", resolution=64).load()
    degraded = degrade(clean, condition, seed=0, indices=range(20)).at_size
    expected = (pixels(degraded) - pixels(clean)).norm(dim=1).double().numpy()
    entry = run.results.restoration["values"]["builtin:none"]["blur:2"]["identity_distance"]
    assert entry["value"] == pytest.approx(float(expected.mean()), rel=1e-6)
    assert "dlib-face" not in run.results.restoration["weights_sha256"]


def test_labelled_faces_verify_among_themselves_and_swaps_respect_labels(
        tmp_path: Path, alexnet: Path) -> None:
    faces = open_source("builtin:lfw-heldout").load()[:, 0].numpy()  # 20 gray 25×25
    swap_rates = {}
    for labelled in (True, False):
        data = tmp_path / f"people-{labelled}.npz"
        arrays = {"labels": np.arange(20) // 2} if labelled else {}  # ten "people" of two
        np.savez(data, images=faces, **arrays)
        run = audit_restoration([f"{MODELS}:make_swapper"], str(data), RestorationConfig(
            conditions=(Condition("noise", 10.0),), baselines=False,
            weights={"lpips-alex": alexnet},
            resolution=64, swaps_shown=20))
        identity = run.results.restoration["identity"]
        swap_rates[labelled] = run.results.restoration["values"][f"{MODELS}:make_swapper"][
            "noise:10"]["identity_swap_rate"]["value"]
        others = {(s["face"], s["other"]) for s in run.results.restoration["swaps"]}
        if labelled:
            assert identity["clean_verification"]["pairs"]["genuine"] == 10
            assert "identity labels" in identity["labels"]
            assert all(face // 2 != other // 2 for face, other in others)  # another person
        else:
            assert identity["clean_verification"]["skipped"]
            assert (0, 1) in others  # face 1 "is" another person only without labels
    # the swapper returns face i + 1 exactly: without labels every face is swapped (the face
    # it returns is another image at distance 0), with labels at most as many
    assert swap_rates[False] == 1.0 and swap_rates[True] <= swap_rates[False]


@pytest.mark.slow
def test_the_default_report_has_the_restoration_baselines(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "--data", "builtin:lfw-train", "--out", str(out),
                                      "--steps", "2", "--count", "40", "--attack-n", "2",
                                      "--restoration-steps", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    results = Results.load(out / "results.json")
    section = results.restoration
    assert section["data"]["data"] == "builtin:lfw-heldout"
    assert set(section["methods"]) == {"builtin:none", "builtin:bicubic", "builtin:wiener",
                                       "builtin:richardson_lucy", "builtin:tv", "builtin:nl_means"}
    assert not [m for m in results.metrics if m.name in ("psnr", "identity_swap_rate")]
    page = (out / "index.html").read_text()
    assert 'id="restoration"' in page and (out / "plots" / "restoration_tiles.png").is_file()


@pytest.mark.slow
def test_fid_on_a_second_feature_space(tmp_path: Path, alexnet: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("timm")
    import spaces_fixture as sf

    weights = sf.write_dinov2_weights(tmp_path / "dinov2_vits14_pretrain.pth", "dinov2-vit-s14")
    monkeypatch.setenv(weights_table.known("dinov2-vit-s14").env, str(weights))
    run = audit_restoration(["builtin:none"], "builtin:lfw-heldout", RestorationConfig(
        conditions=(Condition("blur", 3.0),), baselines=False, weights={"lpips-alex": alexnet},
        extractors=("dlib-face", "dinov2-vit-s14")))
    fid = run.results.restoration["fid"]["builtin:none"]["blur:3"]
    assert set(fid) == {"dlib-face", "dinov2-vit-s14"}
    assert fid["dinov2-vit-s14"]["value"] > 0 and fid["dinov2-vit-s14"]["ci95"] is not None
    assert {m.extractor for m in run.results.metrics if m.name == "restoration_fid"} == {
        "dlib-face", "dinov2-vit-s14"}
    assert "dinov2-vit-s14" in run.results.restoration["weights_sha256"]
