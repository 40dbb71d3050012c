"""Fast InceptionV3 features: same numbers as torch-fidelity, honest offline weight handling.

All weights here are random calibrated weights in the real file format
(``tests/inception_fixture.py``): every FID/KID/IS value below is PLUMBING (it checks wiring
and equality with torch-fidelity), never a quality number.
"""

from __future__ import annotations

import os
import pickle
import socket
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features import inception_weights as iw
from gan_eval.features.inception import (
    FAST_EXTRACTOR_NAME,
    FeatureExtractorInceptionFast,
    InceptionFeatures,
    build_reference_extractor,
    load_inception,
)
from gan_eval.fileio import sha256_file

try:
    import inception_fixture as fx
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests import inception_fixture as fx

TOL = 1e-4  # relative: ‖ours − torch-fidelity‖ / ‖torch-fidelity‖
FEATURES = ("2048", "logits_unbiased")


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


class NetworkCalls:
    """Records every attempt to reach the network (all such entry points raise)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def trap(self, name: str) -> Any:
        def refuse(*args: object, **kwargs: object) -> None:
            self.calls.append(f"{name}{args[:1]}")
            raise AssertionError(f"network access attempted: {name}{args[:1]}")

        return refuse


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkCalls]:
    """Every test runs with downloads trapped; each test then asserts none was attempted."""
    calls = NetworkCalls()
    for target, name in [
        (torch.hub, "download_url_to_file"),
        (torch.hub, "load_state_dict_from_url"),
        (torch.hub, "urlopen"),
        (tf_inception, "load_state_dict_from_url"),
        (urllib.request, "urlopen"),
        (urllib.request, "urlretrieve"),
    ]:
        monkeypatch.setattr(target, name, calls.trap(f"{target.__name__}.{name}"))
    monkeypatch.setattr(socket.socket, "connect", calls.trap("socket.connect"))
    yield calls
    assert calls.calls == [], f"download attempted: {calls.calls}"


@pytest.fixture()
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch hub dir → an empty tmp dir; GAN_EVAL_INCEPTION_WEIGHTS unset."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.delenv(iw.INCEPTION_WEIGHTS_ENV, raising=False)
    # gan-eval's own weights cache is searched before the hub's: keep it empty too
    monkeypatch.delenv("GAN_EVAL_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return hub


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random calibrated weights in torch-fidelity's file format (plumbing), written once."""
    path = tmp_path_factory.mktemp("inception") / fx.FIXTURE_FILENAME
    return fx.write_calibrated_weights(path, seed=0)


@pytest.fixture(scope="module")
def stock(weights_file: Path) -> FeatureExtractorInceptionV3:
    """torch-fidelity's own extractor, loading the file itself (by path)."""
    return FeatureExtractorInceptionV3(
        "inception-v3-compat", list(FEATURES), feature_extractor_weights_path=str(weights_file)
    ).eval()


@pytest.fixture(scope="module")
def fast(weights_file: Path) -> InceptionFeatures:
    return load_inception(weights_file, "cpu")


@pytest.fixture(scope="module")
def faces_a() -> torch.Tensor:
    return fx.lfw_faces(16, start=0, size=64, seed=1)


@pytest.fixture(scope="module")
def faces_b() -> torch.Tensor:
    return fx.lfw_faces(16, start=50, size=64, seed=2)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


class ImageSet(torch.utils.data.Dataset[torch.Tensor]):
    """uint8 N×3×H×W tensor as a torch-fidelity input (a Dataset of uint8 3×H×W)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


# ------------------------------------------------------------------------------------------
# same numbers as torch-fidelity
# ------------------------------------------------------------------------------------------


def test_features_equal_torch_fidelity(
    stock: FeatureExtractorInceptionV3, fast: InceptionFeatures, faces_a: torch.Tensor
) -> None:
    images = faces_a[:8]
    with torch.no_grad():
        reference = dict(zip(FEATURES, stock(images), strict=True))
    ours = fast(images)
    assert set(ours) == set(FEATURES)
    assert ours["2048"].shape == (8, 2048) and ours["logits_unbiased"].shape == (8, 1008)
    for name in FEATURES:
        assert ours[name].dtype == reference[name].dtype == torch.float32
        assert rel(ours[name], reference[name]) <= TOL, name
        torch.testing.assert_close(ours[name], reference[name], rtol=TOL,
                                   atol=TOL * float(reference[name].abs().max()))
    # plumbing sanity: the calibrated weights do not collapse the features
    assert float(reference["2048"].std(0).mean()) > 0.1


@pytest.mark.parametrize("merge_1x1", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_every_provided_feature_matches(weights_file: Path, faces_b: torch.Tensor,
                                        merge_1x1: bool) -> None:
    names = list(FeatureExtractorInceptionV3.get_provided_features_list())
    images = faces_b[:2]
    stock_all = FeatureExtractorInceptionV3("inception-v3-compat", names,
                                            feature_extractor_weights_path=str(weights_file))
    with torch.no_grad():
        reference = dict(zip(names, stock_all(images), strict=True))
    ours = load_inception(weights_file, "cpu", features=names, merge_1x1=merge_1x1)(images)
    for name in names:
        assert rel(ours[name], reference[name]) <= TOL, name


@pytest.mark.slow  # float64 convolutions are slow on CPU
def test_float64_internal_dtype(weights_file: Path, stock: FeatureExtractorInceptionV3,
                                faces_a: torch.Tensor) -> None:
    images = faces_a[:2]
    ours = load_inception(weights_file, "cpu", internal_dtype="float64")(images)
    with torch.no_grad():
        reference = dict(zip(FEATURES, stock(images), strict=True))
    for name in FEATURES:
        assert ours[name].dtype == torch.float32  # torch-fidelity returns float32 features
        assert rel(ours[name], reference[name]) <= TOL


def test_chunks_and_empty_batch(fast: InceptionFeatures, faces_a: torch.Tensor) -> None:
    images = faces_a[:5]
    whole = fast(images)
    fast.chunk_size = 2
    try:
        chunked = fast(images)
    finally:
        fast.chunk_size = None
    for name in FEATURES:  # batch size may change oneDNN's algorithm: rounding-level changes
        assert rel(chunked[name], whole[name]) <= TOL
    empty = fast(torch.zeros(0, 3, 64, 64, dtype=torch.uint8))
    assert empty["2048"].shape == (0, 2048) and empty["logits_unbiased"].shape == (0, 1008)


def _metrics(extractor: str, weights: Path, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    return dict(torch_fidelity.calculate_metrics(
        input1=ImageSet(a), input2=ImageSet(b), feature_extractor=extractor,
        feature_extractor_weights_path=str(weights), fid=True, kid=True, isc=True,
        cuda=False, cache=False, save_cpu_ram=True, verbose=False, batch_size=16,
        kid_subset_size=8, kid_subsets=20, isc_splits=2,
    ))


@pytest.mark.slow
def test_calculate_metrics_same_as_torch_fidelity(
    weights_file: Path, faces_a: torch.Tensor, faces_b: torch.Tensor
) -> None:
    """calculate_metrics on gan-eval's 'inception' vs 'inception-v3-compat', same file: every
    metric within 1e-4 relative (std metrics: or 1e-4 of their mean). Values are plumbing."""
    reference = _metrics("inception-v3-compat", weights_file, faces_a, faces_b)
    ours = _metrics(FAST_EXTRACTOR_NAME, weights_file, faces_a, faces_b)
    assert set(ours) == set(reference)
    assert reference["frechet_inception_distance"] > 10  # features differ between face sets
    for key, value in reference.items():
        scale = abs(value)
        if key.endswith("_std"):
            scale = max(scale, abs(reference[key.replace("_std", "_mean")]))
        assert abs(ours[key] - value) <= TOL * scale, (key, ours[key], value)


# ------------------------------------------------------------------------------------------
# weights: location, errors, provenance, no downloads
# ------------------------------------------------------------------------------------------


def test_missing_weights_message(empty_hub: Path, no_network: NetworkCalls) -> None:
    with pytest.raises(MissingAssetError) as info:
        iw.resolve_inception_weights(None)
    message = str(info.value)
    assert info.value.exit_code == 3
    assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert tf_inception.URL_INCEPTION_V3 in message  # the URL text, as torch-fidelity writes it
    assert "GAN_EVAL_INCEPTION_WEIGHTS" in message
    assert "--inception-weights" in message
    assert str(empty_hub / "checkpoints" / iw.INCEPTION_WEIGHTS_FILENAME) in message
    with pytest.raises(MissingAssetError):
        load_inception(None, "cpu")
    with pytest.raises(MissingAssetError):  # through torch-fidelity: no silent download either
        torch_fidelity.calculate_metrics(
            input1=ImageSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)), isc=True,
            feature_extractor=FAST_EXTRACTOR_NAME, cuda=False, cache=False, verbose=False,
        )
    assert no_network.calls == []
    assert not empty_hub.exists()  # resolving does not even create the cache folder


def test_hub_cache_location(empty_hub: Path, weights_file: Path) -> None:
    cached = empty_hub / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert iw.hub_cache_path() == cached
    cached.parent.mkdir(parents=True)
    os.symlink(weights_file, cached)
    assert iw.resolve_inception_weights(None) == cached


def test_env_var_and_explicit_order(empty_hub: Path, weights_file: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_EVAL_INCEPTION_WEIGHTS", str(weights_file))
    assert iw.resolve_inception_weights(None) == weights_file
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    assert iw.resolve_inception_weights(other) == other  # explicit beats the env var
    monkeypatch.setenv("GAN_EVAL_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(InputError) as info:
        iw.resolve_inception_weights(None)
    assert "nope.pth" in str(info.value) and "GAN_EVAL_INCEPTION_WEIGHTS" in str(info.value)
    assert info.value.exit_code == 2


def test_env_var_is_used_by_load_and_sha256(empty_hub: Path, weights_file: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_EVAL_INCEPTION_WEIGHTS", str(weights_file))
    loaded = iw.load_inception_weights(iw.resolve_inception_weights(None))
    assert loaded.path == weights_file
    assert loaded.sha256 == sha256_file(weights_file) == iw.inception_weights_sha256(None)


def test_fast_module_records_provenance(fast: InceptionFeatures, weights_file: Path) -> None:
    assert fast.weights_path == weights_file
    assert fast.weights_sha256 == sha256_file(weights_file)


def test_bad_paths_are_input_errors(tmp_path: Path, empty_hub: Path) -> None:
    missing = tmp_path / "missing.pth"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(1000))
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], not_a_dict)
    wrong_keys = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(3)}, wrong_keys)
    wrong_shape = tmp_path / "shape.pth"
    shaped = {k: torch.zeros(s) for k, s in iw.inception_state_shapes().items()}
    torch.save(shaped | {"fc.weight": torch.zeros(3)}, wrong_shape)
    cases = [missing, tmp_path, garbage, not_a_dict, wrong_keys, wrong_shape]
    for path in cases:
        with pytest.raises(InputError) as info:
            load_inception(path, "cpu")
        assert str(path) in str(info.value), str(info.value)
        assert info.value.exit_code == 2


def test_incomplete_state_dict_is_input_error(weights_file: Path, tmp_path: Path) -> None:
    """All signature keys present but one layer missing: torch-fidelity's strict load says no."""
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(InputError) as info:
        build_reference_extractor(partial)
    assert str(partial) in str(info.value)


class _Payload:
    """Unpickling this would create a marker folder (arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_weights_file_is_never_unpickled_unsafely(tmp_path: Path, empty_hub: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": _Payload(marker)}, evil)
    assert zipfile.is_zipfile(evil)
    with pytest.raises(InputError) as info:
        load_inception(evil, "cpu")
    assert str(evil) in str(info.value)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(InputError):
        load_inception(raw, "cpu")
    assert not marker.exists()


def test_fixture_file_has_torch_fidelity_format(weights_file: Path) -> None:
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    assert type(state) is dict
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["fc.weight"].shape == (1008, 2048)
    assert len(state) == 94 * 5 + 2  # 94 BasicConv2d (conv + 4 BN tensors) + fc weight/bias


# ------------------------------------------------------------------------------------------
# inputs and registration
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(2, 3, 16, 16),  # float
        torch.zeros(2, 3, 16, 16, dtype=torch.int64),
        torch.zeros(2, 1, 16, 16, dtype=torch.uint8),  # grey
        torch.zeros(3, 16, 16, dtype=torch.uint8),  # no batch dim
        [[0, 1]],
    ],
)
def test_non_uint8_batches_are_input_errors(fast: InceptionFeatures, bad: Any) -> None:
    with pytest.raises(InputError):
        fast(bad)


def test_registered_in_torch_fidelity_by_the_one_route_and_lazily(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing gan_eval.features registered the hand-written class under gan-eval's own name
    (register_extractor's fidelity_class), loading no weights."""
    from gan_eval.features import fidelity
    from gan_eval.features.registry import EXTRACTORS

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("registering must not load weights")

    monkeypatch.setattr(iw, "load_inception_weights", no_loading)
    assert FAST_EXTRACTOR_NAME == "inception" and "inception" in EXTRACTORS
    assert FEATURE_EXTRACTORS_REGISTRY["inception"] is FeatureExtractorInceptionFast
    fidelity.register("inception", FeatureExtractorInceptionFast)  # idempotent
    assert (FeatureExtractorInceptionFast.get_provided_features_list()
            == FeatureExtractorInceptionV3.get_provided_features_list())
    for metric in ("isc", "fid", "kid", "prc"):
        assert (FeatureExtractorInceptionFast.get_default_feature_layer_for_metric(metric)
                == FeatureExtractorInceptionV3.get_default_feature_layer_for_metric(metric))


def test_state_shapes_are_the_fixture_file_and_torch_fidelity_loads_it(weights_file: Path) -> None:
    """The exact table the checks use is torch-fidelity's architecture; the fixture (written as
    torch-fidelity's converter writes the real file: no num_batches_tracked) has those keys."""
    shapes = iw.inception_state_shapes()
    state = torch.load(weights_file, weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: s for k, s in shapes.items() if not k.endswith("num_batches_tracked")}
    assert iw.check_inception_weights(weights_file).startswith(f"{len(state)} tensors")


def test_registered_extractor_rejects_float_input(weights_file: Path) -> None:
    extractor = FeatureExtractorInceptionFast("inception", ["2048"],
                                              feature_extractor_weights_path=str(weights_file))
    with pytest.raises(InputError):
        extractor(torch.zeros(1, 3, 8, 8))
    (out,) = extractor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert out.shape == (1, 2048) and out.dtype == torch.float32


@pytest.mark.slow
def test_plumbing_fid_between_face_sets(fast: InceptionFeatures) -> None:
    """Calibration sanity (plumbing, not FID): two disjoint jittered LFW sets of 50 are far
    apart (≈100 with torch-fidelity's FID formula), a set against itself is ≈0."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    a = fast(fx.lfw_faces(50, start=0, seed=1))["2048"]
    b = fast(fx.lfw_faces(50, start=50, seed=2))["2048"]
    stats_a, stats_b = fid_features_to_statistics(a), fid_features_to_statistics(b)
    fid = fid_statistics_to_metric(stats_a, stats_b, False)["frechet_inception_distance"]
    same = fid_statistics_to_metric(stats_a, stats_a, False)["frechet_inception_distance"]
    assert 50 < fid < 300
    assert abs(same) < 1e-3
