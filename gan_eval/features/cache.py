"""On-disk cache of extracted features, keyed by everything that changes them.

Key = sha256 of (source content hash, resolution and resize filter, extractor name, extractor
weights sha256, gan-eval version, sample count). Entries are safetensors files written atomically;
a corrupt entry is ignored and rewritten. ``GAN_EVAL_CACHE_DIR`` moves the cache;
``FeatureCache(None)`` (``--no-cache``) turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gan_eval.fileio import atomic_path


def default_cache_dir() -> Path:
    """``$GAN_EVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/gan-eval``, else ``~/.cache/gan-eval``."""
    if env := os.environ.get("GAN_EVAL_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "gan-eval"


def cache_key(**parts: str | int | tuple[int, int]) -> str:
    """A stable hex key over named parts (order-independent)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class FeatureCache:
    """Features stored under ``root/features/<key>.safetensors``; ``root=None`` disables it."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @classmethod
    def default(cls) -> FeatureCache:
        return cls(default_cache_dir())

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / "features" / f"{key}.safetensors"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        """The cached tensors for ``key``, or None (missing, disabled or unreadable)."""
        if self.root is None or not self._path(key).is_file():
            return None
        try:
            return load_file(self._path(key))
        except (SafetensorError, OSError, ValueError):
            return None

    def store(self, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
        """Write ``tensors`` for ``key`` atomically (no-op when disabled)."""
        if self.root is None:
            return
        with atomic_path(self._path(key)) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
