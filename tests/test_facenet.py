"""FaceNet (Inception-ResNet-v1) equals the reference implementation (facenet-pytorch's
``InceptionResnetV1``, installed test-only with ``--no-deps``) on random weights written in the
official file format, and refuses files that are not that format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.features.facenet import (
    EMBEDDING_DIM,
    FaceNet,
    expected_shapes,
    load_facenet,
    read_facenet_state,
)
from gan_eval.features.registry import build_extractor

facenet_pytorch = pytest.importorskip(
    "facenet_pytorch", reason="test oracle: pip install --no-deps facenet-pytorch==2.6.0")


def _official_random(path: Path, seed: int = 0) -> torch.nn.Module:
    """The reference network with random weights and batch-norm statistics, saved as the
    official file is (a state dict with the 8,631-way classifier)."""
    torch.manual_seed(seed)
    ref = facenet_pytorch.InceptionResnetV1(classify=True, num_classes=8631).eval()
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    torch.save(ref.state_dict(), path)
    ref.classify = False
    return ref


def test_state_names_and_shapes_are_the_official_ones() -> None:
    ref = facenet_pytorch.InceptionResnetV1(classify=True, num_classes=8631)
    official = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert expected_shapes() == official


def test_embeddings_equal_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "20180402-114759-vggface2.pt"
    ref = _official_random(path)
    x = torch.rand(4, 3, 160, 160) * 2 - 1
    with torch.no_grad():
        expected = ref(x)
        unfolded = FaceNet().eval()
        unfolded.load_state_dict(read_facenet_state(path))
        plain = unfolded(x)
    ours = load_facenet(path)(x.contiguous(memory_format=torch.channels_last))
    assert ours.shape == (4, EMBEDDING_DIM)
    # unit vectors: absolute tolerance; folding the batch norms changes float32 rounding only
    torch.testing.assert_close(plain, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-5)


def test_the_extractor_takes_uint8_crops(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    ref = _official_random(path, seed=1)
    images = torch.randint(0, 256, (3, 3, 25, 25), dtype=torch.uint8)
    extractor = build_extractor("facenet-vggface2", device="cpu", weights=path)
    out = extractor(images)["embedding"]
    assert extractor.check_weights(path)
    resized = torch.nn.functional.interpolate(images.float(), size=(160, 160), mode="bilinear",
                                              antialias=True, align_corners=False)
    x = (resized.round().clamp(0, 255) - 127.5) / 128.0
    with torch.no_grad():
        torch.testing.assert_close(out, ref(x), rtol=0, atol=2e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("damage", ["html", "empty", "pickle", "missing", "shape", "nan",
                                    "extra", "not_dict"])
def test_files_that_are_not_the_weights_are_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "w.pt"
    good = FaceNet().state_dict()
    if damage == "html":
        path.write_text("<html><body>captive portal</body></html>")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickle":
        import pickle

        path.write_bytes(pickle.dumps(print))  # a global reference: weights_only refuses it
    elif damage == "missing":
        torch.save({k: v for k, v in good.items() if "repeat_2.3" not in k}, path)
    elif damage == "shape":
        torch.save({**good, "last_linear.weight": torch.zeros(128, 1792)}, path)
    elif damage == "nan":
        torch.save({**good, "block8.conv2d.bias": torch.full((1792,), float("nan"))}, path)
    elif damage == "extra":
        torch.save({**good, "something.else": torch.zeros(2)}, path)
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(InputError, match=str(path)) as info:
        read_facenet_state(path)
    assert "expected 20180402-114759-vggface2.pt" in str(info.value)
