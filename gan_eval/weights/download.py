"""``fetch``: the explicit download of a weights file: its destination and lock, the HTTP transfer
checked against what the server announced, and the checks before the file is placed (see
:mod:`gan_eval.weights`)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import atomic_write_text, sha256_file
from gan_eval.weights.files import (
    SHA_SUFFIX,
    ContentCheck,
    expected_hash,
    hash_matches,
    is_full_sha256,
    recorded_sha256,
    zip_damage,
)
from gan_eval.weights.table import WEIGHTS_DIR_ENV, default_cache_dir, known

#: Suffix of the partial download beside the target (resumed by the next ``fetch``).
PART_SUFFIX = ".part"

#: Suffix of the lock file a running ``fetch`` holds beside the target.
LOCK_SUFFIX = ".lock"


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dest:
    """The folder ``fetch`` writes into and how the user chose it (for exit-2 messages)."""

    path: Path
    option: str | None  # "--dest", "$GAN_EVAL_WEIGHTS_DIR" or None (the default cache)

    def error(self, problem: str, exc: BaseException | None = None) -> InputError:
        reason = ""
        if exc is not None:
            reason = f" ({getattr(exc, 'strerror', None) or exc})"
        if self.option == "--dest":
            where, hint = f"--dest {self.path}", "expected a writable folder"
        elif self.option is not None:
            where, hint = f"{self.option}={self.path}", "expected a writable folder"
        else:
            where = f"gan-eval's weights cache {self.path}"
            hint = f"pass --dest FOLDER or set ${WEIGHTS_DIR_ENV} to fetch into another folder"
        return InputError(f"{where}: {problem}{reason}; {hint}")


def _destination(dest_dir: str | os.PathLike[str] | None) -> _Dest:
    if dest_dir is not None and str(dest_dir) != "":
        return _Dest(Path(dest_dir).expanduser(), "--dest")
    if env := os.environ.get(WEIGHTS_DIR_ENV, "").strip():
        return _Dest(Path(env).expanduser(), f"${WEIGHTS_DIR_ENV}")
    return _Dest(default_cache_dir(), None)


def _blocking_ancestor(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or itself) that is not a folder."""
    for candidate in [*reversed(path.parents), path]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def _prepare(dest: _Dest, paths: dict[Path, str]) -> None:
    """Create ``dest`` and refuse anything in the way of ``paths`` (exit 2 naming the option)."""
    blocker = _blocking_ancestor(dest.path)
    if blocker == dest.path:
        raise dest.error("is a file, not a folder")
    if blocker is not None:
        raise dest.error(f"cannot be created: {blocker} is a file in the way")
    try:
        dest.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise dest.error("cannot be created", exc) from None
    for path, what in paths.items():
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise dest.error(f"{path} is in the way: {what} goes there but it is "
                             f"{'a folder' if path.is_dir() else 'not a regular file'}; "
                             "remove it")


@contextlib.contextmanager
def _locked(lock: Path, dest: _Dest, entry: WeightsFile) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock`` (non-blocking): a second fetch of the same
    file exits 2. The lock file is removed while still held, and a waiter that locked a removed
    file retries on the fresh one, so no two holders ever overlap."""
    import fcntl

    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise dest.error(f"cannot write in it ({lock.name})", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise InputError(
                f"a fetch of {entry.filename} into {dest.path} is already in progress (pid "
                f"{holder}, holding {lock.name}); wait for it, then run `gan-eval weights fetch "
                f"{entry.name}` again if it failed"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise dest.error(f"cannot lock {lock.name}", exc) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed this file after we opened it: retry
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise dest.error(f"cannot write in it ({lock.name})", exc) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


class _Cut(Exception):
    """The connection ended before the announced length (resumable)."""


class _Restart(Exception):
    """The partial download cannot be resumed; start again from byte 0."""


class _BadResponse(Exception):
    """The server's answer is not the file (wrong type, inconsistent lengths or range)."""


class _Local(Exception):
    """A local file operation failed (exit 2 naming the destination)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(str(cause))
        self.path = path
        self.cause = cause


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--url {url!r}: expected an http:// or https:// URL of the weights "
                         "file (for a file on this machine, pass --weights NAME=PATH instead)")
    return url


def _progress(total: int | None, initial: int, desc: str, enabled: bool) -> Any:
    """A tqdm byte counter on stderr (disabled: a no-op bar)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "gan-eval-weights-fetch", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # explicit opt-in (fetch)


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise _BadResponse(f"the server sent an invalid Content-Length {value!r}")
    return int(value)


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total or None)`` of a ``Content-Range: bytes a-b/T`` header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


def _download_once(url: str, part: Path, timeout: float, progress: bool, desc: str,
                   chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (resuming at its size).

    Raises:
        _Cut: the body ended before the announced length (resumable).
        _Restart: the server has nothing past the part's end although its file is longer or
            shorter (the part is not a prefix of it).
        _BadResponse: the answer is not the file: a text/HTML body, a 206 that does not start at
            the requested offset or whose lengths disagree, an unexpected status.
        _Local: reading or writing ``part`` failed.
        urllib.error.URLError, http.client.HTTPException, OSError: the network failed.
    """
    try:
        offset = part.stat().st_size if part.exists() else 0
    except OSError as exc:
        raise _Local(part, exc) from None
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            size = (exc.headers.get("Content-Range") or "").rpartition("/")[2].strip()
            if size == str(offset):  # the part already holds every byte
                return
            raise _Restart(f"the server has no bytes from {offset} on (its file: "
                           f"{size or 'unknown'} bytes)") from None
        raise
    with contextlib.closing(response):
        status = response.status
        ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype.startswith("text/") or ctype in ("application/xhtml+xml", "application/json"):
            raise _BadResponse(f"the server sent {ctype}, not a weights file (a captive portal, "
                               "proxy or error page?)")
        length = _int_header(response.headers.get("Content-Length"))
        if status == 206:
            raw = response.headers.get("Content-Range")
            parsed = _content_range(raw)
            if parsed is None:
                raise _BadResponse(f"the server answered a request for the bytes from {offset} "
                                   f"with HTTP 206 and Content-Range {raw!r}")
            first, last, total = parsed
            if first != offset:
                raise _BadResponse(f"the server answered a request for the bytes from {offset} "
                                   f"with the bytes from {first} (Content-Range {raw!r})")
            if length is not None and length != last - first + 1:
                raise _BadResponse(f"the server's Content-Length ({length}) disagrees with its "
                                   f"Content-Range {raw!r}")
            body: int | None = last - first + 1
            mode = "ab"
        elif status == 200:
            offset, body, total, mode = 0, length, length, "wb"  # Range ignored: from byte 0
        else:
            raise _BadResponse(f"the server answered HTTP {status} {response.reason}")
        received = 0
        try:
            with open(part, mode) as out, _progress(total, offset, desc, progress) as bar:
                while True:
                    try:
                        block = response.read(chunk if body is None
                                              else min(chunk, body - received))
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                        raise _Cut(str(exc) or type(exc).__name__) from None
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                    if body is not None and received >= body:
                        break
        except OSError as exc:
            raise _Local(part, exc) from None
    if body is not None and received < body:
        raise _Cut(f"connection closed after {offset + received} of "
                   f"{total if total is not None else offset + body} bytes")
    if total is not None and offset + received < total:  # a server that sends ranges in parts
        raise _Cut(f"the server sent bytes {offset}-{offset + received - 1} of {total}")


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        last = (str(exc.reason).strip().splitlines() or [""])[-1]
        if exc.code in (301, 302, 303, 307, 308):
            return (f"the server keeps redirecting (HTTP {exc.code} {last}: a redirect loop, or "
                    "more redirections than urllib follows)")
        return f"HTTP {exc.code} {last}"
    reason = getattr(exc, "reason", None) or exc
    return f"{type(exc).__name__}: {reason}" if str(reason) == "" else str(reason)


def _stale_reason(target: Path, expected: str | None, expected_from: str,
                  check: ContentCheck | None) -> str | None:
    """Why the file already at ``target`` cannot be kept (None: keep it)."""
    have = sha256_file(target)
    if not hash_matches(have, expected):
        return f"has sha256 {have}, expected {expected} ({expected_from})"
    if not is_full_sha256(expected) and recorded_sha256(target) not in (None, have):
        return f"has sha256 {have}, not the {recorded_sha256(target)} recorded when fetched"
    if damage := zip_damage(target):
        return damage
    if check is not None:
        try:
            check(target)
        except InputError as exc:
            return f"is not usable ({exc})"
    elif not is_full_sha256(expected):
        return "cannot be checked (no full sha256 and no content check)"
    return None


def fetch(
    name: str,
    *,
    check: ContentCheck | None = None,
    url: str | None = None,
    dest_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    chunk: int = 1 << 20,
    log: IO[str] | None = None,
) -> Path:
    """Download the weights file ``name`` (explicit opt-in), verify it, place it atomically.

    Under an exclusive lock (``<file name>.lock``), the bytes go to ``<dest>/<file name>.part``;
    a part file left by an earlier, interrupted (or killed) fetch is resumed with an HTTP
    ``Range`` request (a ``200`` answer restarts from byte 0; a ``206`` must start exactly at the
    part's end), and a connection cut mid-file is resumed up to ``retries`` times. The complete
    file must have the announced size, match ``sha256`` (a user pin), else the published sha256
    (CLIP), else the published prefix (Inception), and pass ``check`` (its content is the expected
    network). Only then is it renamed onto ``<dest>/<file name>`` (``os.replace``, same folder:
    atomic) and its sha256 written to ``<file name>.sha256``. A file already at the target that
    passes the same checks is kept (no download); one that does not is replaced.

    Args:
        name: a key of :data:`WEIGHTS`.
        check: the extractor's content check (:func:`gan_eval.features.registry.weights_check`);
            required unless a full sha256 is published or pinned.
        url: download from here instead of the official URL (a mirror; tests use 127.0.0.1).
        dest_dir: target folder (default :func:`cache_dir`).
        sha256: a full hex sha256 the file must have (overrides the table).
        progress: show a tqdm progress bar on stderr.
        retries: resumptions after a cut connection before giving up (the part file is kept).
        timeout: socket timeout, seconds.
        chunk: read size, bytes.
        log: where to write one-line notes (default stderr).

    Returns:
        The placed file.

    Raises:
        InputError: unknown ``name``, a malformed ``sha256`` or ``url``, no way to verify the
            content, a destination that cannot be used (a file where the folder should be, a
            read-only folder, a folder where the file or its ``.part`` goes, a failed write: the
            message names ``--dest`` / ``$GAN_EVAL_WEIGHTS_DIR``), or another fetch of the same
            file in progress.
        MissingAssetError: the download failed (offline, HTTP error, a redirect loop, cut more
            than ``retries`` times: the part file is kept for the next fetch to resume) or what
            arrived is not the file (HTML, inconsistent lengths or range, wrong hash, wrong
            content: the part file is deleted and nothing is placed). Exit 3 with what to do.
    """
    entry = known(name)
    expected, expected_from = expected_hash(entry, sha256)
    source = _check_url(url) if url is not None else entry.url
    if check is None and not is_full_sha256(expected):
        raise InputError(
            f"{entry.name}: no full sha256 is published for {entry.filename} and no content "
            f"check was given, so a download could not be verified; run `gan-eval weights fetch "
            f"{entry.name}` (which checks the content) or pin the sha256 with --sha256"
        )
    dest = _destination(dest_dir)
    target = dest.path / entry.filename
    part = dest.path / (entry.filename + PART_SUFFIX)
    lock = dest.path / (entry.filename + LOCK_SUFFIX)
    record = dest.path / (entry.filename + SHA_SUFFIX)
    note = log if log is not None else sys.stderr
    _prepare(dest, {target: "the weights file", part: "the partial download",
                    lock: "the lock file", record: "the sha256 record"})

    with _locked(lock, dest, entry):
        if target.is_file():
            try:
                stale = _stale_reason(target, expected, expected_from, check)
            except OSError as exc:
                raise dest.error(f"cannot read {target.name}", exc) from None
            if stale is None:
                print(f"{entry.name}: already at {target} (sha256 {sha256_file(target)})",
                      file=note)
                return target
            print(f"{entry.name}: {target} {stale}; fetching again", file=note)
        _download(entry, source, part, dest, retries, timeout, progress, chunk, note)
        actual = _verified(entry, source, part, expected, expected_from, check, dest)
        try:
            os.replace(part, target)
            atomic_write_text(record, f"{actual}  {entry.filename}\n")
        except OSError as exc:
            raise dest.error(f"cannot place {target.name}", exc) from None
    if expected is None:
        print(f"{entry.name}: no sha256 is published for this file; its content was checked and "
              f"the sha256 {actual} recorded in {record.name}", file=note)
    print(f"{entry.name}: placed {target} (sha256 {actual})", file=note)
    return target


def _download(entry: WeightsFile, source: str, part: Path, dest: _Dest, retries: int,
              timeout: float, progress: bool, chunk: int, note: IO[str]) -> None:
    """Bring ``part`` to the whole file, resuming; the errors of :func:`fetch`."""
    target = dest.path / entry.filename
    attempts = 0
    while True:
        try:
            _download_once(source, part, timeout, progress, entry.filename, chunk)
            return
        except _Local as exc:
            raise dest.error(f"cannot write {exc.path.name}", exc.cause) from None
        except _BadResponse as bad:
            with contextlib.suppress(OSError):
                part.unlink()
            raise MissingAssetError(
                f"refused what {source} sent for {entry.filename}: {bad}. Nothing was placed and "
                f"the partial download was deleted; check the URL (a proxy or captive portal may "
                f"be answering), then run `gan-eval weights fetch {entry.name}` again."
            ) from None
        except (_Cut, _Restart) as cut:
            attempts += 1
            if isinstance(cut, _Restart):
                with contextlib.suppress(OSError):
                    part.unlink()
            if attempts > retries:
                size = part.stat().st_size if part.is_file() else 0
                raise MissingAssetError(
                    f"downloading {entry.filename} from {source} was cut off ({cut}) after "
                    f"{retries} resumption(s); the {size} bytes received are kept in {part}: "
                    f"run `gan-eval weights fetch {entry.name}` again to resume."
                ) from None
            again = "restarting" if isinstance(cut, _Restart) else "resuming"
            print(f"{entry.name}: {cut}; {again}", file=note)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise MissingAssetError(
                f"cannot download {entry.filename} from {source}: {_network_reason(exc)}. If this "
                f"machine is offline, download it elsewhere from {entry.url}, check its sha256 "
                f"({entry.published_hash}), and put it at {target} or set "
                f"{entry.env}=/path/to/{entry.filename}."
            ) from None


def _verified(entry: WeightsFile, source: str, part: Path, expected: str | None,
              expected_from: str, check: ContentCheck | None, dest: _Dest) -> str:
    """The sha256 of the complete ``part`` after the hash and content checks (else the part is
    deleted and MissingAssetError raised)."""

    def refuse(why: str) -> MissingAssetError:
        with contextlib.suppress(OSError):
            part.unlink()
        return MissingAssetError(
            f"{entry.filename} downloaded from {source} {why}; the download was deleted and "
            f"nothing was placed. Check the URL (a proxy or captive portal may have answered), "
            f"then run `gan-eval weights fetch {entry.name}` again."
        )

    try:
        actual = sha256_file(part)
    except OSError as exc:
        raise dest.error(f"cannot read {part.name}", exc) from None
    if not hash_matches(actual, expected):
        raise refuse(f"has sha256 {actual}, expected {expected} ({expected_from})")
    if damage := zip_damage(part):
        raise refuse(damage)
    if check is not None:
        try:
            check(part)
        except InputError as exc:
            raise refuse(f"was refused: {exc}") from None
    return actual


