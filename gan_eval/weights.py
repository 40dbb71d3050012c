"""The pretrained weights files gan-eval knows: where each comes from, how it is found, fetched
and verified.

No registry package ships these files (see ``ASSETS.md``), so gan-eval never downloads one
implicitly: a feature extractor only *locates* its file, and a missing file stops the run with
:class:`~gan_eval.errors.MissingAssetError` (CLI exit 3) naming the file, its official URL and
``gan-eval weights fetch NAME``. ``fetch`` is the explicit, opt-in download.

Where a file is looked for (:func:`locate`), in order:

1. an explicit path (a CLI option such as ``--weights PATH`` / ``--inception-weights PATH``);
2. the file's own environment variable (``WeightsFile.env``, e.g. ``GAN_EVAL_INCEPTION_WEIGHTS``,
   ``GAN_EVAL_DINOV2_VIT_S14_WEIGHTS``);
3. ``$GAN_EVAL_WEIGHTS_DIR/<file name>``;
4. gan-eval's weights cache, ``$XDG_CACHE_HOME/gan-eval/weights/<file name>`` (default
   ``~/.cache/gan-eval/weights``), where ``fetch`` puts files when ``$GAN_EVAL_WEIGHTS_DIR`` is
   unset;
5. where the upstream loaders cache the same bytes: torch hub's ``<hub dir>/checkpoints/`` (the
   file name torch-fidelity / ``torch.hub`` give it) and, for CLIP, ``~/.cache/clip/`` (OpenAI's
   ``clip`` package), so a machine that ever ran those online already has it.

An explicit path or environment variable that names a missing file is an
:class:`~gan_eval.errors.InputError` (exit 2): the user asked for that file.

Hashes: OpenAI's CLIP URLs embed the file's full sha256 (``clip.py`` checks it); torch-fidelity's
Inception file name carries the first 8 hex digits of its sha256 (torch hub's naming convention;
torch-fidelity does not check it); Meta publishes no hash for the DINOv2 files. Where no full
sha256 is published, ``fetch`` records the sha256 of the bytes it downloaded next to the file
(``<file>.sha256``, trust on first use) and ``verify`` checks later reads against that record; a
user can pin a hash they trust with ``fetch --sha256``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import atomic_write_text

#: Environment variable naming a folder searched for every weights file (and fetched into).
WEIGHTS_DIR_ENV = "GAN_EVAL_WEIGHTS_DIR"

#: Suffix of the partial download beside the target (resumed by the next ``fetch``).
PART_SUFFIX = ".part"

#: Suffix of the file recording the sha256 measured at fetch time (trust on first use).
SHA_SUFFIX = ".sha256"

_CLIP_BASE = "https://openaipublic.azureedge.net/clip/models"
_DINOV2_BASE = "https://dl.fbaipublicfiles.com/dinov2"
_CLIP_LICENSE = (
    "MIT (openai/CLIP repository licence); OpenAI's model card limits intended use to research"
)
_DINOV2_LICENSE = "Apache-2.0 (facebookresearch/dinov2, weights relicensed 2023-08)"


@dataclass(frozen=True)
class WeightsFile:
    """One known weights file.

    Attributes:
        name: gan-eval's name (``gan-eval weights fetch NAME``; the extractor's name).
        filename: the official file name (also the name in gan-eval's cache).
        url: the official download URL.
        sha256: the full hex sha256 where the publisher states it, else None.
        sha256_prefix: a published leading part of the sha256 (torch hub file-name convention),
            else None.
        hash_source: where the hash comes from, or that none is published.
        approx_size: human-readable size (no exact byte count is published for any of them).
        license: licence note.
        env: environment variable naming this one file.
        kind: file format: ``"state_dict"`` (torch.save of a dict of tensors, read with
            ``weights_only=True``) or ``"torchscript"`` (a TorchScript archive).
        upstream_names: file names the upstream loaders give the same bytes in their caches
            (searched in torch hub's ``checkpoints`` folder and ``~/.cache/clip``).
        description: what network it is.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    sha256_prefix: str | None
    hash_source: str
    approx_size: str
    license: str
    env: str
    kind: str
    upstream_names: tuple[str, ...]
    description: str

    @property
    def published_hash(self) -> str:
        """The published sha256 (or ``prefix…``), or ``"not published"``."""
        if self.sha256:
            return self.sha256
        if self.sha256_prefix:
            return f"{self.sha256_prefix}… (prefix only)"
        return "not published"


def _env_name(name: str) -> str:
    return "GAN_EVAL_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_WEIGHTS"


def _clip(name: str, stem: str, sha: str, size: str, desc: str) -> WeightsFile:
    tf_name = {"clip-vit-b32": "clip-vit-b-32", "clip-vit-l14": "clip-vit-l-14",
               "clip-vit-l14-336": "clip-vit-l-14-336px"}[name]
    return WeightsFile(
        name=name, filename=f"{stem}.pt", url=f"{_CLIP_BASE}/{sha}/{stem}.pt", sha256=sha,
        sha256_prefix=None,
        hash_source="full sha256 in OpenAI's URL (openai/CLIP clip.py checks it; the same "
                    "values are in torch-fidelity's feature_extractor_clip.MODEL_METADATA)",
        approx_size=size, license=_CLIP_LICENSE, env=_env_name(name), kind="torchscript",
        upstream_names=(f"{tf_name}-{sha}.pt", f"{stem}.pt"), description=desc,
    )


def _dinov2(name: str, arch: str, size: str, desc: str) -> WeightsFile:
    filename = f"dinov2_{arch}_pretrain.pth"
    return WeightsFile(
        name=name, filename=filename, url=f"{_DINOV2_BASE}/dinov2_{arch}/{filename}", sha256=None,
        sha256_prefix=None,
        hash_source="not published by Meta (the dinov2 hub config loads it unchecked); fetch "
                    "records the sha256 it downloaded",
        approx_size=size, license=_DINOV2_LICENSE, env=_env_name(name), kind="state_dict",
        upstream_names=(filename,), description=desc,
    )


INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"

#: Every known weights file, by name.
WEIGHTS: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            name="inception", filename=INCEPTION_FILENAME,
            url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                + INCEPTION_FILENAME,
            sha256=None, sha256_prefix="6726825d",
            hash_source="first 8 hex digits of the sha256 in the file name (torch hub "
                        "convention; torch-fidelity does not check it); no full hash published",
            approx_size="~91 MiB",
            license="Apache-2.0 (TensorFlow inception-2015-12-05 graph, converted by "
                    "torch-fidelity)",
            env="GAN_EVAL_INCEPTION_WEIGHTS", kind="state_dict",
            upstream_names=(INCEPTION_FILENAME,),
            description="torch-fidelity's InceptionV3 (standard FID/IS/KID)",
        ),
        _dinov2("dinov2-vit-s14", "vits14", "~84 MiB", "DINOv2 ViT-S/14 (21 M parameters)"),
        _dinov2("dinov2-vit-b14", "vitb14", "~330 MiB", "DINOv2 ViT-B/14 (86 M parameters)"),
        _dinov2("dinov2-vit-l14", "vitl14", "~1.1 GiB",
                "DINOv2 ViT-L/14 (304 M parameters; FD_DINOv2's network)"),
        _dinov2("dinov2-vit-g14", "vitg14", "~4.2 GiB", "DINOv2 ViT-g/14 (1.1 B parameters)"),
        _clip("clip-vit-b32", "ViT-B-32",
              "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "~338 MiB",
              "OpenAI CLIP ViT-B/32 (TorchScript archive, fp16)"),
        _clip("clip-vit-l14", "ViT-L-14",
              "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "~890 MiB",
              "OpenAI CLIP ViT-L/14 (TorchScript archive, fp16)"),
        _clip("clip-vit-l14-336", "ViT-L-14-336px",
              "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "~891 MiB",
              "OpenAI CLIP ViT-L/14@336px (TorchScript archive, fp16; CMMD's network)"),
    )
}


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
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gan-eval" / "weights"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gan-eval" / "weights"


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``; honours
    ``torch.hub.set_dir`` when torch is loaded). Computing it touches nothing on disk and
    imports nothing: without torch loaded, the path is found as ``torch.hub.get_dir`` finds it
    (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``), so that a
    missing file is reported before a command imports torch."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir()) / "checkpoints"
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints"


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
        raise InputError(f"{entry.name} weights file given by {what} does not exist: {path}")
    if not path.is_file():
        raise InputError(f"{entry.name} weights path given by {what} is not a file: {path}")
    return path


def locate(
    name: str,
    explicit: str | os.PathLike[str] | None = None,
    *,
    option: str = "--weights",
) -> Located:
    """Find the weights file ``name`` without reading or downloading anything.

    Args:
        name: a key of :data:`WEIGHTS`.
        explicit: a path the user gave (``None`` or ``""``: not given).
        option: the CLI option that carried ``explicit`` (for error messages).

    Returns:
        :class:`Located`; ``path`` is None when no candidate exists (``tried`` lists them).

    Raises:
        InputError: ``explicit`` or the file's environment variable names a missing path or a
            non-file (the user asked for that file).
    """
    entry = known(name)
    if explicit is not None and str(explicit) != "":
        path = _checked(Path(explicit).expanduser(), option, entry)
        return Located(entry, path, option, (str(path),))
    if from_env := os.environ.get(entry.env, "").strip():
        path = _checked(Path(from_env).expanduser(), f"${entry.env}", entry)
        return Located(entry, path, f"${entry.env}", (str(path),))
    tried: list[str] = []
    for path, label in candidates(entry):
        tried.append(str(path))
        if path.is_file():
            return Located(entry, path, label, tuple(tried))
    return Located(entry, None, "not found", tuple(tried))


def missing_message(name: str, *, option: str | None = "--weights") -> str:
    """The text of the :class:`MissingAssetError` for a weights file that is not found."""
    entry = known(name)
    via = f", pass {option} PATH" if option else ""
    return (
        f"{entry.name} weights not found: {entry.filename} ({entry.description}, "
        f"{entry.approx_size}). Official URL: {entry.url}. gan-eval never downloads it "
        f"implicitly: run `gan-eval weights fetch {entry.name}` (puts it in {cache_dir()}), or "
        f"download it yourself and put it at {cache_dir() / entry.filename} or set "
        f"{entry.env}=/path/to/{entry.filename}{via}."
    )


def resolve(
    name: str, explicit: str | os.PathLike[str] | None = None, *, option: str = "--weights"
) -> Path:
    """:func:`locate` that raises :class:`MissingAssetError` (exit 3) when nothing is found."""
    located = locate(name, explicit, option=option)
    if located.path is None:
        raise MissingAssetError(missing_message(name, option=option))
    return located.path


# --------------------------------------------------------------------------------------------
# hashes
# --------------------------------------------------------------------------------------------


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def recorded_sha256(path: Path) -> str | None:
    """The sha256 recorded beside ``path`` at fetch time (``<path>.sha256``), if any."""
    record = path.with_name(path.name + SHA_SUFFIX)
    try:
        text = record.read_text(encoding="utf-8").split()
    except OSError:
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


# --------------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------------


class _Cut(Exception):
    """The connection ended before the announced length (resumable)."""


def _progress(total: int | None, initial: int, desc: str, enabled: bool) -> Any:
    """A tqdm byte counter on stderr (disabled: a no-op bar)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": "gan-eval-weights-fetch"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    response = urllib.request.urlopen(request, timeout=timeout)  # explicit opt-in (fetch)
    return response


def _download_once(url: str, part: Path, timeout: float, progress: bool, desc: str,
                   chunk: int) -> None:
    """Append the rest of ``url`` to ``part`` (resuming at its size); _Cut if cut short."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing past our offset: the part file is complete
            return
        raise
    with contextlib.closing(response):
        status = response.status
        length = response.headers.get("Content-Length")
        if offset and status != 206:  # server ignored Range: start again from byte 0
            offset = 0
        mode = "ab" if offset else "wb"
        total = int(length) + offset if length is not None else None
        received = 0
        with open(part, mode) as out, _progress(total, offset, desc, progress) as bar:
            while True:
                try:
                    block = response.read(chunk)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                    raise _Cut(str(exc) or type(exc).__name__) from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and received < int(length):
            raise _Cut(f"connection closed after {offset + received} of {total} bytes")


def fetch(
    name: str,
    *,
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

    The bytes go to ``<dest>/<file name>.part``; a part file left by an earlier, interrupted
    fetch is resumed with an HTTP ``Range`` request (a server that ignores Range restarts from
    byte 0), and a connection cut mid-file is resumed up to ``retries`` times. The complete file
    is hashed; it must match ``sha256`` (a user pin), else the published sha256 (CLIP), else the
    published prefix (Inception); nothing is published for DINOv2, whose measured hash is
    recorded. Only then is it renamed onto ``<dest>/<file name>`` (``os.replace``, same folder:
    atomic) and its sha256 written to ``<file name>.sha256``. A file already at the target with
    a matching hash is kept (no download).

    Args:
        name: a key of :data:`WEIGHTS`.
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
        InputError: unknown ``name`` or a malformed ``sha256``.
        MissingAssetError: the download failed (offline, HTTP error, cut more than ``retries``
            times: the part file is kept for the next fetch to resume) or the hash does not match
            (the part file is deleted; nothing is placed). Both exit 3 with what to do.
    """
    entry = known(name)
    expected, expected_from = expected_hash(entry, sha256)
    source = url or entry.url
    dest = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    target = dest / entry.filename
    part = dest / (entry.filename + PART_SUFFIX)
    note = log if log is not None else sys.stderr

    if target.is_file():
        have = sha256_of(target)
        if hash_matches(have, expected) and (
            expected is not None or recorded_sha256(target) in (None, have)
        ):
            print(f"{entry.name}: already at {target} (sha256 {have})", file=note)
            return target
        print(f"{entry.name}: {target} does not match ({expected_from}); fetching again",
              file=note)

    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MissingAssetError(f"cannot create the weights folder {dest}: {exc}") from None

    attempts = 0
    while True:
        try:
            _download_once(source, part, timeout, progress, entry.filename, chunk)
            break
        except _Cut as cut:
            attempts += 1
            if attempts > retries:
                size = part.stat().st_size if part.exists() else 0
                raise MissingAssetError(
                    f"downloading {entry.filename} from {source} was cut off ({cut}) after "
                    f"{retries} resumption(s); the {size} bytes received are kept in {part}: run "
                    f"`gan-eval weights fetch {entry.name}` again to resume."
                ) from None
            print(f"{entry.name}: connection cut ({cut}); resuming", file=note)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                      else getattr(exc, "reason", None) or exc)
            raise MissingAssetError(
                f"cannot download {entry.filename} from {source}: {reason}. If this machine is "
                f"offline, download it elsewhere from {entry.url}, check its sha256 "
                f"({entry.published_hash}), and put it at {target} or set "
                f"{entry.env}=/path/to/{entry.filename}."
            ) from None

    actual = sha256_of(part)
    if not hash_matches(actual, expected):
        part.unlink(missing_ok=True)
        raise MissingAssetError(
            f"{entry.filename} downloaded from {source} has sha256 {actual}, expected "
            f"{expected} ({expected_from}); the download was deleted and nothing was placed. "
            f"Check the URL (a proxy or captive portal may have answered), then run "
            f"`gan-eval weights fetch {entry.name}` again."
        )
    os.replace(part, target)

    atomic_write_text(target.with_name(target.name + SHA_SUFFIX),
                      f"{actual}  {entry.filename}\n")
    if expected is None:
        print(f"{entry.name}: no sha256 is published for this file; recorded the downloaded "
              f"bytes' sha256 {actual} in {target.name}{SHA_SUFFIX}", file=note)
    print(f"{entry.name}: placed {target} (sha256 {actual})", file=note)
    return target


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """One row of :func:`verify`.

    ``status``: ``"ok"`` (matches the published or pinned hash), ``"recorded"`` (no hash is
    published; matches the sha256 recorded at fetch), ``"unchecked"`` (no hash published or
    recorded), ``"mismatch"``, or ``"missing"``.
    """

    entry: WeightsFile
    path: Path | None
    sha256: str | None
    expected: str | None
    status: str


def verify_one(name: str, explicit: str | os.PathLike[str] | None = None,
               sha256: str | None = None) -> Verified:
    """Locate ``name`` and hash it against the published / pinned / recorded sha256."""
    located = locate(name, explicit)
    entry = located.entry
    if located.path is None:
        return Verified(entry, None, None, expected_hash(entry, sha256)[0], "missing")
    actual = sha256_of(located.path)
    expected, _ = expected_hash(entry, sha256)
    if expected is not None:
        status = "ok" if hash_matches(actual, expected) else "mismatch"
        return Verified(entry, located.path, actual, expected, status)
    record = recorded_sha256(located.path)
    if record is None:
        return Verified(entry, located.path, actual, None, "unchecked")
    return Verified(entry, located.path, actual, record,
                    "recorded" if actual == record else "mismatch")
