"""Atomic, durable file writes: write a temporary file beside the target, fsync it,
``os.replace`` it onto the target, then fsync the folder.

A crash or an error never leaves a half-written output under the final name, and once a write
returns, a power loss cannot bring back the previous content (the file's data and the rename are
both on disk). Temporary files (and staging folders, :func:`temp_dir`) are named
``.NAME.<pid>-<random>.tmp``; the ones a killed process left behind are removed by the next
successful write into the same folder (:func:`clean_stale_temps`), those of live writers are
not. Their names start with a dot: image folders skip hidden entries, so a killed writer's
leftovers are never read as data.

**Several files that change together** (a report's ``results.json`` and ``index.html``):
:func:`write_together` writes each new file as a pending file beside its target
(``.NAME.<pid>-<random>.pending``), then commits by writing one journal
(``.gan-eval-commit.json``, atomically) that names them all, then renames them onto their
targets and removes the journal. A kill before the journal leaves every old file; after it,
the journal says what the folder holds, and :func:`read_committed` (every reader of such a
file) reads through it — or finishes the renames once the writer is gone — so no reader sees
half of one write and half of another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from gan_eval.errors import InputError

TEMP_SUFFIX = ".tmp"
PENDING_SUFFIX = ".pending"
COMMIT_JOURNAL = ".gan-eval-commit.json"
"""The journal of a :func:`write_together` commit in progress (or interrupted)."""
_TEMP = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)-[a-z0-9_]+\.tmp", re.ASCII)
_PENDING = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)-[a-z0-9_]+\.pending", re.ASCII)
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


def temp_dir(target: str | os.PathLike[str]) -> Path:
    """Create an empty staging folder beside ``target`` (``.NAME.<pid>-<random>.tmp``) with the
    permissions a plain ``mkdir`` gives (0777 less the umask; not mkdtemp's owner-only 0700),
    so that renaming it onto ``target`` gives the folder a user expects. A killed process's
    staging folder is hidden from image-folder readers and removed by
    :func:`clean_stale_temps`."""
    path = Path(target)
    while True:
        staging = path.with_name(f"{temp_prefix(path)}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Temporary files and staging folders in ``folder`` left by writes whose process no
    longer runs."""
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
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
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


# -- several files that change together ------------------------------------------------------


def _relative(name: str, what: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") for p in rel.parts):
        raise InputError(f"{what}: {name!r} is not a plain path inside the folder")
    return rel


def _read_journal(folder: Path) -> dict[str, object] | None:
    """The pending commit of ``folder`` (pid, renames, removals), or None when there is none.
    :class:`InputError` naming the journal when it is not one gan-eval wrote."""
    journal = folder / COMMIT_JOURNAL
    try:
        raw = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{journal}: not a readable gan-eval commit journal ({exc})") from exc
    renames, removals = (raw.get("files"), raw.get("remove")) if isinstance(raw, dict) else (
        None, None)
    if (not isinstance(raw, dict) or isinstance(raw.get("pid"), bool)
            or not isinstance(raw.get("pid"), int) or not isinstance(renames, dict)
            or not isinstance(removals, list)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in renames.items())
            or not all(isinstance(r, str) for r in removals)):
        raise InputError(f"{journal}: not a gan-eval commit journal (expected pid, files, "
                         "remove)")
    root = folder.resolve()
    for target, pending in renames.items():
        rel, pend = _relative(target, str(journal)), _relative(pending, str(journal))
        if pend.parent != rel.parent or not _PENDING.fullmatch(pend.name):
            raise InputError(f"{journal}: {pending!r} is not a pending file beside {target!r}")
        _contained(root, folder / rel, journal)
    for name in removals:
        _contained(root, folder / _relative(name, str(journal)), journal)
    return {"pid": raw["pid"], "files": renames, "remove": removals}


def _contained(root: Path, path: Path, journal: Path) -> None:
    """:class:`InputError` unless ``path``'s folder lies inside ``root`` once links are
    followed (a renamed or removed entry itself is never followed: a link is replaced)."""
    if not path.parent.resolve().is_relative_to(root):
        raise InputError(f"{journal}: {path} lies outside {root} through a symbolic link")


def finish_commit(folder: str | os.PathLike[str]) -> bool:
    """Complete a :func:`write_together` commit that a killed writer left in ``folder`` (rename
    its pending files onto their targets, make its removals, delete the journal). A commit
    whose writer still runs is left to it. Returns True when no commit is pending afterwards.
    Raises OSError when the folder cannot be changed (e.g. read-only)."""
    path = Path(folder)
    journal = _read_journal(path)
    if journal is None:
        return True
    pid = journal["pid"]
    assert isinstance(pid, int)
    if pid != os.getpid() and _pid_alive(pid):
        return False
    _apply(path, journal)
    return True


def _apply(folder: Path, journal: dict[str, object]) -> None:
    renames, removals = journal["files"], journal["remove"]
    assert isinstance(renames, dict) and isinstance(removals, list)
    parents = {folder}
    for target, pending in renames.items():
        with contextlib.suppress(FileNotFoundError):  # renamed already (interrupted half-way)
            os.replace(folder / pending, folder / target)
        parents.add((folder / target).parent)
    for name in removals:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    for parent in parents:
        fsync_dir(parent)
    with contextlib.suppress(FileNotFoundError):
        (folder / COMMIT_JOURNAL).unlink()
    fsync_dir(folder)


def read_committed(path: str | os.PathLike[str]) -> Path:
    """The file to read for ``path``: ``path`` itself, unless a :func:`write_together` commit
    of its folder is pending — then the content that commit gives it.

    A commit whose writer was killed is finished first when the folder can be written; a
    commit still running in another process (or one that cannot be finished here, e.g. on a
    read-only copy) is read through: the pending file when it is still there, else the target
    (already renamed). Either way the reader sees all of one commit, never half of two.
    :class:`InputError` when the folder's journal is not one gan-eval wrote.
    """
    target = Path(path)
    folder = target.parent
    if not (folder / COMMIT_JOURNAL).exists():
        return target
    try:
        if finish_commit(folder):
            return target
    except OSError:
        pass
    journal = _read_journal(folder)
    if journal is None:  # finished meanwhile
        return target
    renames = journal["files"]
    assert isinstance(renames, dict)
    pending = renames.get(target.name)
    if isinstance(pending, str) and (folder / pending).exists():
        return folder / pending
    return target


def _stale_pending(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as listing:
            names = [e.name for e in listing]
    except OSError:
        return []
    return [folder / n for n in names
            if (m := _PENDING.fullmatch(n)) and not _pid_alive(int(m["pid"]))]


def write_together(folder: str | os.PathLike[str], files: Mapping[str, bytes], *,
                   remove: Iterable[str] = ()) -> None:
    """Replace several files of ``folder`` as one change, durably: after a kill at any moment,
    every reader (:func:`read_committed`) sees either all of the old files or all of the new
    ones (and ``remove``'s files gone with them).

    ``files`` maps paths relative to ``folder`` (subfolders are created) to their new bytes;
    ``remove`` names files to delete in the same change. New files get the permissions a plain
    ``open(path, "w")`` gives (0666 less the umask). A commit left by a killed writer is
    finished first, and pending files of killed writes are removed. :class:`InputError` when
    the folder cannot be written or another live process is committing into it.
    """
    base = Path(folder)
    targets = {name: _relative(name, str(base)) for name in files}
    removals = [str(_relative(name, str(base))) for name in remove]
    try:
        base.mkdir(parents=True, exist_ok=True)
        if not finish_commit(base):
            journal = _read_journal(base)
            raise InputError(f"{base}: another gan-eval process (pid "
                             f"{journal['pid'] if journal else '?'}) is writing here; wait for "
                             "it or choose another folder")
        for rel in {PurePosixPath(), *(r.parent for r in targets.values())}:
            (base / rel).mkdir(parents=True, exist_ok=True)
            clean_stale_temps(base / rel, force=True)  # e.g. a killed commit's journal temp
            for stale in _stale_pending(base / rel):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
    except OSError as exc:
        raise InputError(f"{base}: cannot write here ({exc.strerror or exc})") from exc
    pending: dict[str, str] = {}
    try:
        for name, data in files.items():
            target = base / targets[name]
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=PENDING_SUFFIX,
                                       dir=target.parent)
            pending[name] = str(targets[name].parent / Path(tmp).name)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchmod(handle.fileno(), 0o666 & ~_umask())
                os.fsync(handle.fileno())
        for rel in {r.parent for r in targets.values()}:
            fsync_dir(base / rel)
        journal = {"pid": os.getpid(), "files": pending, "remove": removals}
        # the commit point: from here on the new files are what the folder holds
        atomic_write_text(base / COMMIT_JOURNAL, json.dumps(journal, indent=1) + "\n")
    except BaseException:
        for tmp in pending.values():
            (base / tmp).unlink(missing_ok=True)
        raise
    _apply(base, journal)
