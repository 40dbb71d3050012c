"""Image files: a folder (recursive) or a .zip, read lazily and in sorted order.

Opening a source scans every file's header (size, mode, EXIF orientation) so that the count,
resolution and identities are known up front; pixels are decoded only when batches are read.
Identity labels come from the first-level subfolder when every image lies in one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


# Pillow's parsers raise a wide range of exception types on hostile bytes (struct.error,
# IndexError, TypeError, ZeroDivisionError, …, besides the documented OSError/ValueError): every
# one of them means "this file cannot be decoded", so decoding catches Exception, never narrower.
_PIL_ERRORS = (Exception,)
_ = UnidentifiedImageError  # documented failure; subsumed by Exception above

MIB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """Limits on sizes that untrusted files claim, checked before anything is allocated.

    ``max_image_pixels``: width × height of one image (default: Pillow's MAX_IMAGE_PIXELS,
    89,478,485 ≈ 9459²). ``max_member_bytes``: uncompressed size of one image inside a .zip.
    ``max_compression_ratio``: uncompressed / compressed size of a .zip or .npz member, enforced
    for members over ``ratio_floor_bytes`` (below that the memory at stake is small and
    legitimate images of one color compress far more than 100×). Each can be set through the
    environment variable named in :data:`LIMIT_ENV`.
    """

    max_image_pixels: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
    max_member_bytes: int = 512 * MIB
    max_compression_ratio: float = 100.0
    ratio_floor_bytes: int = 64 * MIB


LIMIT_ENV = {
    "max_image_pixels": "GAN_EVAL_MAX_IMAGE_PIXELS",
    "max_member_bytes": "GAN_EVAL_MAX_MEMBER_BYTES",
    "max_compression_ratio": "GAN_EVAL_MAX_COMPRESSION_RATIO",
}


def read_limits() -> ReadLimits:
    """:class:`ReadLimits` with the environment's overrides; InputError naming a bad variable."""
    values: dict[str, float | int] = {}
    for field, var in LIMIT_ENV.items():
        raw = os.environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw) if field == "max_compression_ratio" else int(raw)
        except ValueError:
            value = -1
        if not value > 0 or value != value or value == float("inf"):
            raise InputError(f"{var}={raw!r}: expected a positive "
                             f"{'number' if field == 'max_compression_ratio' else 'integer'}")
        values[field] = value
    return ReadLimits(**values)  # type: ignore[arg-type]


def display_name(name: str) -> str:
    """``name`` safe to print, hash as UTF-8 and put in JSON/HTML: bytes of a non-UTF-8 file
    name (kept by Python as surrogate escapes) become ``\\xNN``, control characters are escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def name_bytes(name: str) -> bytes:
    """The file name's own bytes (a non-UTF-8 name round-trips through surrogate escapes)."""
    return name.encode("utf-8", "surrogateescape")


def _is_undecodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@contextlib.contextmanager
def _own_pixel_check() -> Iterator[None]:
    """Pillow's own decompression-bomb check off while opening: the caller checks the size
    against :attr:`ReadLimits.max_image_pixels` right after ``Image.open`` (which reads only
    the header), so that every refusal has one message and the limit can be raised above
    Pillow's 2× hard stop."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_many_pixels(what: str, width: int, height: int, limit: int) -> CorruptImageError:
    return CorruptImageError(
        what, f"the image claims {width}×{height} = {width * height:,} pixels, over the limit of "
              f"{limit:,} (a decompression bomb?); raise {LIMIT_ENV['max_image_pixels']} if the "
              "image is genuine"
    )


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
    limit = read_limits().max_image_pixels
    try:
        with _own_pixel_check(), Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > limit:
                raise _too_many_pixels(what, width, height, limit)
            image = ImageOps.exif_transpose(opened)
            image.load()
    except CorruptImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise CorruptImageError(what, f"{exc}; raise {LIMIT_ENV['max_image_pixels']} if the "
                                      "image is genuine") from exc
    except MemoryError as exc:
        raise CorruptImageError(what, "decoding it needs more memory than is available") from exc
    except _PIL_ERRORS as exc:
        raise CorruptImageError(
            what, f"cannot decode image ({type(exc).__name__}: {exc}); the file is corrupt or "
                  "truncated"
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
    """(height, width, channels) from the header alone, EXIF orientation applied.

    Images over :attr:`ReadLimits.max_image_pixels` raise :class:`CorruptImageError` before any
    pixel is decoded; so does a file that cannot be read (the reason says which).
    """
    limit = read_limits().max_image_pixels
    try:
        with _own_pixel_check(), Image.open(fp) as image:
            width, height = image.size
            if width * height > limit:  # before getexif(), which may decode a PNG's pixels
                raise _too_many_pixels(what, width, height, limit)
            mode = image.mode
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except CorruptImageError:
        raise
    except PermissionError as exc:
        raise CorruptImageError(what, f"cannot be read ({exc.strerror or exc})") from exc
    except Image.DecompressionBombError as exc:
        raise CorruptImageError(what, f"{exc}; raise {LIMIT_ENV['max_image_pixels']} if the "
                                      "image is genuine") from exc
    except _PIL_ERRORS as exc:
        raise CorruptImageError(
            what, f"cannot read the image header ({type(exc).__name__}: {exc}); the file is "
                  "corrupt or truncated"
        ) from exc
    if orientation in _SWAPS_AXES:
        width, height = height, width
    channels = _MODE_CHANNELS.get(mode, 3)
    return height, width, channels


class _FileSource(ImageSource):
    """Shared logic of folder and zip sources; subclasses list members and read bytes.

    ``problems`` found while listing (unreadable folders, refused members) are passed in;
    fatal ones make the source refused with an :class:`InputError` after every member was
    looked at, so that ``inspect`` lists them all and nothing is dropped silently.
    """

    def __init__(self, data: str, names: list[str], *, root_label: str,
                 problems: Sequence[Problem] = (), refused: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.data = data
        self._root_label = root_label
        self.problems.extend(problems)
        images: list[str] = []
        for name in names:
            suffix = PurePosixPath(name).suffix.lower()
            if _is_undecodable(name):
                self.problems.append(Problem(
                    self._display(name), "name is not valid UTF-8; shown with \\x escapes "
                    "(the file is read under its own name)"))
            if any(part.startswith(".") for part in PurePosixPath(name).parts):
                self.problems.append(Problem(self._display(name), "hidden file skipped"))
            elif suffix in IMAGE_SUFFIXES:
                images.append(name)
            else:
                self.problems.append(Problem(self._display(name), "not an image file, skipped"))
        if not images and not any(p.fatal for p in self.problems):
            shown = display_name(data)
            if names:
                raise InputError(
                    f"{shown}: no image files found among {len(names)} file(s) "
                    f"(expected one of {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            raise InputError(f"{shown}: contains no files; expected image files")
        self.names = images
        self.shapes: list[tuple[int, int, int]] = []
        for name in images:
            if name in refused:  # already a fatal problem: never read it
                self.shapes.append((0, 0, 0))
                continue
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
                f"{display_name(self.data)}: images have mixed resolutions: {listing}; pass a "
                "resolution (e.g. --resolution 64) to resize them all"
            )

    def _set_labels(self) -> None:
        parts = [PurePosixPath(name).parts for name in self.names]
        if all(len(p) >= 2 for p in parts):
            folders = [p[0] for p in parts]
            # labels follow the folders' own names; identities are their printable form
            raw = sorted(set(folders), key=name_bytes)
            self.identities = tuple(display_name(f) for f in raw)
            index = {name: i for i, name in enumerate(raw)}
            self.labels = np.array([index[f] for f in folders], dtype=np.int64)
        elif any(len(p) >= 2 for p in parts):
            self.problems.append(
                Problem(
                    display_name(self.data),
                    "some images lie in the top folder and some in subfolders: "
                    "no identity labels (put every image in a per-identity subfolder to get them)",
                )
            )

    def _display(self, name: str) -> str:
        return display_name(f"{self._root_label}/{name}")

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
            digest.update(name_bytes(name) + b"\0")
            digest.update(hashlib.sha256(self._read_bytes(name)).digest())


def _scan_folder(root: Path) -> tuple[list[str], list[Problem]]:
    """Relative POSIX paths of every file under ``root`` (symlinks followed, loops cut) and the
    problems met: a folder that cannot be listed is a fatal problem (its images would be missing
    from every number), a broken link or a special file is a note. Hidden folders (names
    starting with ``.``: version control, editors, and the staging folders of writes in
    progress or killed, e.g. ``gan-eval sample``'s) are not entered; each is a note.

    ``Path.rglob`` skips folders it cannot read without a word; this walk reports them.
    """
    files: list[str] = []
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    label = str(root)

    def shown(rel: str) -> str:
        return display_name(f"{label}/{rel}" if rel else label)

    pending = [("", root)]
    while pending:
        rel, folder = pending.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                problems.append(Problem(shown(rel), "symbolic link loop, skipped"))
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            problems.append(Problem(shown(rel), f"folder cannot be read ({exc.strerror or exc}); "
                                                "its images would be missing", fatal=True))
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                mode = os.stat(entry.path).st_mode  # follows symlinks
            except OSError as exc:
                kind = "broken symbolic link" if entry.is_symlink() else "cannot be examined"
                problems.append(Problem(shown(child), f"{kind} ({exc.strerror or exc}), skipped"))
                continue
            if stat.S_ISDIR(mode):
                if entry.name.startswith("."):
                    problems.append(Problem(shown(child), "hidden folder, skipped"))
                else:
                    pending.append((child, Path(entry.path)))
            elif stat.S_ISREG(mode):
                files.append(child)
            else:
                problems.append(Problem(shown(child), "not a regular file, skipped"))
    files.sort(key=name_bytes)
    return files, problems


class FolderSource(_FileSource):
    """Every image file under a folder, recursively, in sorted relative-path order.

    Folders that cannot be listed and image files that cannot be read are fatal problems (the
    source is refused naming them), never silently left out.
    """

    kind = "folder"

    def __init__(self, path: Path, data: str) -> None:
        self.root = path
        names, problems = _scan_folder(path)
        super().__init__(data, names, root_label=str(path), problems=problems)

    def _read_bytes(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise CorruptImageError(self._display(name),
                                    f"cannot be read ({exc.strerror or exc})") from exc

    def _header_input(self, name: str) -> str:
        return str(self.root / name)


_ZIP_READ_ERRORS = (Exception,)  # zipfile/zlib/bz2/lzma raise many types on hostile bytes


def member_problem(info: zipfile.ZipInfo, limits: ReadLimits, *, max_bytes: int | None
                   ) -> str | None:
    """Why a .zip/.npz member must not be read (None: it may be), from its header alone.

    Refused: encrypted members; members over ``max_bytes`` uncompressed; members over
    ``limits.ratio_floor_bytes`` that expand more than ``limits.max_compression_ratio`` times.
    """
    if info.flag_bits & 0x1:
        return "the member is encrypted; gan-eval reads no passwords (store it unencrypted)"
    if max_bytes is not None and info.file_size > max_bytes:
        return (f"the member claims {info.file_size:,} bytes uncompressed, over the limit of "
                f"{max_bytes:,} ({LIMIT_ENV['max_member_bytes']})")
    if info.file_size > limits.ratio_floor_bytes:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            return (f"the member expands {ratio:,.0f}× ({info.compress_size:,} → "
                    f"{info.file_size:,} bytes), over the limit of "
                    f"{limits.max_compression_ratio:g}× (a zip bomb?; "
                    f"{LIMIT_ENV['max_compression_ratio']})")
    return None


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, what: str) -> bytes:
    """A member's bytes, reading at most the size its header claims; errors (bad CRC, truncated
    data, unsupported compression, …) raise :class:`CorruptImageError` naming ``what``."""
    try:
        with archive.open(info) as handle:
            data = handle.read(info.file_size + 1)
    except _ZIP_READ_ERRORS as exc:
        raise CorruptImageError(what, f"cannot be read from the archive ({type(exc).__name__}: "
                                      f"{exc})") from exc
    if len(data) != info.file_size:
        raise CorruptImageError(what, f"holds {len(data):,} bytes, its header says "
                                      f"{info.file_size:,}: the archive is damaged")
    return data


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a .zip (or .npz) archive; any failure is an :class:`InputError` naming it."""
    try:
        return zipfile.ZipFile(path)
    except UnicodeDecodeError as exc:
        raise InputError(f"{display_name(str(path))}: a member name is flagged UTF-8 but is not "
                         f"valid UTF-8 ({exc.reason}); the archive is damaged") from exc
    except _ZIP_READ_ERRORS as exc:
        raise InputError(f"{display_name(str(path))}: not a readable .zip archive "
                         f"({type(exc).__name__}: {exc})") from exc


class ZipSource(_FileSource):
    """Every image member of a .zip archive, read in memory (nothing is extracted to disk).

    Member names that are absolute or contain ``..`` make the whole archive refused. A single
    folder that wraps every member is stripped, so ``faces/alice/1.png`` labels ``alice``.
    Encrypted members, members over the size or compression-ratio limits (:class:`ReadLimits`),
    members whose bytes fail their CRC and duplicate member names are fatal problems naming
    the member.
    """

    kind = "zip"

    def __init__(self, path: Path, data: str) -> None:
        self._zip = open_zip(path)
        limits = read_limits()
        label = str(path)
        members = [m for m in self._zip.infolist() if not m.is_dir()]
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if (
                member.filename.startswith(("/", "\\"))
                or ".." in parts
                or (parts and ":" in parts[0])
            ):
                raise InputError(
                    f"{display_name(label)}: refusing archive: member name "
                    f"{display_name(member.filename)!r} escapes the archive (absolute path or "
                    "'..'); nothing was extracted"
                )
        problems: list[Problem] = []
        counts = Counter(m.filename for m in members)
        for name, count in sorted(counts.items()):
            if count > 1:
                # fatal for images (which one would be read is arbitrary), a note otherwise
                image = PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
                problems.append(Problem(
                    display_name(f"{label}:{name}"),
                    f"{count} members share this name; which one is meant is ambiguous "
                    "(rebuild the archive without duplicates)", fatal=image))
        self._members = {m.filename: m for m in members}
        names = sorted(self._members)
        tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
        self._prefix = ""
        if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
            self._prefix = tops.pop() + "/"
        refused = set()
        for name, info in self._members.items():
            if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue  # never read
            why = member_problem(info, limits, max_bytes=limits.max_member_bytes)
            if why is not None:
                problems.append(Problem(display_name(f"{label}:{name}"), why, fatal=True))
                refused.add(name[len(self._prefix):])
        super().__init__(data, [n[len(self._prefix) :] for n in names], root_label=label,
                         problems=problems, refused=frozenset(refused))

    def _read_bytes(self, name: str) -> bytes:
        return read_member(self._zip, self._members[self._prefix + name],
                           what=self._display(name))

    def _display(self, name: str) -> str:
        return display_name(f"{self._root_label}:{self._prefix}{name}")
