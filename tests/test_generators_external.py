"""External generators: the same pixels as the native checkpoint, the contract, bad specs → exit 2.

Reference for "the same images": the tiny run's native checkpoint source (its EMA generator,
``gan_eval.generators.native``), exported to TorchScript, ONNX, a ``py:`` factory and a
``file.py:attr`` factory (tests/generator_fixture.py).
"""

from __future__ import annotations

import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from generator_fixture import Exported, export_all
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.generators import GeneratorOptions, is_generator, open_generator
from gan_eval.generators.external import ExternalSource
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
