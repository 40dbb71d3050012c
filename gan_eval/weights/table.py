"""The table of weights files (a live view of the extractors' declarations) and where each file
is looked for; the messages that say how to provide a missing one."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gan_eval import catalogue
from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError, MissingAssetError

#: Environment variable naming a folder searched for every weights file (and fetched into).
WEIGHTS_DIR_ENV = "GAN_EVAL_WEIGHTS_DIR"


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

def known(name: str) -> WeightsFile:
    """The table entry ``name``; InputError listing the known names otherwise."""
    try:
        return WEIGHTS[name]
    except KeyError:
        pass
    if name in catalogue.EXTRACTORS:
        raise InputError(f"extractor {name!r} declares no weights file to fetch or verify: its "
                         f"weights come with an installed package; files gan-eval manages: "
                         f"{', '.join(WEIGHTS)}")
    raise InputError(f"unknown weights name {name!r}; known: {', '.join(WEIGHTS)}")



# --------------------------------------------------------------------------------------------
# where files are looked for
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where ``fetch`` puts files: ``$GAN_EVAL_WEIGHTS_DIR``, else
    ``$XDG_CACHE_HOME/gan-eval/weights``, else ``~/.cache/gan-eval/weights`` (not created)."""
    if env := os.environ.get(WEIGHTS_DIR_ENV, "").strip():
        return Path(env).expanduser()
    return default_cache_dir()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gan-eval/weights``, else ``~/.cache/gan-eval/weights`` (not created)."""
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
    out.append((default_cache_dir() / entry.filename, "gan-eval cache"))
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


