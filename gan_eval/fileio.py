"""Atomic, durable file writes: write a temporary file beside the target, fsync it,
``os.replace`` it onto the target, then fsync the folder.

A crash or an error never leaves a half-written output under the final name, and once a write
returns, a power loss cannot bring back the previous content (the file's data and the rename are
both on disk). Temporary files are named ``.NAME.<random>.tmp``; the ones a killed process left
behind are removed by the next successful write of the same target (:func:`clean_stale_temps`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_prefix(target: Path) -> str:
    """Prefix of the temporary files :func:`atomic_path` creates for ``target``."""
    return f".{target.name}."


def stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of earlier writes of ``target`` still beside it (``.NAME.*.tmp``)."""
    path = Path(target)
    prefix = temp_prefix(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    return sorted(
        path.parent / e.name
        for e in entries
        if e.name.startswith(prefix) and e.name.endswith(TEMP_SUFFIX)
        # the random middle part of mkstemp's names has no dot: ".a.png.x1.tmp" is not a.png's
        and "." not in e.name[len(prefix) : -len(TEMP_SUFFIX)]
    )


def clean_stale_temps(target: str | os.PathLike[str], *, keep: Path | None = None) -> int:
    """Remove temporary files that killed writes of ``target`` left; returns how many.

    Call it only after a write of ``target`` succeeded: a concurrent writer of the same target
    would lose its temporary file (gan-eval never writes one target from two processes).
    """
    removed = 0
    for stale in stale_temps(target):
        if keep is not None and stale == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed += 1
    return removed


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's data (or a folder's entries) to the disk."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a folder so that renames and unlinks in it survive a power loss.

    Some file systems refuse fsync on a folder (EINVAL); their renames are then as durable as
    the file system makes them, and nothing more can be done.
    """
    try:
        fsync_path(path)
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, durable: bool = True, clean_stale: bool = True
) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``path``.

    On success the temporary file is fsynced before the rename and the folder after it
    (``durable=False`` skips both: for many small files whose loss a rerun repairs), then stale
    temporary files of earlier, killed writes of ``path`` are removed (``clean_stale=False``
    skips that folder listing, whose cost grows with the folder: for writing thousands of files
    into one folder). On an exception the
    temporary file is removed and the target is left untouched. The file gets the permissions a
    plain ``open(path, "w")`` would give (0666 less the umask), not mkstemp's owner-only 0600:
    reports and results are meant to be shared.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~_umask())
        if durable:
            fsync_path(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)
    if clean_stale:
        clean_stale_temps(target)


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it, then restore it
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically and durably."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
