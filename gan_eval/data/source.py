"""``ImageSource``: the one way every command reads images.

A source yields uint8 B×3×H×W batches on the CPU in a fixed, deterministic order, knows its length,
its resolution, its optional identity labels and a content hash of what it reads.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval.data.convert import resize_uint8


@dataclass(frozen=True)
class Problem:
    """Something found while opening a source. ``fatal`` problems make the source unusable."""

    path: str
    message: str
    fatal: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class SourceInfo:
    """What ``gan-eval inspect`` reports about a source."""

    data: str
    kind: str
    count: int
    resolutions: dict[tuple[int, int], int]
    channels: dict[int, int]
    identities: int | None
    content_hash: str
    problems: list[Problem] = field(default_factory=list)


class ImageSource(ABC):
    """Images as uint8 B×3×H×W batches.

    Subclasses set ``data`` (the DATA string), ``kind``, ``resolution`` (H, W after any resize),
    ``identities`` (names, or None) and ``labels`` (int64 index into ``identities`` per image,
    or None), and implement ``__len__``, ``_read`` and ``_hash_content``.
    """

    data: str
    kind: str
    resolution: tuple[int, int]
    identities: tuple[str, ...] | None = None
    labels: np.ndarray | None = None
    problems: list[Problem]
    cacheable: bool = True
    """False when the content hash does not pin the images (a generator accepted as
    non-deterministic): features of such a source are never cached."""

    def __init__(self) -> None:
        self.problems = []
        self._hash: str | None = None
        self._target_size: tuple[int, int] | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        """Images at ``indices`` as uint8 B×3×h×w at the stored resolution."""

    @abstractmethod
    def _hash_content(self, digest: hashlib._Hash) -> None:
        """Feed everything that determines the images (and labels) into ``digest``."""

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """Images at ``indices`` (uint8 B×3×H×W at ``resolution``)."""
        batch = self._read(indices)
        if self._target_size is not None:
            batch = resize_uint8(batch, self._target_size)
        return batch

    def batches(self, batch_size: int = 256) -> Iterator[torch.Tensor]:
        """All images in order, ``batch_size`` at a time (the last batch may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.read(range(start, min(start + batch_size, len(self))))

    def load(self) -> torch.Tensor:
        """Every image in one uint8 N×3×H×W tensor."""
        return torch.cat(list(self.batches()), dim=0)

    def content_hash(self) -> str:
        """sha256 (hex) of the source content and labels; the resize setting is not included."""
        if self._hash is None:
            digest = hashlib.sha256()
            digest.update(self.kind.encode())
            self._hash_content(digest)
            if self.labels is not None and self.identities is not None:
                digest.update("\0".join(self.identities).encode())
                digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            self._hash = digest.hexdigest()
        return self._hash

    def hashed_by_reading(self) -> bool:
        """True when :meth:`content_hash` would read every image now (an external generator,
        whose hash is of its pixels, before they were all read in order): a caller that reads
        every image anyway asks for the hash after reading."""
        return False

    def origin_hash(self) -> str:
        """A hash of what the images come from, known without reading them: the content hash,
        except for sources :meth:`hashed_by_reading` (then their files, weights and settings;
        something looked up under it must be checked against :meth:`content_hash`)."""
        return self.content_hash()

    def record(self) -> dict[str, Any]:
        """The source record: what a results file stores so that a report can reopen this
        source (:func:`gan_eval.sources.reopen`) and check it is unchanged.

        ``data`` is the DATA string (made absolute when it is a path), ``resize`` the square size
        images are resized to (None: as stored), ``content_hash`` what the images must hash to.
        """
        path = Path(self.data)
        return {
            "data": str(path.resolve()) if path.exists() else self.data,
            "kind": self.kind,
            "content_hash": self.content_hash(),
            "n": len(self),
            "resolution": list(self.resolution),
            "resize": None if self._target_size is None else self._target_size[0],
        }

    def with_resolution(self, size: int | None) -> ImageSource:
        """Resize every image to ``size``×``size`` from now on (``None`` keeps the stored size)."""
        if size is not None:
            self._target_size = (size, size)
            self.resolution = (size, size)
        return self

    def head(self, n: int) -> ImageSource:
        """A view of the first ``n`` images (all of them when there are fewer)."""
        return _Head(self, min(n, len(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data!r}, n={len(self)}, resolution={self.resolution})"


class _Head(ImageSource):
    """The first ``n`` images of ``parent`` (:meth:`ImageSource.head`)."""

    def __init__(self, parent: ImageSource, n: int) -> None:
        super().__init__()
        self.parent = parent
        self.n = n
        self.data = parent.data
        self.kind = parent.kind
        self.resolution = parent.resolution
        self.identities = parent.identities
        self.labels = None if parent.labels is None else parent.labels[:n]
        self.problems = parent.problems
        self.cacheable = parent.cacheable

    def __len__(self) -> int:
        return self.n

    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        if any(not 0 <= i < self.n for i in indices):
            raise IndexError(f"image index outside 0..{self.n - 1}")
        return self.parent.read(indices)

    def _hash_content(self, digest: hashlib._Hash) -> None:
        digest.update(f"{self.parent.content_hash()}/head={self.n}".encode())

    def hashed_by_reading(self) -> bool:
        return self.parent.hashed_by_reading()  # (its hash is the whole parent's)

    def origin_hash(self) -> str:
        if not self.hashed_by_reading():
            return self.content_hash()
        return hashlib.sha256(f"{self.parent.origin_hash()}/head={self.n}".encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """The parent's record (``n`` is how many images to open it with) plus ``head``, and
        this view's own resize when it has one."""
        record = {**self.parent.record(), "content_hash": self.content_hash(), "head": self.n}
        if self._target_size is not None:
            record.update(resize=self._target_size[0], resolution=list(self.resolution))
        return record


class ArraySource(ImageSource):
    """Images held in memory as one uint8 N×3×H×W tensor."""

    def __init__(
        self,
        images: torch.Tensor,
        *,
        data: str,
        kind: str = "array",
        source_channels: int = 3,
        identities: tuple[str, ...] | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.images = images
        self.data = data
        self.kind = kind
        self.source_channels = source_channels
        self.resolution = (int(images.shape[2]), int(images.shape[3]))
        self.identities = identities
        self.labels = labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        if isinstance(indices, range) and indices.step == 1:
            return self.images[indices.start : indices.stop]
        return self.images[torch.as_tensor(list(indices), dtype=torch.long)]

    def _hash_content(self, digest: hashlib._Hash) -> None:
        digest.update(str(tuple(self.images.shape)).encode())
        digest.update(self.images.contiguous().numpy().tobytes())
