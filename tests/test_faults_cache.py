"""Feature-cache integrity (issue #15): damaged, foreign or mismatched entries are detected,
removed and recomputed; an unusable cache folder is an InputError naming GAN_EVAL_CACHE_DIR."""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_helpers import run_unprivileged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from gan_eval.errors import InputError
from gan_eval.features.cache import CacheEntryWarning, FeatureCache, cache_key

KEY = cache_key(source="abc", n=4)
OTHER = cache_key(source="abc", n=5)


def tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"pool": torch.randn(4, 8, generator=g), "logits": torch.randn(4, 3, generator=g)}


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    c = FeatureCache(tmp_path / "cache")
    c.store(KEY, tensors(), {"source": "s"})
    return c


def entry(cache: FeatureCache, key: str = KEY) -> Path:
    return cache._path(key)


def payload_offset(path: Path) -> int:
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_len


def test_sound_entry_round_trips(cache: FeatureCache) -> None:
    found = cache.lookup(KEY, expected_rows=4, expected_names={"pool", "logits"})
    assert found.reason is None and found.tensors is not None
    for name, value in tensors().items():
        assert torch.equal(found.tensors[name], value)


@pytest.mark.parametrize("where", [0, 1, 17, 63, 95])  # bytes into the payload (128 bytes)
def test_flipped_payload_bytes_are_detected_and_the_entry_removed(cache: FeatureCache,
                                                                  where: int) -> None:
    path = entry(cache)
    data = bytearray(path.read_bytes())
    data[payload_offset(path) + where] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.warns(CacheEntryWarning, match="sha256"):
        assert cache.load(KEY) is None
    assert len(cache.rejected) == 1 and str(path) in cache.rejected[0]
    assert not path.exists()  # removed: the caller recomputes and stores it again


def test_entry_under_another_key_is_rejected(cache: FeatureCache) -> None:
    shutil.copy(entry(cache), entry(cache, OTHER))
    found = cache.lookup(OTHER)
    assert found.tensors is None and found.reason and "another key" in found.reason


def test_wrong_row_count_is_rejected(cache: FeatureCache) -> None:
    found = cache.lookup(KEY, expected_rows=20)
    assert found.tensors is None and found.reason and "rows" in found.reason


def test_other_tensor_names_are_rejected_not_a_key_error(cache: FeatureCache) -> None:
    found = cache.lookup(KEY, expected_names={"pool", "embeddings"})
    assert found.tensors is None and found.reason and "embeddings" in found.reason


def _rewrite(path: Path, data: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    save_file(data, str(path), metadata=meta)


def _meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


@pytest.mark.parametrize("change", ["schema", "layout", "sha", "legacy", "tensor-swap",
                                    "bad-json"])
def test_forged_metadata_is_rejected(cache: FeatureCache, change: str) -> None:
    path = entry(cache)
    meta, data = _meta(path), tensors()
    if change == "schema":
        meta["cache.schema"] = "gan-eval/feature-cache/v1"
    elif change == "layout":
        data["pool"] = data["pool"][:3]  # recorded shape says 4 rows
    elif change == "sha":
        meta["cache.sha256"] = "0" * 64
    elif change == "legacy":  # an entry of the old format: no integrity record at all
        meta = {"source": "s"}
    elif change == "tensor-swap":
        data["pool"] = data["pool"] + 1.0
    else:
        meta["cache.tensors"] = "{"
    _rewrite(path, data, meta)
    found = cache.lookup(KEY, expected_rows=4)
    assert found.tensors is None and found.reason, change
    assert not path.exists()


def test_truncated_entry_is_rejected(cache: FeatureCache) -> None:
    path = entry(cache)
    path.write_bytes(path.read_bytes()[:50])
    found = cache.lookup(KEY)
    assert found.tensors is None and found.reason and "unreadable" in found.reason


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=600), flips=st.lists(st.integers(0, 10_000), max_size=4))
def test_any_bytes_are_a_hit_or_a_reasoned_miss(tmp_path: Path, blob: bytes,
                                                flips: list[int]) -> None:
    cache = FeatureCache(tmp_path / "prop")
    cache.store(KEY, tensors(), {})
    path = entry(cache)
    good = path.read_bytes()
    damaged = bytearray(good) if not blob else bytearray(blob)
    for flip in flips:
        if damaged:
            damaged[flip % len(damaged)] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheEntryWarning)
        found = cache.lookup(KEY, expected_rows=4, expected_names={"pool", "logits"})
    if found.tensors is not None:  # only the intact entry may be served
        assert bytes(damaged) == good
    else:
        assert found.reason is not None


def test_cache_folder_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "cachefile"
    root.write_text("not a folder")
    cache = FeatureCache(root)
    for call in (lambda: cache.lookup(KEY), lambda: cache.store(KEY, tensors(), {})):
        with pytest.raises(InputError, match="GAN_EVAL_CACHE_DIR") as info:
            call()
        assert str(root) in str(info.value)
    (tmp_path / "c2").mkdir()
    (tmp_path / "c2" / "features").write_text("")  # the entries folder is a file
    with pytest.raises(InputError, match="GAN_EVAL_CACHE_DIR"):
        FeatureCache(tmp_path / "c2").store(KEY, tensors(), {})


def test_cache_write_failure_is_an_input_error_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gan_eval.features.cache as cache_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(cache_module, "save_file", refuse)
    with pytest.raises(InputError, match=r"GAN_EVAL_CACHE_DIR.*Permission denied"):
        FeatureCache(tmp_path / "c").store(KEY, tensors(), {})
    assert not list((tmp_path / "c" / "features").iterdir())  # no temp left behind


@pytest.mark.slow  # a child process; the in-process test above covers the class by default
def test_unwritable_cache_folder_is_an_input_error(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o555)  # no writes, even into a fresh features/ folder
    code = (
        "import torch, pathlib\n"
        "from gan_eval.errors import InputError\n"
        "from gan_eval.features.cache import FeatureCache\n"
        f"c = FeatureCache(pathlib.Path({str(root)!r}))\n"
        "try:\n"
        "    c.store('k', {'x': torch.zeros(2)}, {})\n"
        "except InputError as e:\n"
        "    print('INPUT', e)\n"
    )
    result = run_unprivileged(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("INPUT") and "GAN_EVAL_CACHE_DIR" in result.stdout
    assert str(root) in result.stdout


# -- end to end: a damaged entry through gan_eval.evaluation ------------------------------------

def test_damaged_entry_in_evaluate_is_recomputed_and_fid_unchanged(tmp_path: Path) -> None:
    from gan_eval.evaluation import EvaluateConfig, evaluate
    from gan_eval.sources import open_source

    faces = open_source("builtin:lfw-subset").load()
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(rng.normal(0, 6, faces[:24].shape)).float()
    jittered = (faces[:24].flip(-1).float() + noise).round().clamp(0, 255).to(torch.uint8)
    generated, reference = tmp_path / "g.npy", tmp_path / "r.npy"
    np.save(generated, jittered.numpy())
    np.save(reference, faces[30:54].numpy())
    config = EvaluateConfig(cache_dir=tmp_path / "cache", splits=5, progress=False)
    first = evaluate(str(generated), str(reference), config)
    fid = first.metric("fid").value
    entries = sorted((tmp_path / "cache" / "features").glob("*.safetensors"))
    assert len(entries) == 4  # generated, reference, and the two degenerate controls
    for path in entries:  # damage every entry: one float of the payload becomes huge
        data = bytearray(path.read_bytes())
        data[payload_offset(path) + 2] ^= 0x7F
        path.write_bytes(bytes(data))
    second = evaluate(str(generated), str(reference), config)
    rejected = [n for n in second.provenance["notes"] if "were not used and are recomputed" in n]
    assert len(rejected) == 4, second.provenance["notes"]  # the user is told, per entry
    passes = second.provenance["forward_passes"]["dlib-face"]
    assert passes["generated"] > 0 and passes["reference"] > 0  # recomputed, not served
    assert second.metric("fid").value == pytest.approx(fid, rel=1e-9)
    # the recomputed entries are sound again: a third run is served from the cache
    third = evaluate(str(generated), str(reference), config)
    assert third.provenance["forward_passes"]["dlib-face"] == {"generated": 0, "reference": 0}
    assert third.provenance["controls"]["forward_passes"]["dlib-face"] == {
        "uniform noise": 0, "mean face": 0}
    assert third.metric("fid").details["floor"] == first.metric("fid").details["floor"]
    assert third.metric("fid").value == pytest.approx(fid, rel=1e-9)
    assert json.dumps(third.metric("fid").value)  # a plain number
