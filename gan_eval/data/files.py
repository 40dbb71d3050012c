"""Image files: a folder (recursive) or a .zip, read lazily and in sorted order.

Opening a source scans every file's header (size, mode, EXIF orientation) so that the count,
resolution and identities are known up front; pixels are decoded only when batches are read.
Identity labels come from the first-level subfolder when every image lies in one.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_eval.data.convert import hwc_to_chw3, resize_uint8
from gan_eval.data.source import ImageSource, Problem
from gan_eval.errors import InputError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
_MODE_CHANNELS = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "I;16B": 1,
    "I;16L": 1,
    "F": 1,
    "LA": 2,
    "RGBA": 4,
    "PA": 4,
}


_PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class CorruptImageError(InputError):
    """An image file that cannot be decoded; ``path`` and ``reason`` are kept apart for reports."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def decode_image(data: bytes, *, what: str) -> tuple[np.ndarray, int]:
    """Decode one encoded image → (uint8 3×H×W, channels in the file).

    EXIF orientation is applied; 16-bit and 32-bit gray are scaled to 8 bits; palette images are
    expanded; alpha is dropped. Corrupt or truncated files raise :class:`CorruptImageError`
    naming ``what``.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except _PIL_ERRORS as exc:
        raise CorruptImageError(
            what, f"cannot decode image ({exc}); the file is corrupt or truncated"
        ) from exc
    mode = image.mode
    channels = _MODE_CHANNELS.get(mode, 3)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.int64)
        top = 65535 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255
        pixels = np.clip((values * 255 + top // 2) // top, 0, 255).astype(np.uint8)
    elif mode == "F":
        raise InputError(f"{what}: 32-bit float images are not supported; save as 8- or 16-bit")
    elif mode in ("1", "L"):
        pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    elif mode == "P":
        has_alpha = "transparency" in image.info
        channels = 4 if has_alpha else 3
        pixels = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)
    else:
        pixels = np.asarray(image.convert("RGBA" if channels == 4 else "RGB"), dtype=np.uint8)
    return hwc_to_chw3(pixels, what=what), channels


def _header(fp: str | io.BytesIO, *, what: str) -> tuple[int, int, int]:
    """(height, width, channels) from the header alone, EXIF orientation applied."""
    try:
        with Image.open(fp) as image:
            width, height = image.size
            mode = image.mode
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _PIL_ERRORS as exc:
        raise CorruptImageError(
            what, f"cannot read the image header ({exc}); the file is corrupt or truncated"
        ) from exc
    if orientation in _SWAPS_AXES:
        width, height = height, width
    channels = _MODE_CHANNELS.get(mode, 3)
    return height, width, channels


class _FileSource(ImageSource):
    """Shared logic of folder and zip sources; subclasses list members and read bytes."""

    def __init__(self, data: str, names: list[str], *, root_label: str) -> None:
        super().__init__()
        self.data = data
        self._root_label = root_label
        images: list[str] = []
        for name in names:
            suffix = PurePosixPath(name).suffix.lower()
            if PurePosixPath(name).name.startswith("."):
                self.problems.append(Problem(self._display(name), "hidden file skipped"))
            elif suffix in IMAGE_SUFFIXES:
                images.append(name)
            else:
                self.problems.append(Problem(self._display(name), "not an image file, skipped"))
        if not images:
            if names:
                raise InputError(
                    f"{data}: no image files found among {len(names)} file(s) "
                    f"(expected one of {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            raise InputError(f"{data}: contains no files; expected image files")
        self.names = images
        self.shapes: list[tuple[int, int, int]] = []
        for name in images:
            try:
                self.shapes.append(_header(self._header_input(name), what=self._display(name)))
            except CorruptImageError as exc:
                self.problems.append(Problem(exc.path, exc.reason, fatal=True))
                self.shapes.append((0, 0, 0))
        fatal = [p for p in self.problems if p.fatal]
        if fatal:
            more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
            raise InputError(f"{fatal[0]}{more}")
        self._set_labels()
        sizes = Counter((h, w) for h, w, _ in self.shapes)
        self.resolutions = dict(sizes)
        self.resolution = next(iter(sizes)) if len(sizes) == 1 else (0, 0)
        self.channel_counts = dict(Counter(c for _, _, c in self.shapes))

    def require_single_resolution(self) -> None:
        """Raise unless every image has the same size (call when no resize was asked for)."""
        if len(self.resolutions) > 1:
            listing = ", ".join(
                f"{h}×{w} ({n} images)" for (h, w), n in sorted(self.resolutions.items())
            )
            raise InputError(
                f"{self.data}: images have mixed resolutions: {listing}; pass a resolution "
                "(e.g. --resolution 64) to resize them all"
            )

    def _set_labels(self) -> None:
        parts = [PurePosixPath(name).parts for name in self.names]
        if all(len(p) >= 2 for p in parts):
            folders = [p[0] for p in parts]
            self.identities = tuple(sorted(set(folders)))
            index = {name: i for i, name in enumerate(self.identities)}
            self.labels = np.array([index[f] for f in folders], dtype=np.int64)
        elif any(len(p) >= 2 for p in parts):
            self.problems.append(
                Problem(
                    self.data,
                    "some images lie in the top folder and some in subfolders: "
                    "no identity labels (put every image in a per-identity subfolder to get them)",
                )
            )

    def _display(self, name: str) -> str:
        return f"{self._root_label}/{name}"

    def _header_input(self, name: str) -> str | io.BytesIO:
        """What PIL opens to read ``name``'s header (a path lets it read only the start)."""
        return io.BytesIO(self._read_bytes(name))

    def _read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        if len(self.resolutions) > 1 and self._target_size is None:
            self.require_single_resolution()
        arrays = []
        for i in indices:
            pixels, _ = decode_image(
                self._read_bytes(self.names[i]), what=self._display(self.names[i])
            )
            tensor = torch.from_numpy(pixels)[None]
            if self._target_size is not None:
                tensor = resize_uint8(tensor, self._target_size)
            arrays.append(tensor)
        return torch.cat(arrays, dim=0)

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        # resizing happens per image in _read (sizes may differ before the resize)
        return self._read(indices)

    def _hash_content(self, digest: hashlib._Hash) -> None:
        for name in self.names:
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256(self._read_bytes(name)).digest())


class FolderSource(_FileSource):
    """Every image file under a folder, recursively, in sorted relative-path order."""

    kind = "folder"

    def __init__(self, path: Path, data: str) -> None:
        self.root = path
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        super().__init__(data, names, root_label=str(path))

    def _read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def _header_input(self, name: str) -> str:
        return str(self.root / name)


class ZipSource(_FileSource):
    """Every image member of a .zip archive, read in memory (nothing is extracted to disk).

    Member names that are absolute or contain ``..`` make the whole archive refused. A single
    folder that wraps every member is stripped, so ``faces/alice/1.png`` labels ``alice``.
    """

    kind = "zip"

    def __init__(self, path: Path, data: str) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"{path}: not a readable .zip archive ({exc})") from exc
        members = [m for m in self._zip.infolist() if not m.is_dir()]
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if (
                member.filename.startswith(("/", "\\"))
                or ".." in parts
                or (parts and ":" in parts[0])
            ):
                raise InputError(
                    f"{path}: refusing archive: member name {member.filename!r} escapes the "
                    "archive (absolute path or '..'); nothing was extracted"
                )
        self._members = {m.filename: m for m in members}
        names = sorted(self._members)
        tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
        self._prefix = ""
        if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
            self._prefix = tops.pop() + "/"
        super().__init__(data, [n[len(self._prefix) :] for n in names], root_label=str(path))

    def _read_bytes(self, name: str) -> bytes:
        return self._zip.read(self._members[self._prefix + name])

    def _display(self, name: str) -> str:
        return f"{self._root_label}:{self._prefix}{name}"
