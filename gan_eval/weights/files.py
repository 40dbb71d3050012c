"""What a weights file is, told without torch: its container (:func:`file_problem`), the CRC-32s
of its zip records (:func:`zip_damage`), its sha256 against a published, pinned or recorded one;
and the content-check hook the torch side provides."""

from __future__ import annotations

import io
import os
import pickle
import re
import string
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError

#: Suffix of the file recording the sha256 measured at fetch time.
SHA_SUFFIX = ".sha256"

ContentCheck = Callable[[Path], object]
"""A content check: reads the file at a path as its extractor would (safely, without building
the network) and raises :class:`~gan_eval.errors.InputError` naming the file and what was expected
when it is not that file; what it returns (a description) is only shown."""

# --------------------------------------------------------------------------------------------

#: The first bytes of a legacy (non-zip) ``torch.save`` file: its pickled magic number.
_LEGACY_TORCH_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
_PRINTABLE = frozenset(string.printable.encode())


def file_problem(path: str | os.PathLike[str], kind: str | None) -> str | None:
    """What makes ``path`` unusable as a weights file of format ``kind``, or None when its
    container looks right. Reads the first bytes and, for zip containers, the zip directory;
    parses nothing.

    Args:
        path: the file.
        kind: a :data:`~gan_eval.catalogue.WEIGHTS_KINDS` key, or None for another format (only
            the format-independent problems: unreadable, empty, an HTML page).

    Returns:
        A clause to follow the file's name (``"is empty (0 bytes)"``, ``"is an HTML page …"``,
        ``"is a plain Python pickle …"``, ``"is truncated …"``, ``"is a TorchScript archive,
        not a state dict"`` …), or None.
    """
    file = Path(path)
    try:
        if not file.exists():
            return "does not exist"
        if not file.is_file():
            return "is not a file"
        size = file.stat().st_size
        with open(file, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "is empty (0 bytes)"
    text = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if text[:1] == b"<":
        return (f"is an HTML or XML page ({size} bytes), not a weights file: a captive portal, "
                "proxy or error page may have answered instead of the server")
    if kind is None:
        return None
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            return (f"is truncated or damaged: a zip archive ({size} bytes) whose directory "
                    f"cannot be read ({exc})")
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "is a zip archive without data.pkl, not a PyTorch file"
        scripted = any(n.endswith("/constants.pkl") or "/code/" in n for n in names)
        if kind == "state_dict" and scripted:
            return "is a TorchScript archive, not a state dict"
        if kind == "torchscript" and not scripted:
            return "is a torch.save file (a pickled object), not a TorchScript archive"
        return None
    if head.startswith(_LEGACY_TORCH_MAGIC):
        if kind == "torchscript":
            return "is a legacy torch.save file, not a TorchScript archive"
        return None
    if head[:1] == b"\x80":
        return ("is a plain Python pickle, not a PyTorch weights file (refused: gan-eval never "
                "unpickles it)")
    if all(byte in _PRINTABLE for byte in head):
        return f"is a text file ({size} bytes), not a weights file"
    return f"is not a PyTorch file (it starts with the bytes {head[:8].hex(' ')})"


def zip_damage(source: str | os.PathLike[str] | bytes) -> str | None:
    """For a zip container (the format of ``torch.save`` files and TorchScript archives): the
    first record whose CRC-32 does not match its bytes, as a clause (a damaged file, or one
    spliced from a stale partial download of another version); None when every record matches
    or ``source`` (a path, or a file's bytes) is not a zip. Reads all of it."""
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if not zipfile.is_zipfile(handle):
            return None
        with zipfile.ZipFile(handle) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        return f"is damaged: its zip records cannot be read ({exc})"
    return None if bad is None else f"is damaged: its record {bad} fails its CRC-32 check"



# --------------------------------------------------------------------------------------------
# hashes
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------


def recorded_sha256(path: Path) -> str | None:
    """The sha256 recorded beside ``path`` at fetch time (``<path>.sha256``), if any."""
    record = path.with_name(path.name + SHA_SUFFIX)
    try:
        text = record.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and re.fullmatch(r"[0-9a-fA-F]{64}", text[0]) else None


def _normalise_sha(value: str, what: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise InputError(f"{what}: expected a 64-digit hex sha256, got {value!r}")
    return value


def expected_hash(entry: WeightsFile, pinned: str | None = None) -> tuple[str | None, str]:
    """``(full sha256 or prefix or None, where it comes from)`` that a file must match."""
    if pinned:
        return _normalise_sha(pinned, "--sha256"), "pinned by --sha256"
    if entry.sha256:
        return entry.sha256, "published"
    if entry.sha256_prefix:
        return entry.sha256_prefix, "published prefix"
    return None, "none published"


def hash_matches(actual: str, expected: str | None) -> bool:
    """Whether hex ``actual`` matches ``expected`` (a full sha256 or a leading prefix)."""
    return expected is None or actual.lower().startswith(expected.lower())


def is_full_sha256(expected: str | None) -> bool:
    """Whether ``expected`` (from :func:`expected_hash`) is a whole sha256, not a prefix."""
    return expected is not None and len(expected) == 64


