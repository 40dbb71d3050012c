"""Atomic, durable file writes: write a temporary file beside the target, fsync it,
``os.replace`` it onto the target, then fsync the folder.

A crash or an error never leaves a half-written output under the final name, and once a write
returns, a power loss cannot bring back the previous content (the file's data and the rename are
both on disk). Temporary files are named ``.NAME.<pid>-<random>.tmp``; the ones a killed process
left behind are removed by the next successful write into the same folder
(:func:`clean_stale_temps`), those of live writers are not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gan_eval.errors import InputError

TEMP_SUFFIX = ".tmp"
_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)-[a-z0-9_]+\.tmp", re.ASCII)
_cleaned: set[Path] = set()  # folders this process already swept (see clean_stale_temps)


def temp_prefix(target: Path) -> str:
    """Prefix of the temporary files this process creates for ``target``: ``.NAME.<pid>-``.

    The writer's process id in the name tells a killed write's leftover (its process is gone)
    from a write in progress in another process (alive), which must not be touched.
    """
    return f".{target.name}.{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < (1 << 22)  # another user's live process (or an impossible pid: dead)
    return True


def stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Temporary files in ``folder`` left by atomic writes whose process no longer runs."""
    path = Path(folder)
    try:
        with os.scandir(path) as listing:
            names = [e.name for e in listing]
    except OSError:
        return []
    stale = []
    for name in names:
        match = _TEMP.fullmatch(name)
        if match and not _pid_alive(int(match["pid"])):
            stale.append(path / name)
    return sorted(stale)


def clean_stale_temps(folder: str | os.PathLike[str], *, force: bool = False) -> int:
    """Remove :func:`stale_temps` of ``folder``; returns how many.

    Called after each successful atomic write. A folder is swept once per process (``force``
    sweeps again): writing N files into one folder then costs one listing, not N. Temporary
    files of writes still running in other processes are kept.
    """
    path = Path(folder)
    key = path.resolve()
    if key in _cleaned and not force:
        return 0
    removed = 0
    for stale in stale_temps(path):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed += 1
    _cleaned.add(key)
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
    (``durable=False`` skips both: for many small files whose loss a rerun repairs), then
    temporary files that killed writes left in the folder are removed, once per process and
    folder (:func:`clean_stale_temps`; ``clean_stale=False`` skips it). On an exception the
    temporary file is removed and the target is left untouched. The file gets the permissions a
    plain ``open(path, "w")`` would give (0666 less the umask), not mkstemp's owner-only 0600:
    reports and results are meant to be shared.
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; expected the path of a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX,
                                   dir=target.parent)
    except OSError as exc:  # a file where a folder should be, a read-only place, a full disk
        raise InputError(f"{target}: cannot write here ({exc.strerror or exc})") from exc
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
        clean_stale_temps(target.parent)


def _probe_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) if needed and check a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise InputError(f"{what}: {folder} is a file, not a folder") from exc
    except OSError as exc:
        raise InputError(f"{what}: cannot create the folder {folder} "
                         f"({exc.strerror or exc})") from exc
    if not folder.is_dir():
        raise InputError(f"{what}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gan-eval-probe.", dir=folder)
    except OSError as exc:
        raise InputError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike[str], option: str | None = None) -> Path:
    """``path`` as a file gan-eval can write (its folder is created); :class:`InputError` naming
    ``option`` (or the path) when it is a folder, its parent is a file, or nothing can be
    written there. Called before a command's work, so a long run never ends on an unusable
    output path."""
    target = Path(path).expanduser()
    what = f"{option} {target}" if option else str(target)
    if target.is_dir():
        raise InputError(f"{what}: is a folder; expected the path of a file to write")
    for parent in target.parents:  # a file anywhere above makes the path unusable
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what}: {parent} is a file, not a folder")
            break
    _probe_folder(target.parent, what)
    return target


def check_output_dir(path: str | os.PathLike[str], option: str, *, create: bool = True,
                     empty: bool = False) -> Path:
    """``path`` as a folder gan-eval can write into (created when missing, unless ``create`` is
    False: then its parent is created and checked); :class:`InputError` naming ``option`` when it
    is a file or cannot be written, or, with ``empty``, when it already holds something (a
    command that replaces a folder whole offers ``--overwrite`` for that)."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder}: is a file; expected a folder")
    if empty and folder.is_dir() and any(folder.iterdir()):
        raise InputError(f"{option} {folder}: the folder is not empty; choose a new or empty "
                         "folder, or pass --overwrite to replace it")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {folder}: {parent} is a file, not a folder")
            break
    _probe_folder(folder if create else folder.parent, f"{option} {folder}")
    return folder


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
