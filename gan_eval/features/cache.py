"""On-disk cache of extracted features, keyed by everything that changes them.

Key = sha256 of (source content hash, resolution and resize filter, extractor name, extractor
weights sha256, gan-eval version, sample count). The content hash is of what the images are: the
files of image data, a gan-eval checkpoint's weights and sampler, and an external generator's
generated pixels themselves (so a weights file its factory reads, or an ONNX model's external
data, is part of the key by what it changes); a generator accepted as non-deterministic is never
cached (:attr:`gan_eval.data.ImageSource.cacheable`). Entries are safetensors files written
atomically.
``GAN_EVAL_CACHE_DIR`` moves the cache; ``FeatureCache(None)`` (``--no-cache``) turns it off.

Integrity: a cached number must never be silently wrong. Each entry records, in its safetensors
metadata, the key it was stored under, every tensor's name, dtype and shape, and a sha256 over
those and the tensor bytes. A read verifies all of it, plus what the caller expects (row count,
tensor names); an entry that fails any check is removed and reported as a reason
(:meth:`FeatureCache.lookup`), and the caller recomputes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from gan_eval.errors import InputError
from gan_eval.fileio import atomic_path

ENV_VAR = "GAN_EVAL_CACHE_DIR"
SCHEMA = "gan-eval/feature-cache/v2"
_RESERVED = ("cache.schema", "cache.key", "cache.tensors", "cache.sha256")


class CacheEntryWarning(UserWarning):
    """A feature-cache entry failed its integrity check; it was removed and is recomputed."""


def default_cache_dir() -> Path:
    """``$GAN_EVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/gan-eval``, else ``~/.cache/gan-eval``."""
    if env := os.environ.get(ENV_VAR):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gan-eval"


def cache_key(**parts: str | int | tuple[int, int]) -> str:
    """A stable hex key over named parts (order-independent)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def payload_digest(tensors: dict[str, torch.Tensor]) -> str:
    """Hex sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _layout(tensors: dict[str, torch.Tensor]) -> dict[str, list[object]]:
    return {name: [str(t.dtype), list(t.shape)] for name, t in sorted(tensors.items())}


@dataclass(frozen=True)
class CacheLookup:
    """What :meth:`FeatureCache.lookup` found.

    ``tensors``: the verified tensors (CPU), or None. ``reason``: None on a hit, a miss or a
    disabled cache; otherwise why an existing entry was rejected (and removed), to be shown to
    the user. ``meta``: the metadata the entry was stored with (on a hit).
    """

    tensors: dict[str, torch.Tensor] | None
    reason: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


class FeatureCache:
    """Features stored under ``root/features/<key>.safetensors``; ``root=None`` disables it.

    ``rejected`` collects the reasons of every entry :meth:`load` rejected, in order.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.rejected: list[str] = []

    @classmethod
    def default(cls) -> FeatureCache:
        return cls(default_cache_dir())

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / "features" / f"{key}.safetensors"

    def _unusable(self, exc: Exception | str) -> InputError:
        return InputError(
            f"{ENV_VAR} / cache folder {self.root}: cannot be used for the feature cache "
            f"({exc}); set {ENV_VAR} to a writable folder, or pass --no-cache"
        )

    def _check_root(self) -> None:
        assert self.root is not None
        for folder in (self.root, self.root / "features"):
            if folder.exists() and not folder.is_dir():
                raise self._unusable(f"{folder} is a file, not a folder")

    def lookup(
        self,
        key: str,
        *,
        expected_rows: int | None = None,
        expected_names: Collection[str] | None = None,
    ) -> CacheLookup:
        """The verified tensors for ``key``, or None with the reason an entry was rejected.

        Checks: the file parses; it was written by this cache (schema) under ``key``; its tensor
        names, dtypes and shapes are the ones recorded; the sha256 of names, shapes and bytes
        matches; every name in ``expected_names`` is present; every tensor has
        ``expected_rows`` rows (dim 0). A rejected entry is deleted. Raises
        :class:`InputError` naming ``GAN_EVAL_CACHE_DIR`` when the cache folder is a file.
        """
        if self.root is None:
            return CacheLookup(None)
        self._check_root()
        path = self._path(key)
        if not path.is_file():
            return CacheLookup(None)
        problem = None
        tensors: dict[str, torch.Tensor] = {}
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except PermissionError as exc:
            raise self._unusable(exc) from exc
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            problem = f"unreadable ({exc})"
        if problem is None:
            problem = self._verify(key, meta, tensors, expected_rows, expected_names)
        if problem is None:
            return CacheLookup(tensors, meta=dict(meta))
        with contextlib.suppress(OSError):
            path.unlink()
        return CacheLookup(
            None, f"feature cache entry {path} failed its integrity check ({problem}); "
                  "it was removed and the features are recomputed"
        )

    @staticmethod
    def _verify(key: str, meta: dict[str, str], tensors: dict[str, torch.Tensor],
                expected_rows: int | None, expected_names: Collection[str] | None) -> str | None:
        """None when the entry is sound, else what is wrong with it."""
        if meta.get("cache.schema") != SCHEMA:
            return f"schema {meta.get('cache.schema')!r}, expected {SCHEMA!r}"
        if meta.get("cache.key") != key:
            return "stored under another key"
        try:
            recorded = json.loads(meta.get("cache.tensors", ""))
        except json.JSONDecodeError:
            return "tensor list in the metadata is not JSON"
        if recorded != json.loads(json.dumps(_layout(tensors))):
            return "tensor names, dtypes or shapes differ from the ones recorded"
        if payload_digest(tensors) != meta.get("cache.sha256"):
            return "sha256 of the tensors differs: the bytes were changed after writing"
        if expected_names is not None and (missing := sorted(set(expected_names) - set(tensors))):
            return f"lacks tensor(s) {', '.join(missing)}"
        if expected_rows is not None:
            for name, tensor in sorted(tensors.items()):
                rows = int(tensor.shape[0]) if tensor.ndim else None
                if rows != expected_rows:
                    return f"tensor {name} has {rows} rows, expected {expected_rows}"
        return None

    def load(
        self,
        key: str,
        *,
        expected_rows: int | None = None,
        expected_names: Collection[str] | None = None,
    ) -> dict[str, torch.Tensor] | None:
        """:meth:`lookup`'s tensors; a rejected entry also warns (:class:`CacheEntryWarning`)
        and its reason is appended to :attr:`rejected`."""
        found = self.lookup(key, expected_rows=expected_rows, expected_names=expected_names)
        if found.reason is not None:
            self.rejected.append(found.reason)
            warnings.warn(found.reason, CacheEntryWarning, stacklevel=2)
        return found.tensors

    def store(self, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        """Write ``tensors`` for ``key`` atomically with their integrity record (no-op when
        disabled). Raises :class:`InputError` naming ``GAN_EVAL_CACHE_DIR`` when the cache
        folder cannot be written."""
        if self.root is None:
            return
        self._check_root()
        cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        # safetensors metadata must be valid UTF-8: a source path with non-UTF-8 bytes (kept by
        # Python as surrogate escapes) is stored with \x escapes instead of failing the write
        record = {_printable(k): _printable(v) for k, v in meta.items() if k not in _RESERVED}
        record.update({
            "cache.schema": SCHEMA,
            "cache.key": key,
            "cache.tensors": json.dumps(_layout(cpu)),
            "cache.sha256": payload_digest(cpu),
        })
        try:
            with atomic_path(self._path(key)) as tmp:
                save_file(cpu, str(tmp), metadata=record)
        except (OSError, InputError) as exc:  # atomic_path reports unwritable places as input
            raise self._unusable(exc) from exc
