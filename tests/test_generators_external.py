"""External generators: the same pixels as the native checkpoint, the contract, bad specs → exit 2.

Reference for "the same images": the tiny run's native checkpoint source (its EMA generator,
``gan_eval.generators.native``), exported to ``torch.export``, TorchScript, ONNX, a ``py:`` factory
and a ``file.py:attr`` factory (tests/generator_fixture.py).
"""

from __future__ import annotations

import json
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from generator_fixture import Exported, export_all, export_pt2_pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.generators import GeneratorOptions, is_generator, open_generator
from gan_eval.generators.external import ExternalSource, GeneratorContractWarning
from gan_eval.sources import open_source, reopen

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

N = 40


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    with pytest.MonkeyPatch.context() as mp:
        yield export_all(tiny_run, tmp_path_factory.mktemp("exported"), mp,
                         module="dcgan_factory_images")


@pytest.fixture(scope="module")
def native(exported: Exported) -> torch.Tensor:
    return open_source(exported.native, n=N, seed=5, device="cpu").load()


def test_torchscript_and_python_specs_give_the_native_pixels(
    exported: Exported, native: torch.Tensor
) -> None:
    for spec in (exported.torchscript, exported.py, exported.file):
        source = open_source(spec, n=N, seed=5, device="cpu")
        assert isinstance(source, ExternalSource), spec
        assert source.nz == exported.z_dim  # read from the model (gan_eval.json, spec.nz)
        assert torch.equal(source.load(), native), spec
    plain = open_source(exported.torchscript_plain, n=N, seed=5, device="cpu",
                        options=GeneratorOptions(z_dim=exported.z_dim))
    assert torch.equal(plain.load(), native)


def test_onnx_within_one_level_at_few_pixels(exported: Exported, native: torch.Tensor) -> None:
    images = open_source(exported.onnx, n=N, seed=5, device="cpu").load()
    assert images.shape == native.shape and images.dtype == torch.uint8
    diff = (images.int() - native.int()).abs()
    assert int(diff.max()) <= 1
    assert float((diff > 0).float().mean()) <= 0.001


def test_seeded_per_index_across_batch_sizes(exported: Exported, native: torch.Tensor) -> None:
    source = open_source(exported.torchscript, n=N, seed=5, device="cpu")
    assert torch.equal(torch.cat(list(source.batches(7))), native)  # read-ahead on (default)
    source.prefetch = False  # type: ignore[attr-defined]
    assert torch.equal(torch.cat(list(source.batches(9))), native)
    assert torch.equal(source.read([33, 2, 17]), native[[33, 2, 17]])  # any shard, any order
    small_chunks = ExternalSource(exported.torchscript, n=N, seed=5, device="cpu", chunk=3)
    assert torch.equal(small_chunks.load(), native)
    other_seed = open_source(exported.torchscript, n=4, seed=6, device="cpu")
    assert not torch.equal(other_seed.load(), native[:4])


def test_record_carries_provenance_and_reopens(exported: Exported) -> None:
    source = open_source(exported.file, n=6, seed=2, device="cpu")
    record = source.record()
    generator = record["generator"]
    factory_file = exported.file.rsplit(":", 1)[0]
    assert generator["kind"] == "python" and generator["spec"] == exported.file
    assert list(generator["files_sha256"]) == [str(Path(factory_file).resolve())]
    assert len(generator["weights_sha256"]) == 64
    assert generator["latent"]["z_dim"] == exported.z_dim
    assert record["data"] == f"{Path(factory_file).resolve()}:make_generator"
    again = reopen(record)
    assert again.source is not None and again.source.content_hash() == source.content_hash()
    # the hash names the generator: another spec of the same weights is another source
    assert open_source(exported.torchscript, n=6, seed=2, device="cpu").content_hash() != \
        source.content_hash()
    plain = open_source(exported.torchscript_plain, n=6, seed=2, device="cpu",
                        options=GeneratorOptions(z_dim=exported.z_dim))
    reopened = reopen(plain.record())  # reopened with the options its record holds
    assert reopened.source is not None
    assert reopened.source.content_hash() == plain.content_hash()


def test_native_checkpoint_hash_and_pixels_unchanged(exported: Exported) -> None:
    """The native path is the one the committed report was made with: its content hash is
    identity + sampler version + seed + n, exactly as before external generators existed."""
    import hashlib

    from gan_eval.gan.checkpoint import load_checkpoint
    from gan_eval.generators.source import SAMPLER_VERSION

    source = open_source(exported.native, n=7, seed=1, device="cpu")
    digest = hashlib.sha256(b"checkpoint")
    digest.update(load_checkpoint(exported.native).meta["state_sha256"].encode())
    digest.update(f"{SAMPLER_VERSION}/seed=1/n=7".encode())
    assert source.content_hash() == digest.hexdigest()
    assert "generator" not in source.record()


# -- the contract, on small generators defined in files ---------------------------------------

MODELS = '''
import torch
from torch import nn


class Conditional(nn.Module):
    z_dim = 4
    num_classes = 3

    def forward(self, z, c, truncation_psi=1.0):
        # image value = class / 2 - 0.5 + psi * 0 -> depends on the label and psi only
        base = (c.float() / 2.0 - 0.5)[:, None, None, None] * truncation_psi
        return base.expand(-1, 3, 4, 4) + 0 * z.sum()


def conditional():
    return Conditional()


def unit_range(z):
    return torch.sigmoid(z[:, :1, None, None].expand(-1, 1, 5, 5))


def bytes_out(z):
    return torch.full((z.shape[0], 3, 4, 4), 200, dtype=torch.uint8)


def nhwc(z):
    return torch.zeros(z.shape[0], 4, 4, 3)


def as_255(z):
    return torch.full((z.shape[0], 3, 4, 4), 255.0)


def with_nan(z):
    out = torch.zeros(z.shape[0], 3, 4, 4)
    out[0, 0, 0, 0] = float("nan")
    return out


def ints(z):
    return torch.zeros(z.shape[0], 3, 4, 4, dtype=torch.int64)


def a_tuple(z):
    return (z,)


NOT_CALLABLE = 3


def fails():
    raise RuntimeError("weights not found")
'''


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "user_models.py"
    path.write_text(MODELS)
    return path


def test_conditional_labels_and_truncation(models: Path, tmp_path: Path) -> None:
    spec = f"{models}:conditional"
    source = open_source(spec, n=30, seed=1, device="cpu")  # classes read from num_classes
    images = source.load()
    labels = source.class_labels(range(30), 30)
    assert labels is not None
    expected = ((labels.float() / 2 - 0.5 + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(images[:, 0, 0, 0], expected)
    assert set(labels.tolist()) == {0, 1, 2}  # uniform over the classes (30 seeded draws)
    assert torch.equal(source.read([7, 3]), images[[7, 3]])  # per-index draws
    psi = open_source(spec, n=30, seed=1, device="cpu",
                      options=GeneratorOptions(truncation=0.0)).load()
    assert int(psi.int().sub(128).abs().max()) <= 1  # ψ = 0 reached the model
    label_file = tmp_path / "labels.txt"
    label_file.write_text("\n".join(["2"] * 30))
    fixed = open_source(spec, n=30, seed=1, device="cpu",
                        options=GeneratorOptions(labels=str(label_file))).load()
    assert bool((fixed[:, 0, 0, 0] == 191).all())  # class 2 → 0.5 → round(1.5 · 127.5)
    assert "labels" in source.record()["generator"]["latent"]
    with pytest.raises(InputError, match="takes no truncation"):
        open_source(f"{models}:unit_range", n=2, device="cpu",
                    options=GeneratorOptions(z_dim=2, truncation=0.5))
    with pytest.raises(InputError, match=r"--labels .*class index 5"):
        label_file.write_text("\n".join(["5"] * 30))
        open_source(spec, n=30, device="cpu", options=GeneratorOptions(labels=str(label_file)))


def test_declared_ranges(models: Path) -> None:
    unit = open_source(f"{models}:unit_range", n=3, device="cpu",
                       options=GeneratorOptions(z_dim=2, output_range="0,1"))
    assert unit.source_channels == 1 and unit.resolution == (5, 5)
    z = unit.latents([0])  # type: ignore[attr-defined]
    assert int(unit.read([0])[0, 0, 0, 0]) == round(float(torch.sigmoid(z[0, 0])) * 255)
    raw = open_source(f"{models}:bytes_out", n=2, device="cpu",
                      options=GeneratorOptions(z_dim=2, output_range="uint8"))
    assert bool((raw.load() == 200).all())


def test_onnx_needs_onnxruntime(exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(MissingAssetError, match=r"gan-eval\[onnx\]"):
        open_generator(exported.onnx, n=2, device="cpu")
    result = CliRunner().invoke(app, ["sample", exported.onnx, "--n", "2", "--out", "x",
                                      "--device", "cpu"])
    assert result.exit_code == 3, result.output


def _pickles(folder: Path) -> list[Path]:
    state = {"w": torch.zeros(2)}
    zip_named_onnx = folder / "model.onnx"
    torch.save(state, zip_named_onnx)  # a torch.save zip, named like an ONNX model
    zip_named_zip = folder / "weights.zip"
    torch.save(state, zip_named_zip)
    legacy = folder / "g.bin"
    legacy.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    legacy_pt = folder / "g.pth"
    torch.save(state, legacy_pt, _use_new_zipfile_serialization=False)
    return [zip_named_onnx, zip_named_zip, legacy, legacy_pt]


def test_bad_specs_exit_2_with_a_message(models: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = tmp_path / "g.pt"
    unknown.write_bytes(b"not a model at all")
    cases = [
        ("py:no_such_module_gx:make", [], "No module named 'no_such_module_gx'"),
        (f"{models}:missing", [], "has no attribute 'missing'"),
        (f"{models}:NOT_CALLABLE", [], "int object is not callable"),
        (f"{models}:fails", [], r"calling the factory fails\(\) raised RuntimeError: weights "
         r"not found \(at .*user_models.py:\d+, in fails: raise RuntimeError"),
        (f"{tmp_path}/absent.py:G", [], "no such file"),
        (f"{models}:nhwc", ["--z-dim", "2"], "channels-last"),
        (f"{models}:as_255", ["--z-dim", "2"], r"span \[255, 255\]; expected floats in \[-1,1\]"),
        (f"{models}:with_nan", ["--z-dim", "2"], "NaN or infinite"),
        (f"{models}:ints", ["--z-dim", "2"], "returned torch.int64; expected floats"),
        (f"{models}:bytes_out", ["--z-dim", "2"], "--output-range uint8"),
        (f"{models}:unit_range", ["--z-dim", "2", "--output-range", "uint8"],
         "expects torch.uint8"),
        (f"{models}:a_tuple", ["--z-dim", "2"], "returned a tuple"),
        (f"{models}:unit_range", [], "pass --z-dim"),
        (f"{models}:conditional", ["--z-dim", "5"], "states a latent size of 4"),
        (f"{models}:unit_range", ["--z-dim", "2", "--output-range", "0,2"],
         "--output-range '0,2'"),
        (str(unknown), [], "unknown generator file type"),
        *[(str(p), [], "is a pickle") for p in _pickles(tmp_path)],
    ]
    for spec, extra, message in cases:
        result = runner.invoke(app, ["sample", spec, "--n", "2", "--out", str(tmp_path / "o"),
                                     "--device", "cpu", *extra])
        assert result.exit_code == 2, (spec, result.output)
        assert spec.split(":")[0] in result.output or spec in result.output or \
            "--output-range" in message, (spec, result.output)
        flat = " ".join(result.output.split())  # typer wraps long lines


        assert re.search(message, flat), (spec, message, flat)


def test_pickles_are_not_data_either(tmp_path: Path) -> None:
    """A pickle given as DATA (evaluate's GENERATED) is refused as well, not read as images."""
    for path in _pickles(tmp_path):
        assert is_generator(str(path))
        with pytest.raises(InputError, match="is a pickle"):
            open_source(str(path))


def test_sample_command_on_torchscript(exported: Exported, native: torch.Tensor,
                                       tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = CliRunner().invoke(app, ["sample", exported.torchscript_plain, "--n", "5", "--out",
                                      str(out), "--npz", "--seed", "5", "--device", "cpu",
                                      "--z-dim", str(exported.z_dim), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    with np.load(out / "samples.npz") as archive:
        assert np.array_equal(archive["images"], native[:5, 0].numpy())


# -- torch.export archives ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pt2(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(G, D) of the tiny run as torch.export archives."""
    return export_pt2_pair(tiny_run, tmp_path_factory.mktemp("pt2"))


def test_pt2_export_of_the_dcgan_gives_the_checkpoints_uint8_images(
    pt2: tuple[str, str], exported: Exported, native: torch.Tensor, tmp_path: Path
) -> None:
    source = open_source(pt2[0], n=N, seed=5, device="cpu")
    assert isinstance(source, ExternalSource)
    assert source.kind == "generator-torch-export" and source.nz == exported.z_dim
    assert torch.equal(source.load(), native)
    assert torch.equal(torch.cat(list(source.batches(7))), native)
    by_three = ExternalSource(pt2[0], n=N, seed=5, device="cpu", chunk=3)  # last call: 1 latent
    assert torch.equal(by_three.load(), native)
    record = source.record()["generator"]
    assert record["kind"] == "torch-export"
    assert list(record["files_sha256"]) == [str(Path(pt2[0]).resolve())]
    renamed = tmp_path / "generator.bin"  # recognised by its content, not its name
    renamed.write_bytes(Path(pt2[0]).read_bytes())
    assert torch.equal(open_source(str(renamed), n=4, seed=5, device="cpu").load(), native[:4])
    out = tmp_path / "s"
    result = CliRunner().invoke(app, ["sample", pt2[0], "--count", "5", "--out", str(out),
                                      "--npz", "--seed", "5", "--device", "cpu",
                                      "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    with np.load(out / "samples.npz") as archive:
        assert np.array_equal(archive["images"], native[:5, 0].numpy())


def test_pt2_discriminator_gives_the_checkpoints_attack_numbers(
    pt2: tuple[str, str], exported: Exported
) -> None:
    from gan_eval.robustness import AttackConfig, attack

    config = AttackConfig(model="discriminator", attacks=("fgsm",), n=4, seed=0, device="cpu",
                          reference="builtin:lfw-subset", epsilons=("8/255",))
    native = attack(exported.native, config)
    source = open_source(pt2[0], n=4, device="cpu",
                         options=GeneratorOptions(discriminator=pt2[1]))
    external = attack(source, config)
    assert [(m.name, m.value) for m in external.metrics] == \
        [(m.name, m.value) for m in native.metrics]
    assert external.robustness["clean"] == native.robustness["clean"]
    assert external.provenance["discriminator"]["kind"] == "torch-export"


def _rewrite(source: Path, target: Path, *, change: dict[str, bytes | None] | None = None,
             add: dict[str, bytes] | None = None, edit: Any = None) -> Path:
    """A copy of the archive ``source`` with members replaced (None: dropped), added, or
    edited (``edit(name, bytes) -> bytes``); names are below the root folder."""
    import zipfile

    with zipfile.ZipFile(source) as original, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as copy:
        root = original.namelist()[0].split("/", 1)[0]
        for name in original.namelist():
            inner = name.split("/", 1)[1]
            data = original.read(name)
            if change and inner in change:
                data = change[inner]  # type: ignore[assignment]
            if edit is not None and data is not None:
                data = edit(inner, data)
            if data is not None:
                copy.writestr(name, data)
        for inner, data in (add or {}).items():
            copy.writestr(f"{root}/{inner}", data)
    return target


def _json_edit(member: str, fn: Any) -> Any:
    def edit(inner: str, data: bytes) -> bytes:
        if inner != member:
            return data
        tree = json.loads(data)
        fn(tree)
        return json.dumps(tree).encode()
    return edit


class _Payload:
    """Unpickling it touches ``marker`` (what a malicious archive would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def _hostile_archives(g_pt2: Path, folder: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """{case: (archive, what the refusal says)}: one archive per way torch.export.load would run
    code from its file."""
    import io

    def first_weight(tree: dict[str, Any]) -> None:
        next(iter(tree["config"].values()))["use_pickle"] = True

    def inject_expression(tree: dict[str, Any]) -> None:
        text = json.dumps(tree).replace(
            "Symbol('s", f"__import__('pathlib').Path({str(marker)!r}).touch() or Symbol('s", 1)
        tree.clear()
        tree.update(json.loads(text))

    def call_torch_load(tree: dict[str, Any]) -> None:
        tree["graph_module"]["graph"]["nodes"][-1]["target"] = "torch.load"

    def guard_code(tree: dict[str, Any]) -> None:
        tree["guards_code"] = [f"__import__('pathlib').Path({str(marker)!r}).touch()"]

    def quoted_name(tree: dict[str, Any]) -> None:
        spec = tree["graph_module"]["signature"]["input_specs"][0]["parameter"]
        spec["parameter_name"] = 'main.0.weight")+__import__("os").getpid()#'

    pickle_bytes = io.BytesIO()
    torch.save((_Payload(marker),), pickle_bytes)
    weights, model = "data/weights/model_weights_config.json", "models/model.json"
    cases = {
        "pickled weight": (dict(edit=_json_edit(weights, first_weight)), "as a pickle"),
        "sample inputs that unpickle code": (
            dict(change={"data/sample_inputs/model.pt": pickle_bytes.getvalue()}),
            "sample inputs that are not plain tensors"),
        "shape expression that runs code": (dict(edit=_json_edit(model, inject_expression)),
                                            "not plain arithmetic"),
        "node calling torch.load": (dict(edit=_json_edit(model, call_torch_load)),
                                    "calls 'torch.load'"),
        "guard code": (dict(edit=_json_edit(model, guard_code)), "guards code"),
        "name pasted into source": (dict(edit=_json_edit(model, quoted_name)),
                                    "not a dotted identifier"),
        "custom object": (dict(add={"data/constants/custom_obj_0": b"x"}), "custom_obj_0"),
        "AOTInductor library": (dict(add={"data/aotinductor/model/model.so": b"\x7fELF"}),
                                "aotinductor"),
        "legacy weights pickle": (dict(add={"data/weights/model.pt": pickle_bytes.getvalue()}),
                                  "data/weights/model.pt"),
        "second program": (dict(add={"models/other.json": b"{}"}), "models/other.json"),
    }
    out = {}
    for k, (case, (kwargs, said)) in enumerate(cases.items()):
        out[case] = (_rewrite(g_pt2, folder / f"hostile{k}.pt2", **kwargs), said)
    old = folder / "old_format.pt2"  # the format before torch 2.8: a pickled state dict
    import zipfile

    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("serialized_exported_program.json", "{}")
        archive.writestr("serialized_state_dict.pt", pickle_bytes.getvalue())
        archive.writestr("version", "8.0")
    out["format before torch 2.8"] = (old, "format before torch 2.8")
    return out


def test_pt2_archives_that_would_run_code_are_refused(pt2: tuple[str, str],
                                                     tmp_path: Path) -> None:
    marker = tmp_path / "the-archive-ran-code"
    for case, (archive, said) in _hostile_archives(Path(pt2[0]), tmp_path, marker).items():
        with pytest.raises(InputError) as caught:
            open_source(str(archive), n=2, device="cpu")
        message = str(caught.value)
        assert str(archive) in message and said in message, (case, message)
        assert not marker.exists(), case
    # the same archive as --discriminator: refused, naming the option
    result = CliRunner().invoke(app, [
        "attack", pt2[0], "--model", "discriminator", "--count", "2", "--reference",
        "builtin:lfw-subset", "--device", "cpu", "--discriminator", str(tmp_path / "hostile0.pt2")])
    assert result.exit_code == 2, result.output
    assert f"--discriminator {tmp_path / 'hostile0.pt2'}" in " ".join(result.output.split())
    assert not marker.exists()


@pytest.mark.slow  # a demonstration (a child process importing torch), not a guard
def test_the_hostile_archives_do_run_code_in_torch_export_load(pt2: tuple[str, str],
                                                              tmp_path: Path) -> None:
    """The refusals above guard against real attacks: torch.export.load itself (in a child
    process) runs the payloads of the sample-inputs and shape-expression archives."""
    import subprocess

    from faults_helpers import child_env

    archives = _hostile_archives(Path(pt2[0]), tmp_path, tmp_path / "ran")
    for case in ("sample inputs that unpickle code", "shape expression that runs code"):
        marker = tmp_path / "ran"
        marker.unlink(missing_ok=True)
        archive = str(archives[case][0])
        code = (f"import torch\ntry:\n    torch.export.load({archive!r})\n"
                "except Exception:\n    pass\n")
        subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                       check=False, timeout=600)
        assert marker.exists(), case


@pytest.mark.parametrize("kind", ["torchscript", "pt2"])
@given(keep=st.floats(min_value=0.0, max_value=0.999))
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_truncated_archive_is_named_as_such(kind: str, keep: float, exported: Exported,
                                              pt2: tuple[str, str], tmp_path: Path) -> None:
    import zipfile

    archive = Path(exported.torchscript if kind == "torchscript" else pt2[0])
    whole = archive.read_bytes()
    cuts = [max(4, int(len(whole) * keep))]
    with zipfile.ZipFile(archive) as listing:  # right after a zip stored inside (a .pt2's
        for info in listing.infolist():        # sample inputs): its directory ends the file
            if info.filename.endswith(".pt"):
                head = whole[info.header_offset: info.header_offset + 30]
                names = int.from_bytes(head[26:28], "little") + \
                    int.from_bytes(head[28:30], "little")
                cuts.append(info.header_offset + 30 + names + info.compress_size)
    for cut in cuts:
        for name in ("g.pt", "g.pt2", "g.ts", "generator"):
            path = tmp_path / name
            path.write_bytes(whole[:cut])
            with pytest.raises(InputError, match=r"truncated or damaged archive"):
                open_source(str(path), n=2, device="cpu")
    result = CliRunner().invoke(app, ["sample", str(tmp_path / "g.pt2"), "--count", "2",
                                      "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == 2 and "unknown generator file type" not in result.output


def test_torchscript_errors_are_one_line_and_whole_with_debug(exported: Exported,
                                                              tmp_path: Path) -> None:
    args = ["sample", exported.torchscript_plain, "--z-dim", str(exported.z_dim + 3),
            "--count", "2", "--out", str(tmp_path / "o"), "--device", "cpu"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 2, plain.output
    error = [line for line in plain.output.splitlines() if "error:" in line]
    assert len(error) == 1 and exported.torchscript_plain in error[0]
    assert "calling the generator on latents 2×" in error[0]
    assert "Traceback of TorchScript" not in plain.output
    debug = CliRunner().invoke(app, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback of TorchScript" in debug.output


# -- the contract, checked by content -----------------------------------------------------------

CONTRACT_MODELS = '''
import torch
from torch import nn


class Recorder(nn.Module):
    """Images that depend on z only; remembers how many latents each call got."""

    z_dim = 3

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, z):
        self.calls.append(int(z.shape[0]))
        return torch.tanh(z[:, :, None, None].expand(-1, 3, 2, 2))


def recorder():
    return Recorder()


def sigmoid(z):
    return torch.sigmoid(z[:, :3, None, None].expand(-1, 3, 4, 4))


def tanh(z):
    return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4))


def noisy(z):
    return torch.tanh(z[:, :3, None, None] + torch.randn(z.shape[0], 3, 4, 4))
'''


@pytest.fixture(scope="module")
def contract_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "contract_models.py"
    path.write_text(CONTRACT_MODELS)
    return path


@given(n=st.integers(1, 40), batch=st.integers(1, 50), read=st.integers(1, 45))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_generator_gets_min_of_batch_size_and_images_left(
    contract_models: Path, n: int, batch: int, read: int
) -> None:
    spec = f"{contract_models}:recorder"
    source = open_source(spec, n=n, seed=1, device="cpu", batch_size=batch)
    assert isinstance(source, ExternalSource)
    calls = source.model.module.calls  # type: ignore[union-attr]
    assert calls == [min(2, n), min(2, n)]  # the probe, drawn twice
    calls.clear()
    images = torch.cat(list(source.batches(read)))
    per_call = min(batch, n)
    assert calls == [min(per_call, n - start) for start in range(0, n, per_call)]
    one_call = open_source(spec, n=n, seed=1, device="cpu", batch_size=n)
    assert torch.equal(images, one_call.load())
    assert source.content_hash() == one_call.content_hash()  # the pixels, not the batching


def test_output_that_never_goes_below_zero_warns_naming_output_range(
    contract_models: Path
) -> None:
    with pytest.warns(GeneratorContractWarning, match=r"--output-range 0,1"):
        unit = open_source(f"{contract_models}:sigmoid", n=4, device="cpu",
                           options=GeneratorOptions(z_dim=3))
    assert "never go below 0" in unit.record()["generator"]["warnings"][0]
    import subprocess

    from faults_helpers import child_env

    shown = subprocess.run([sys.executable, "-m", "gan_eval", "sample",
                            f"{contract_models}:sigmoid", "--z-dim", "3", "--count", "2",
                            "--out", str(contract_models.parent / "s"), "--device", "cpu"],
                           env=child_env(), capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert f"warning: {contract_models}:sigmoid: the generator's images never go below 0" in \
        shown.stderr and "--output-range 0,1" in shown.stderr
    import warnings

    for name, declared in (("sigmoid", "0,1"), ("tanh", "-1,1")):
        with warnings.catch_warnings():
            warnings.simplefilter("error", GeneratorContractWarning)
            fine = open_source(f"{contract_models}:{name}", n=4, device="cpu",
                               options=GeneratorOptions(z_dim=3, output_range=declared))
        assert fine.record()["generator"]["warnings"] == []


def test_a_non_deterministic_generator_is_refused_unless_allowed(contract_models: Path) -> None:
    spec = f"{contract_models}:noisy"
    with pytest.raises(InputError, match=r"non-deterministic generator.*--allow-nondeterministic"):
        open_source(spec, n=4, device="cpu", options=GeneratorOptions(z_dim=3))
    allowed = open_source(spec, n=4, device="cpu",
                          options=GeneratorOptions(z_dim=3, allow_nondeterministic=True))
    assert not allowed.cacheable
    record = allowed.record()["generator"]
    assert record["deterministic"]["same"] is False
    assert record["deterministic"]["allowed_otherwise"] is True
    assert record["options"]["allow_nondeterministic"] is True
    steady = open_source(f"{contract_models}:tanh", n=4, device="cpu",
                         options=GeneratorOptions(z_dim=3))
    assert steady.cacheable and steady.record()["generator"]["deterministic"]["same"] is True


LIMITED = '''
import torch


def make(z):
    """A generator that fits 3 latents per call, no more."""
    if z.shape[0] > 3:
        raise MemoryError(f"{z.shape[0]} latents do not fit")
    return torch.tanh(z[:, :3, None, None].expand(-1, 3, 8, 8))
'''


@pytest.mark.parametrize("command", [
    "sample", "evaluate", "gate", "attack", pytest.param("report", marks=pytest.mark.slow)])
def test_a_generator_that_fits_small_batches_is_audited_with_batch_size(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, every command called it with 64 latents (256 on CUDA) whatever --count and
    --batch-size said."""
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    module = tmp_path / "limited.py"
    module.write_text(LIMITED)
    gates = tmp_path / "gates.toml"
    gates.write_text('[[gate]]\nmetric = "fid"\nmax = 1e9\n')
    spec, ref = f"{module}:make", "builtin:lfw-subset"
    args = {
        "sample": ["sample", spec, "--out", str(tmp_path / "s")],
        "evaluate": ["evaluate", spec, "--reference", ref, "--splits", "5", "-q"],
        "gate": ["gate", spec, "--config", str(gates), "--data", ref],
        "attack": ["attack", spec, "--reference", ref, "--attack", "fgsm", "--eps", "8/255",
                   "--no-corruptions"],
        "report": ["report", "--checkpoint", spec, "--data", ref, "--attack-n", "2", "--out",
                   str(tmp_path / "r"), "-q"],
    }[command] + ["--count", "7", "--device", "cpu", "--z-dim", "3"]
    refused = CliRunner().invoke(app, args)
    flat = " ".join(refused.output.split())
    assert refused.exit_code == 2, flat
    assert "calling the generator on latents 7×3 raised MemoryError" in flat
    assert "a smaller --batch-size needs less memory" in flat
    fits = CliRunner().invoke(app, [*args, "--batch-size", "3"])
    assert fits.exit_code == 0, fits.output
