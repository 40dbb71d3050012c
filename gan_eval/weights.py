"""The pretrained weights files gan-eval knows: where each is found, how it is fetched and verified.

The files themselves are declared with their extractors (:class:`gan_eval.catalogue.WeightsFile`,
the ``weights`` of an :class:`~gan_eval.catalogue.ExtractorSpec`); :data:`WEIGHTS` is the live
table of them, so an extractor registered at run time is listed, fetched and verified like the
built-in ones.

No registry package ships these files (see ``ASSETS.md``), so gan-eval never downloads one
implicitly: a feature extractor only *locates* its file, and a missing file stops the run with
:class:`~gan_eval.errors.MissingAssetError` (CLI exit 3) naming the file, its official URL,
``gan-eval weights fetch NAME`` and ``--weights NAME=PATH``. ``fetch`` is the explicit, opt-in
download.

Where a file is looked for (:func:`locate`), in order:

1. an explicit path (a CLI option such as ``--weights NAME=PATH`` / ``--inception-weights PATH``);
2. the file's own environment variable (``WeightsFile.env``, e.g. ``GAN_EVAL_INCEPTION_WEIGHTS``,
   ``GAN_EVAL_DINOV2_VIT_S14_WEIGHTS``);
3. ``$GAN_EVAL_WEIGHTS_DIR/<file name>``;
4. gan-eval's weights cache, ``$XDG_CACHE_HOME/gan-eval/weights/<file name>`` (default
   ``~/.cache/gan-eval/weights``), where ``fetch`` puts files when ``$GAN_EVAL_WEIGHTS_DIR`` is
   unset;
5. where the upstream loaders cache the same bytes: torch hub's ``<hub dir>/checkpoints/`` (the
   file name torch-fidelity / ``torch.hub`` give it) and, for CLIP, ``~/.cache/clip/`` (OpenAI's
   ``clip`` package), so a machine that ever ran those online already has it.

An explicit path or environment variable is used or refused, never replaced by a file found
elsewhere: one that names a missing path is an :class:`~gan_eval.errors.InputError` (exit 2), and
so is one whose content is not the expected file (checked by the extractor that reads it).

Trust: OpenAI's CLIP URLs embed the file's full sha256; torch-fidelity's Inception file name
carries the first 8 hex digits of its sha256; Meta publishes no hash for the DINOv2 files. A file
is placed by ``fetch`` only after (a) the bytes received agree with what the server announced
(``Content-Length``; a ``206`` answer starts exactly where the partial download ends), (b) its
sha256 matches the published (or ``--sha256`` pinned) hash, (c) its zip records pass their
CRC-32 checks (:func:`zip_damage`: no damaged or spliced file), and (d) its *content* passed the
extractor's check (the right format, loaded safely, with the expected parameter names and
shapes; required where no full sha256 is published, run wherever one is given). The check is a
hook (``check=``) that the torch-side registry provides
(:func:`gan_eval.features.registry.weights_check`), so this module stays torch-free. The sha256
of the placed bytes is recorded beside the file (``<file>.sha256``) and ``verify`` checks the
record, the zip CRCs and the content.

Concurrency: a fetch holds an exclusive ``fcntl`` lock on ``<dest>/<file name>.lock`` from its
first look at the target to the placing of the file; a second fetch of the same file exits 2
("already in progress"). The lock dies with its process, so a ``.part`` left by a killed fetch is
resumed (and checked like any download) by the next one.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import pickle
import re
import string
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gan_eval import catalogue
from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import atomic_write_text, sha256_file

__all__ = [
    "LOCK_SUFFIX",
    "PART_SUFFIX",
    "SHA_SUFFIX",
    "WEIGHTS",
    "WEIGHTS_DIR_ENV",
    "ContentCheck",
    "Located",
    "Verified",
    "WeightsFile",
    "cache_dir",
    "candidates",
    "expected_hash",
    "fetch",
    "file_problem",
    "hash_matches",
    "known",
    "locate",
    "missing_message",
    "recorded_sha256",
    "resolve",
    "verify_one",
    "zip_damage",
]

#: Environment variable naming a folder searched for every weights file (and fetched into).
WEIGHTS_DIR_ENV = "GAN_EVAL_WEIGHTS_DIR"

#: Suffix of the partial download beside the target (resumed by the next ``fetch``).
PART_SUFFIX = ".part"

#: Suffix of the lock file a running ``fetch`` holds beside the target.
LOCK_SUFFIX = ".lock"

#: Suffix of the file recording the sha256 measured at fetch time.
SHA_SUFFIX = ".sha256"

ContentCheck = Callable[[Path], object]
"""A content check: reads the file at a path as its extractor would (safely, without building
the network) and raises :class:`~gan_eval.errors.InputError` naming the file and what was expected
when it is not that file; what it returns (a description) is only shown."""


class _WeightsTable(Mapping[str, WeightsFile]):
    """Every declared weights file by name: a live read-only view of the extractors' declarations
    (:data:`gan_eval.catalogue.EXTRACTORS`), in catalogue order."""

    def _files(self) -> dict[str, WeightsFile]:
        return {name: spec.weights for name, spec in catalogue.EXTRACTORS.items()
                if spec.weights is not None}

    def __getitem__(self, name: str) -> WeightsFile:
        return self._files()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files())

    def __len__(self) -> int:
        return len(self._files())


WEIGHTS: Mapping[str, WeightsFile] = _WeightsTable()
"""Every known weights file, by name (the name of the extractor that needs it)."""

INCEPTION_FILENAME = catalogue.INCEPTION_FILENAME


def known(name: str) -> WeightsFile:
    """The table entry ``name``; InputError listing the known names otherwise."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise InputError(
            f"unknown weights name {name!r}; known: {', '.join(WEIGHTS)}"
        ) from None


# --------------------------------------------------------------------------------------------
# where files are looked for
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where ``fetch`` puts files: ``$GAN_EVAL_WEIGHTS_DIR``, else
    ``$XDG_CACHE_HOME/gan-eval/weights``, else ``~/.cache/gan-eval/weights`` (not created)."""
    if env := os.environ.get(WEIGHTS_DIR_ENV, "").strip():
        return Path(env).expanduser()
    return _default_cache_dir()


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gan-eval" / "weights"


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``; honours
    ``torch.hub.set_dir``). Computing it touches nothing on disk."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def candidates(entry: WeightsFile) -> list[tuple[Path, str]]:
    """The non-explicit places searched for ``entry``, in order, as ``(path, label)``."""
    out: list[tuple[Path, str]] = []
    if env_dir := os.environ.get(WEIGHTS_DIR_ENV, "").strip():
        out.append((Path(env_dir).expanduser() / entry.filename, f"${WEIGHTS_DIR_ENV}"))
    out.append((_default_cache_dir() / entry.filename, "gan-eval cache"))
    hub = hub_checkpoints_dir()
    for upstream in entry.upstream_names:
        out.append((hub / upstream, "torch hub cache"))
    if entry.kind == "torchscript":
        out.append((Path.home() / ".cache" / "clip" / entry.filename, "OpenAI clip cache"))
    return out


@dataclass(frozen=True)
class Located:
    """What :func:`locate` found: ``path`` (None: not found), how, and every place tried."""

    entry: WeightsFile
    path: Path | None
    source: str
    tried: tuple[str, ...]

    @property
    def found(self) -> bool:
        return self.path is not None


def _checked(path: Path, what: str, entry: WeightsFile) -> Path:
    if not path.exists():
        raise InputError(f"{entry.name} weights file given by {what} does not exist: {path}; "
                         f"expected {entry.expected}")
    if not path.is_file():
        raise InputError(f"{entry.name} weights path given by {what} is not a file: {path}; "
                         f"expected {entry.expected}")
    return path


def weights_option(name: str) -> str:
    """The CLI spelling that hands extractor ``name`` its weights file."""
    return f"--weights {name}=PATH"


def locate(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    *,
    option: str | None = None,
) -> Located:
    """Find the weights file ``name`` without reading or downloading anything.

    Args:
        name: a key of :data:`WEIGHTS`.
        explicit: a path the user gave (``None`` or ``""``: not given).
        option: the CLI option that carried ``explicit`` (for error messages; default
            ``--weights NAME=PATH``).

    Returns:
        :class:`Located`; ``path`` is None when no candidate exists (``tried`` lists them).

    Raises:
        InputError: ``explicit`` or the file's environment variable names a missing path or a
            non-file (the user asked for that file).
    """
    entry = known(name)
    if explicit is not None and str(explicit) != "":
        what = option or weights_option(name)
        path = _checked(Path(explicit).expanduser(), what, entry)
        return Located(entry, path, what, (str(path),))
    if from_env := os.environ.get(entry.env, "").strip():
        path = _checked(Path(from_env).expanduser(), f"${entry.env}", entry)
        return Located(entry, path, f"${entry.env}", (str(path),))
    tried: list[str] = []
    for path, label in candidates(entry):
        tried.append(str(path))
        if path.is_file():
            return Located(entry, path, label, tuple(tried))
    return Located(entry, None, "not found", tuple(tried))


def missing_message(name: str, *, option: str | None = None) -> str:
    """The text of the :class:`MissingAssetError` for a weights file that is not found: the
    working ways to provide it (fetch, the option, the environment variable, the folders), and
    the pip extra when the extractor's packages are missing too."""
    entry = known(name)
    via = option or weights_option(name)
    text = (
        f"{entry.name} weights not found: {entry.filename} ({entry.description}, "
        f"{entry.approx_size}). gan-eval never downloads it implicitly: run `gan-eval weights "
        f"fetch {entry.name}` (downloads {entry.url}, checks it and puts it in {cache_dir()}), "
        f"or download it yourself and pass `{via.replace('PATH', '/path/to/' + entry.filename)}`"
        f", or set {entry.env}=/path/to/{entry.filename}, or put it in ${WEIGHTS_DIR_ENV}."
    )
    spec = catalogue.EXTRACTORS.get(name)
    if spec is not None and (missing := spec.missing_packages()):
        text += (f" {entry.name} also needs {', '.join(missing)}, which this install lacks: "
                 f"{spec.install_hint()}.")
    return text


def resolve(
    name: str, explicit: str | os.PathLike[str] | None = None, *, option: str | None = None
) -> Path:
    """:func:`locate` that raises :class:`MissingAssetError` (exit 3) when nothing is found."""
    located = locate(name, explicit, option=option)
    if located.path is None:
        raise MissingAssetError(missing_message(name, option=option))
    return located.path


# --------------------------------------------------------------------------------------------
# what a file is (torch-free; before anything parses it)
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


def _is_full(expected: str | None) -> bool:
    return expected is not None and len(expected) == 64


# --------------------------------------------------------------------------------------------
# fetch: the destination, its lock, the download
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
    return _Dest(_default_cache_dir(), None)


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
    if expected is None and recorded_sha256(target) not in (None, have):
        return f"has sha256 {have}, not the {recorded_sha256(target)} recorded when fetched"
    if damage := zip_damage(target):
        return damage
    if check is not None:
        try:
            check(target)
        except InputError as exc:
            return f"is not usable ({exc})"
    elif not _is_full(expected):
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
    if check is None and not _is_full(expected):
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


# --------------------------------------------------------------------------------------------
# verify
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
    if damage := zip_damage(path):
        return Verified(entry, path, actual, expected, "invalid", f"{path} {damage}")
    if check is not None:
        try:
            check(path)
        except InputError as exc:
            return Verified(entry, path, actual, expected, "invalid", str(exc))
    return Verified(entry, path, actual, expected, status)
