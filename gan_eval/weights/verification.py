"""``verify``: a found weights file against its published, pinned or recorded sha256, its zip
CRC-32s and its content (the extractor's check)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError
from gan_eval.fileio import sha256_file
from gan_eval.weights.files import (
    ContentCheck,
    expected_hash,
    hash_matches,
    is_full_sha256,
    recorded_sha256,
    zip_damage,
)
from gan_eval.weights.table import locate

# --------------------------------------------------------------------------------------------

#: :class:`Verified` statuses that mean the file must not be used.
BAD_STATUSES = ("mismatch", "invalid")


@dataclass(frozen=True)
class Verified:
    """One row of :func:`verify_one`.

    ``status``: ``"ok"`` (matches the published or pinned hash; content checked), ``"recorded"``
    (no hash published; content checked and matches the sha256 recorded at fetch),
    ``"content"`` (no hash published or recorded; content checked), ``"unchecked"`` (no hash
    and no content check given), ``"mismatch"`` (the hash differs), ``"invalid"`` (the content
    is not the expected file: ``detail`` says why), or ``"missing"``.
    """

    entry: WeightsFile
    path: Path | None
    sha256: str | None
    expected: str | None
    status: str
    detail: str = ""


def verify_one(name: str, explicit: str | os.PathLike[str] | None = None,
               sha256: str | None = None, *, check: ContentCheck | None = None) -> Verified:
    """Locate ``name``, hash it against the published / pinned / recorded sha256 and check its
    content with ``check`` (see :class:`Verified`)."""
    located = locate(name, explicit)
    entry = located.entry
    expected, _ = expected_hash(entry, sha256)
    if located.path is None:
        return Verified(entry, None, None, expected, "missing")
    path = located.path
    actual = sha256_file(path)
    record = recorded_sha256(path)
    if expected is not None:
        status = "ok"
    elif record is not None:
        expected, status = record, "recorded"
    else:
        status = "content" if check is not None else "unchecked"
    if not hash_matches(actual, expected):
        return Verified(entry, path, actual, expected, "mismatch")
    if record is not None and not is_full_sha256(expected) and actual != record:
        return Verified(entry, path, actual, record, "mismatch")  # prefix ok, not what was fetched
    if damage := zip_damage(path):
        return Verified(entry, path, actual, expected, "invalid", f"{path} {damage}")
    if check is not None:
        try:
            check(path)
        except InputError as exc:
            return Verified(entry, path, actual, expected, "invalid", str(exc))
    return Verified(entry, path, actual, expected, status)
