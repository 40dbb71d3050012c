"""The feature cache of an external generator is keyed on what it generated (issue #24).

Before, the key was the files gan-eval loaded (the .py, the .onnx) and a module's state_dict: a
weights file the factory reads with np.load, or an ONNX model's external data, could change and
the next run reported the old numbers from the cache; a non-deterministic generator got one key
and a cached first draw. Each test runs with the cache on, shows it is used (a second run of the
same generator is a hit with the same numbers), then changes what the key used to miss.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.evaluation import EvaluateConfig, evaluate
from gan_eval.features.extraction import extract
from gan_eval.features.registry import FeatureExtractor
from gan_eval.generators import GeneratorOptions
from gan_eval.results import Results
from gan_eval.sources import open_source

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REFERENCE = "builtin:lfw-subset"

FACTORY = '''
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent


def make():
    """G(z) = tanh(z W): W read from weights.npy, not a module's state_dict."""
    weights = torch.from_numpy(np.load(HERE / "weights.npy"))
    return lambda z: torch.tanh(z @ weights).view(-1, 3, 16, 16)


class Counted(torch.nn.Module):
    """tanh(z W), W from weights.npy kept outside the state_dict; counts its latents."""

    def __init__(self):
        super().__init__()
        self.weights = torch.from_numpy(np.load(HERE / "weights.npy"))
        self.calls = []

    def forward(self, z):
        self.calls.append(int(z.shape[0]))
        return torch.tanh(z @ self.weights).view(-1, 3, 16, 16)


def counted():
    return Counted()


def noisy():
    weights = torch.from_numpy(np.load(HERE / "weights.npy"))
    return lambda z: torch.tanh(z @ weights + 0.3 * torch.randn(z.shape[0], 768)).view(
        -1, 3, 16, 16)
'''


def _weights(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.7, (4, 3 * 16 * 16)).astype(np.float32)


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "gen.py").write_text(FACTORY)
    np.save(folder / "weights.npy", _weights(1))
    return folder / "gen.py"


def _evaluate_cli(spec: str, tmp_path: Path, name: str, *extra: str) -> tuple[int, str, Path]:
    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(app, ["evaluate", spec, "--reference", REFERENCE, "--count", "8",
                                      "--splits", "5", "--device", "cpu", "-q", "--json",
                                      str(out), "--z-dim", "4", *extra],
                                env={"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache")})
    return result.exit_code, result.output, out


def _numbers(results: Results) -> dict[str, float]:
    return {m.name: m.value for m in results.metrics}


def _generated_cached(results: Results) -> bool:
    return bool(results.provenance["extractors"]["dlib-face"]["cached"]["generated"])


def test_changing_a_weights_file_the_factory_loads_changes_the_numbers(
    factory: Path, tmp_path: Path
) -> None:
    spec = f"{factory}:make"
    code, output, first_json = _evaluate_cli(spec, tmp_path, "first")
    assert code == 0, output
    first = Results.load(first_json)
    code, output, again_json = _evaluate_cli(spec, tmp_path, "again")
    assert code == 0, output
    again = Results.load(again_json)
    assert _generated_cached(again) and _numbers(again) == _numbers(first)  # the cache is on
    np.save(factory.parent / "weights.npy", _weights(2))  # the .py file is unchanged
    code, output, changed_json = _evaluate_cli(spec, tmp_path, "changed")
    assert code == 0, output
    changed = Results.load(changed_json)
    assert not _generated_cached(changed)
    assert _numbers(changed)["fid"] != _numbers(first)["fid"]
    generated = changed.provenance["data"]["generated"]
    assert generated["generator"]["files_sha256"] == \
        first.provenance["data"]["generated"]["generator"]["files_sha256"]  # what the key was
    assert generated["content_hash"] != first.provenance["data"]["generated"]["content_hash"]


class _Linear(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3 * 16 * 16)
        with torch.no_grad():
            self.lin.weight.copy_(torch.from_numpy(_weights(seed).T.copy()))
            self.lin.bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(z)).view(-1, 3, 16, 16)


def _onnx_with_external_data(folder: Path, seed: int) -> Path:
    import onnx

    from gan_eval.generators.export import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    plain = export_onnx(_Linear(seed), 4, folder / "plain.onnx")
    model = onnx.load(str(plain))
    path = folder / "g.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="g.onnx.data", size_threshold=0)
    plain.unlink()
    return path


def test_changing_an_onnx_models_external_data_changes_the_numbers(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = _onnx_with_external_data(tmp_path / "a", seed=1)
    other = _onnx_with_external_data(tmp_path / "b", seed=2)
    assert model.read_bytes() == other.read_bytes()  # only the external data differs
    config = EvaluateConfig(n=8, splits=5, cache_dir=tmp_path / "cache", device="cpu",
                            progress=False)
    first = evaluate(str(model), REFERENCE, config)
    again = evaluate(str(model), REFERENCE, config)
    assert _generated_cached(again) and _numbers(again) == _numbers(first)
    shutil.copyfile(other.with_name("g.onnx.data"), model.with_name("g.onnx.data"))
    changed = evaluate(str(model), REFERENCE, config)
    assert not _generated_cached(changed)
    assert _numbers(changed)["fid"] != _numbers(first)["fid"]
    assert _numbers(changed) == _numbers(evaluate(str(other), REFERENCE, config))


def test_a_non_deterministic_generator_is_refused_and_never_cached_when_allowed(
    factory: Path, tmp_path: Path
) -> None:
    spec = f"{factory}:noisy"
    code, output, _ = _evaluate_cli(spec, tmp_path, "refused")
    flat = " ".join(output.split())
    assert code == 2 and f"{spec}: non-deterministic generator" in flat, flat
    assert "--allow-nondeterministic" in flat
    runs = []
    for name in ("first", "second"):
        code, output, path = _evaluate_cli(spec, tmp_path, name, "--allow-nondeterministic")
        assert code == 0, output
        runs.append(Results.load(path))
    assert not any(_generated_cached(r) for r in runs)
    generator = runs[1].provenance["data"]["generated"]["generator"]
    assert generator["options"]["allow_nondeterministic"] is True
    assert generator["deterministic"]["same"] is False
    assert generator["content_hash_of"].startswith("identity only")
    from safetensors import safe_open

    stored = []
    for entry in (tmp_path / "cache" / "features").glob("*.safetensors"):
        with safe_open(str(entry), framework="pt") as handle:
            stored.append((handle.metadata() or {}).get("source"))
    # the reference's features and the floor/ceiling controls' (noise, mean face), nothing of
    # the generator's
    assert REFERENCE in stored
    assert all(s == REFERENCE or s.startswith("control:") for s in stored), stored


def test_each_image_is_generated_once_per_extraction_cached_or_not(
    factory: Path, tmp_path: Path
) -> None:
    """Keying on pixels costs no second pass: extraction reads first and hashes after; a cached
    entry (looked up under the generator's files, weights and settings) is used only when the
    pixels it came from hash as the images do now, which generates them once, extracts none."""
    spec = f"{factory}:counted"

    def run(cache: bool) -> tuple[list[int], Results]:
        source = open_source(spec, n=8, seed=0, device="cpu", batch_size=4,
                             options=GeneratorOptions(z_dim=4))
        calls = source.model.module.calls  # type: ignore[attr-defined]
        calls.clear()  # (the probe)
        results = evaluate(source, REFERENCE, EvaluateConfig(
            n=8, splits=5, cache_dir=tmp_path / "cache", use_cache=cache, device="cpu",
            progress=False, batch_size=4))
        return list(calls), results

    calls, first = run(cache=True)
    assert calls == [4, 4] and not _generated_cached(first)  # a miss: one pass, extracted
    calls, hit = run(cache=True)
    assert calls == [4, 4] and _generated_cached(hit)  # a hit: one pass, to check the pixels
    assert _numbers(hit) == _numbers(first)
    calls, uncached = run(cache=False)
    assert calls == [4, 4] and _numbers(uncached) == _numbers(first)
    np.save(factory.parent / "weights.npy", _weights(3))  # same files, other images
    calls, changed = run(cache=True)
    assert calls == [4, 4, 4, 4] and not _generated_cached(changed)  # checked, then extracted
    assert any("were of other images" in note for note in changed.provenance["notes"])
    assert _numbers(changed)["fid"] != _numbers(first)["fid"]
    assert changed.provenance["data"]["generated"]["content_hash"] != \
        first.provenance["data"]["generated"]["content_hash"]


# -- under torchrun: each rank reads its shard, the pixel hash is the whole generator's ----------

PLAIN = """
import torch


def make(z):
    return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4) * 3)
"""


class _Pixels(FeatureExtractor):
    """Cheap features: the first five pixels of each image."""

    name = "pixels-test"
    primary = "pixels"

    def __init__(self) -> None:
        super().__init__(torch.device("cpu"))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": images.float().flatten(1)[:, :5] / 255}

    def weights_sha256(self) -> str:
        return "0" * 64


def _sharded_worker(rank: int, port: int, out: str, cache_dir: str, spec: str) -> None:
    import os

    import torch.distributed as torch_dist

    from gan_eval import distributed as dist
    from gan_eval.features.cache import FeatureCache

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="3")
    torch.set_num_threads(1)
    with dist.job("cpu"):
        cache = FeatureCache(Path(cache_dir))
        options = GeneratorOptions(z_dim=3)
        first = extract(open_source(spec, n=7, device="cpu", batch_size=2, options=options),
                        _Pixels(), batch_size=2, cache=cache, progress=False)
        torch_dist.barrier()  # rank 0 has written the cache entry
        again = extract(open_source(spec, n=7, device="cpu", batch_size=2, options=options),
                        _Pixels(), batch_size=2, cache=cache, progress=False)
        Path(f"{out}.{rank}").write_text(json.dumps({
            "pixels": first.tensors["pixels"].tolist(), "hash": first.source_hash,
            "key": first.key, "again_cached": again.from_cache, "again_hash": again.source_hash,
        }))


@pytest.mark.slow  # three processes
def test_sharded_extraction_of_a_generator_equals_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp
    from torchrun_helpers import free_port

    module = tmp_path / "plain.py"
    module.write_text(PLAIN)
    spec = f"{module}:make"
    out = tmp_path / "rank"
    mp.spawn(_sharded_worker, args=(free_port(), str(out), str(tmp_path / "cache"), spec),
             nprocs=3, join=True)
    single = extract(open_source(spec, n=7, device="cpu", batch_size=2,
                                 options=GeneratorOptions(z_dim=3)),
                     _Pixels(), batch_size=2, progress=False)
    for rank in range(3):
        row = json.loads(Path(f"{out}.{rank}").read_text())
        assert torch.equal(torch.tensor(row["pixels"]), single.tensors["pixels"]), rank
        assert row["hash"] == row["again_hash"] == single.source_hash, rank
        assert row["key"] == single.key and row["again_cached"], rank
    assert len(list((tmp_path / "cache" / "features").glob("*.safetensors"))) == 1
