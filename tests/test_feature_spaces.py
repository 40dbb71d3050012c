"""DINOv2 and CLIP extractors against independent implementations, on random weights written in
the official file formats (``tests/spaces_fixture.py``: every number here is PLUMBING)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from gan_eval import weights as w
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features import clip as cl
from gan_eval.features import dinov2 as dv
from gan_eval.features.registry import EXTRACTORS as FEATURE_SPACES
from gan_eval.fileio import sha256_file

try:
    import spaces_fixture as sf
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests import spaces_fixture as sf

TOL = 1e-4  # relative: ‖ours − reference‖ / ‖reference‖
CPU = torch.device("cpu")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(autouse=True)
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real weights can be picked up from this machine's caches."""
    sf.hide_installed_weights(tmp_path, monkeypatch)


N = 4  # images per forward: a ViT forward at 224 px costs ~0.3-1 s per image on 2 busy cores


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return sf.test_images(N, size=64, seed=0)


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dinov2") / sf.DINOV2_FILES["dinov2-vit-s14"]
    return sf.write_dinov2_weights(path, "dinov2-vit-s14")


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / sf.CLIP_FILES["clip-vit-b32"]
    return sf.write_clip_archive(path, "clip-vit-b32")


@pytest.fixture(scope="module")
def dinov2_s14(dinov2_file: Path) -> dv.Dinov2Extractor:
    return dv.DINOV2_EXTRACTORS["dinov2-vit-s14"](CPU, dinov2_file)


@pytest.fixture(scope="module")
def clip_b32(clip_file: Path) -> cl.ClipExtractor:
    return cl.CLIP_EXTRACTORS["clip-vit-b32"](CPU, clip_file)


@pytest.fixture(scope="module")
def dinov2_out(dinov2_s14: dv.Dinov2Extractor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The extractor's features of ``images`` and its preprocessed input (computed once)."""
    return {"x": dinov2_s14.preprocess(images), **dinov2_s14(images)}


@pytest.fixture(scope="module")
def clip_out(clip_b32: cl.ClipExtractor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"x": clip_b32.preprocess(images), **clip_b32(images)}


@pytest.fixture(scope="module")
def meta_vits() -> torch.nn.Module:
    vits = pytest.importorskip("dinov2.models.vision_transformer",
                               reason="Meta's dinov2 package: pip install --no-deps dinov2")
    return vits.vit_small(patch_size=14, img_size=518, init_values=1.0, block_chunks=0).eval()


# ------------------------------------------------------------------------------------------
# preprocessing: the references' own transforms
# ------------------------------------------------------------------------------------------


def test_dinov2_preprocessing_is_dgm_eval(images: torch.Tensor) -> None:
    """dgm-eval DINOv2Encoder.transform: TF.Resize((224, 224), BICUBIC) on the PIL image,
    ToTensor, Normalize(ImageNet) — run here with torchvision on PIL images."""
    transform = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                           T.Normalize(np.array(dv.IMAGENET_MEAN), np.array(dv.IMAGENET_STD))])
    odd = torch.randint(0, 256, (2, 3, 50, 70), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(3))
    for batch in (images, odd):
        reference = torch.stack([
            transform(Image.fromarray(im.permute(1, 2, 0).numpy())) for im in batch
        ]).float()
        ours = dv.dgm_eval_preprocess(batch)
        assert ours.shape == reference.shape
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_clip_preprocessing_is_cmmd_reference(images: torch.Tensor) -> None:
    """google-research cmmd: io_util._center_crop_and_resize (PIL), /255, embedding.py
    _resize_bicubic (same size) and CLIPImageProcessor's normalisation."""

    def reference(batch: torch.Tensor, size: int) -> torch.Tensor:
        arrays = []
        for im in batch:
            pil = Image.fromarray(im.permute(1, 2, 0).numpy())
            w_, h_ = pil.size
            side = min(w_, h_)
            top, left = (h_ - side) // 2, (w_ - side) // 2
            pil = pil.crop((left, top, left + side, top + side)).resize((size, size),
                                                                          Image.BICUBIC)
            arrays.append(np.asarray(pil).astype(np.float32))
        x = np.stack(arrays) / 255.0
        t = torch.from_numpy(x.transpose(0, 3, 1, 2))
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bicubic")
        mean = torch.tensor(cl.CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(cl.CLIP_STD).view(1, 3, 1, 1)
        return (t - mean) / std

    wide = torch.randint(0, 256, (2, 3, 48, 80), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(4))
    for batch, size in ((images, 224), (wide, 336)):
        ours = cl.cmmd_preprocess(batch, size)
        torch.testing.assert_close(ours, reference(batch, size).float(), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# DINOv2
# ------------------------------------------------------------------------------------------


def test_dinov2_equals_meta_reference_code(dinov2_out: dict[str, torch.Tensor],
                                           dinov2_file: Path, meta_vits: torch.nn.Module) -> None:
    """Meta's own DinoVisionTransformer (PyPI ``dinov2``, installed --no-deps: its metadata pins
    torch 2.0) as the hub builds it, with the same state dict and the same input."""
    state = torch.load(dinov2_file, weights_only=True)
    meta_vits.load_state_dict(state, strict=True)  # the fixture has exactly Meta's keys
    with torch.no_grad():
        reference = meta_vits(dinov2_out["x"])  # head(x_norm_clstoken), identity head
    ours = dinov2_out["cls"]
    assert ours.shape == (N, 384) and ours.dtype == torch.float32
    assert rel(ours, reference) <= TOL
    assert sf.feature_spread(reference) > 0.05  # the random weights do not collapse features


def test_dinov2_equals_plain_timm(dinov2_out: dict[str, torch.Tensor],
                                  dinov2_file: Path) -> None:
    """timm's ViT with the same state dict and Meta's position grid, unfolded, plain forward."""
    state = torch.load(dinov2_file, weights_only=True)
    plain = dv.build_timm_dinov2("dinov2-vit-s14", state)
    x = dinov2_out["x"]
    with torch.no_grad():
        reference = plain(x)  # forward_head: CLS token, no fc_norm, identity head
    assert rel(dinov2_out["cls"], reference) <= TOL
    assert sf.feature_spread(reference) > 0.05
    # timm's own position resampling (antialiased, by size) is not Meta's run-time one: the
    # features move by far more than the tolerance, which is why the grid is computed Meta's way
    from timm.layers import resample_abs_pos_embed  # what timm's checkpoint filter calls

    plain.pos_embed.copy_(resample_abs_pos_embed(state["pos_embed"], new_size=(16, 16),
                                                 num_prefix_tokens=1))
    with torch.no_grad():
        assert rel(plain(x[:2]), reference[:2]) > 10 * TOL


def test_dinov2_extractor_contract(dinov2_s14: dv.Dinov2Extractor, dinov2_file: Path,
                                   dinov2_out: dict[str, torch.Tensor],
                                   images: torch.Tensor) -> None:
    assert dinov2_s14.name == "dinov2-vit-s14" and dinov2_s14.primary == "cls"
    assert dinov2_s14.weights_sha256() == sha256_file(dinov2_file)
    one = dinov2_s14(images[:1])["cls"]
    assert rel(one[0], dinov2_out["cls"][0]) <= TOL  # batch-independent
    assert dinov2_s14(images[:0])["cls"].shape == (0, 384)
    with pytest.raises(InputError, match="uint8"):
        dinov2_s14(images.float())


def test_dinov2_weights_found_through_env(dinov2_file: Path, dinov2_s14: dv.Dinov2Extractor,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_EVAL_DINOV2_VIT_S14_WEIGHTS", str(dinov2_file))
    # the file is found and read for real; building the network again is tested above
    monkeypatch.setattr(dv, "build_timm_dinov2", lambda name, state: dinov2_s14.model)
    monkeypatch.setattr(dv, "fold_layer_scale", lambda model: model)
    extractor = FEATURE_SPACES["dinov2-vit-s14"](CPU, None)
    assert extractor.weights_path == dinov2_file


def test_missing_weights_exit_3_names_file_url_and_fetch() -> None:
    for name in ("dinov2-vit-l14", "clip-vit-l14-336"):
        with pytest.raises(MissingAssetError) as info:
            FEATURE_SPACES[name](CPU, None)
        message = str(info.value)
        entry = w.WEIGHTS[name]
        assert info.value.exit_code == 3
        assert entry.filename in message and entry.url in message
        assert f"gan-eval weights fetch {name}" in message


def test_wrong_files_are_input_errors(dinov2_file: Path, clip_file: Path,
                                      tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dinov2_vitb14_pretrain\.pth"):  # s14 file for b14
        FEATURE_SPACES["dinov2-vit-b14"](CPU, dinov2_file)
    with pytest.raises(InputError, match="TorchScript archive, not a state dict"):
        FEATURE_SPACES["dinov2-vit-s14"](CPU, clip_file)
    with pytest.raises(InputError, match="not a TorchScript archive"):
        FEATURE_SPACES["clip-vit-b32"](CPU, dinov2_file)
    with pytest.raises(InputError, match=r"positional_embedding has shape \(50, 768\), not "
                                         r"\(577, 1024\)"):  # a B/32 archive for L/14@336
        FEATURE_SPACES["clip-vit-l14-336"](CPU, clip_file)
    with pytest.raises(InputError, match="does not exist"):
        FEATURE_SPACES["clip-vit-b32"](CPU, tmp_path / "nope.pt")


def test_fixture_has_meta_keys(dinov2_file: Path, meta_vits: torch.nn.Module) -> None:
    ours = torch.load(dinov2_file, weights_only=True)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in meta_vits.state_dict().items()}


# ------------------------------------------------------------------------------------------
# CLIP
# ------------------------------------------------------------------------------------------


def test_clip_equals_torch_fidelity(clip_out: dict[str, torch.Tensor], clip_file: Path,
                                    images: torch.Tensor) -> None:
    """torch-fidelity's CLIP extractor (OpenAI's model code) given the same archive path; its
    vision tower applied to the same preprocessed input."""
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    stock = FeatureExtractorCLIP(sf.TORCH_FIDELITY_CLIP["clip-vit-b32"], ["clip"],
                                 feature_extractor_weights_path=str(clip_file)).eval()
    with torch.no_grad():
        reference = stock.model.visual(clip_out["x"]).float()
    ours = clip_out
    assert ours["clip"].shape == (N, 512) and ours["embedding"].dtype == torch.float32
    assert rel(ours["clip"], reference) <= TOL
    unit = reference / reference.norm(dim=1, keepdim=True)
    assert rel(ours["embedding"], unit) <= TOL
    torch.testing.assert_close(ours["embedding"].norm(dim=1), torch.ones(N))
    assert sf.feature_spread(reference) > 0.05
    # torch-fidelity's own path (TF-style bilinear resize, no crop) is not CMMD's preprocessing
    with torch.no_grad():
        (own,) = stock(images[:2])
    assert rel(own, reference[:2]) > 10 * TOL


def test_clip_extractor_contract(clip_b32: cl.ClipExtractor, clip_file: Path,
                                 clip_out: dict[str, torch.Tensor], images: torch.Tensor) -> None:
    assert clip_b32.primary == "embedding" and clip_b32.weights_sha256() == sha256_file(clip_file)
    assert clip_b32(images[:0])["embedding"].shape == (0, 512)
    first = clip_b32(images[:1])["embedding"]
    assert rel(first[0], clip_out["embedding"][0]) <= TOL


def test_clip_found_in_torch_fidelity_cache(clip_file: Path, tmp_path: Path) -> None:
    entry = w.WEIGHTS["clip-vit-b32"]
    cached = tmp_path / "hub" / "checkpoints" / f"clip-vit-b-32-{entry.sha256}.pt"
    cached.parent.mkdir(parents=True)
    os.symlink(clip_file, cached)
    assert w.locate("clip-vit-b32").path == cached


def test_registered_by_the_one_route() -> None:
    """Each DINOv2/CLIP class is registered once, by register_extractor: gan-eval's registry,
    the catalogue (with its weights file) and torch-fidelity's registry, under one name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from gan_eval import catalogue

    names = {"dinov2-vit-s14", "dinov2-vit-b14", "dinov2-vit-l14", "dinov2-vit-g14",
             "clip-vit-b32", "clip-vit-l14", "clip-vit-l14-336"}
    assert names == set(dv.DINOV2_EXTRACTORS) | set(cl.CLIP_EXTRACTORS)
    for name in names:
        cls = FEATURE_SPACES[name]
        assert cls.name == name and cls.spec is catalogue.EXTRACTORS[name]
        assert cls.spec.weights is w.WEIGHTS[name] and cls.spec.extra == "feature-spaces"
        adapter = FEATURE_EXTRACTORS_REGISTRY[name]
        assert adapter.get_provided_features_list() == cls.provided_features()
        assert adapter.get_default_feature_layer_for_metric("fid") == cls.primary
        with pytest.raises(InputError, match="isc"):
            adapter.get_default_feature_layer_for_metric("isc")


def test_dinov2_state_table_is_meta_and_fits_timm(dinov2_file: Path) -> None:
    """meta_state_shapes (what the checks require) is the fixture's state dict for s14, and for
    every size it is what timm's checkpoint filter turns into timm's model (built on the meta
    device: no memory)."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = torch.load(dinov2_file, weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == dv.meta_state_shapes("dinov2-vit-s14")
    for name, (arch, _, _) in dv.DINOV2_MODELS.items():
        with torch.device("meta"):
            meta = {k: torch.empty(s) for k, s in dv.meta_state_shapes(name).items()}
            model = timm.create_model(arch, pretrained=False, img_size=518, num_classes=0)
            filtered = checkpoint_filter_fn(meta, model)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in filtered.items()} == expected, name


def test_clip_visual_table_is_openai_vision_tower(clip_file: Path) -> None:
    """visual_state_shapes is the fixture archive's vision tower (b32) and, for every model,
    open_clip's OpenAI-layout vision tower (built on the meta device)."""
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    from gan_eval.features.weights_files import read_torchscript_tensors

    tensors = read_torchscript_tensors(clip_file.read_bytes(), clip_file,
                                       w.WEIGHTS["clip-vit-b32"])
    visual = {k.removeprefix("visual."): tuple(v.shape) for k, v in tensors.items()
              if k.startswith("visual.")}
    assert visual == cl.visual_state_shapes("clip-vit-b32")
    for name, config in sf.OPEN_CLIP_CONFIG.items():
        cfg = open_clip.get_model_config(config)
        with torch.device("meta"):
            tower = _build_vision_tower(cfg["embed_dim"], CLIPVisionCfg(**cfg["vision_cfg"]),
                                        quick_gelu=True)
        assert {k: tuple(v.shape) for k, v in tower.state_dict().items()} == \
            cl.visual_state_shapes(name), name


def test_clip_archive_is_read_as_data_like_torch_jit(clip_file: Path) -> None:
    """The tensors read without torch.jit.load are exactly those torch.jit.load gives."""
    import io
    import warnings

    from gan_eval.features.weights_files import read_torchscript_tensors

    data = clip_file.read_bytes()
    ours = read_torchscript_tensors(data, clip_file, w.WEIGHTS["clip-vit-b32"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.jit.load(io.BytesIO(data), map_location="cpu").state_dict()
    assert set(ours) == set(reference)
    for key, value in reference.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


# ------------------------------------------------------------------------------------------
# the bigger models (slow: hundreds of MB of random weights each)
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dinov2-vit-b14", "dinov2-vit-l14"])
def test_bigger_dinov2_equal_timm(name: str, tmp_path: Path, images: torch.Tensor) -> None:
    path = sf.write_dinov2_weights(tmp_path / sf.DINOV2_FILES[name], name)
    extractor = FEATURE_SPACES[name](CPU, path)
    plain = dv.build_timm_dinov2(name, torch.load(path, weights_only=True))
    x = extractor.preprocess(images[:4])
    with torch.no_grad():
        reference = plain(x)
    assert rel(extractor(images[:4])["cls"], reference) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clip-vit-l14", "clip-vit-l14-336"])
def test_bigger_clip_equal_torch_fidelity(name: str, tmp_path: Path,
                                          images: torch.Tensor) -> None:
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    path = sf.write_clip_archive(tmp_path / sf.CLIP_FILES[name], name)
    extractor = FEATURE_SPACES[name](CPU, path)
    stock = FeatureExtractorCLIP(sf.TORCH_FIDELITY_CLIP[name], ["clip"],
                                 feature_extractor_weights_path=str(path)).eval()
    x = extractor.preprocess(images[:4])
    with torch.no_grad():
        reference = stock.model.visual(x).float()
    assert rel(extractor(images[:4])["clip"], reference) <= TOL


@pytest.mark.skip(reason="dinov2-vit-g14 (1.1 B parameters, ~4.5 GB of float32 weights) does "
                         "not fit the test budget of a 2-core CI machine; same code path as "
                         "l14 plus timm's SwiGLU mapping of Meta's mlp.w12/w3")
def test_dinov2_g14() -> None:  # pragma: no cover
    pass


def test_missing_library_is_exit_3(dinov2_file: Path, clip_file: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm → ImportError
    with pytest.raises(MissingAssetError, match=r"gan-eval\[feature-spaces\]"):
        FEATURE_SPACES["dinov2-vit-s14"](CPU, dinov2_file)
    with pytest.raises(MissingAssetError, match=r"gan-eval\[feature-spaces\]"):
        FEATURE_SPACES["clip-vit-b32"](CPU, clip_file)


def test_registry_and_catalogue_name_the_same_extractors() -> None:
    from gan_eval import catalogue
    from gan_eval.features.registry import EXTRACTORS

    assert list(EXTRACTORS) == list(catalogue.EXTRACTORS)


def test_evaluate_on_clip_reports_fid_kid_and_cmmd_with_its_weights(
    clip_file: Path, tmp_path: Path
) -> None:
    """The CLI end to end on a DINOv2/CLIP-style feature space: --weights names the file, the
    provenance its sha256, and cmmd sits beside fid; at 20 images its interval is refused, with
    the regime's reason (the jackknife needs 1,000 generated images), never a silent one."""
    from typer.testing import CliRunner

    from gan_eval.cli import app

    out = tmp_path / "results.json"
    args = ["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-nonfaces", "-e", "clip-vit-b32",
            "--weights", f"clip-vit-b32={clip_file}", "--splits", "10", "--no-cache", "-q",
            "--json", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    names = {(m["name"], m["extractor"]) for m in saved["metrics"]}
    assert {("fid", "clip-vit-b32"), ("kid", "clip-vit-b32"), ("cmmd", "clip-vit-b32")} <= names
    cmmd = next(m for m in saved["metrics"] if m["name"] == "cmmd")
    assert cmmd["value"] > 0 and cmmd["ci95"] is None
    assert "1000" in cmmd["details"]["no_interval"].replace(",", "")
    assert saved["provenance"]["extractors"]["clip-vit-b32"]["weights_sha256"] == \
        sha256_file(clip_file)


def test_evaluate_without_the_file_exits_3_with_the_fetch_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    result = CliRunner().invoke(app, ["evaluate", "builtin:lfw-subset", "-r",
                                      "builtin:lfw-subset", "-e", "dinov2-vit-s14", "--no-cache"])
    assert result.exit_code == 3, result.output
    assert "dinov2_vits14_pretrain.pth" in result.output
    assert "gan-eval weights fetch dinov2-vit-s14" in result.output


def _malformed_weights_values():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    from gan_eval.catalogue import EXTRACTORS

    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=20)
    no_separator = text.filter(lambda s: "=" not in s)
    unknown_name = st.tuples(text.filter(lambda s: s not in EXTRACTORS and "=" not in s),
                             text).map("=".join)
    empty_path = st.sampled_from(sorted(EXTRACTORS)).map(lambda name: name + "=")
    return st.one_of(no_separator, unknown_name, empty_path)


def test_bad_weights_values_exit_2_naming_the_option() -> None:
    """Every malformed ``--weights`` value (no ``=``, an unknown extractor, no path) is refused
    with exit 2 naming the option, before any network or data is loaded."""
    from hypothesis import given, settings
    from typer.testing import CliRunner

    from gan_eval.cli import app

    @settings(max_examples=40, deadline=None)
    @given(_malformed_weights_values())
    def check(value: str) -> None:
        result = CliRunner().invoke(app, ["evaluate", "builtin:lfw-subset", "-r",
                                          "builtin:lfw-subset", "--weights", value, "--no-cache"])
        assert result.exit_code == 2, (value, result.output)
        assert "--weights" in result.output and "EXTRACTOR=PATH" in result.output
        assert "Traceback" not in result.output

    check()
