"""Where a checkpoint's files are, without reading them (torch-free).

A checkpoint folder holds ``checkpoint.json`` (the commit record) and one
``state-<step>.safetensors``; a run folder holds it as ``checkpoint/``. These names are all a
command needs to tell a checkpoint from image data before it imports torch
(:mod:`gan_eval.preflight`); :mod:`gan_eval.gan.checkpoint` reads and writes them.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_DIR = "checkpoint"
JSON_NAME = "checkpoint.json"


def state_file_name(step: int) -> str:
    """Name of the state file written at ``step``."""
    return f"state-{step:08d}.safetensors"


def checkpoint_json(path: Path) -> Path | None:
    """checkpoint.json for a checkpoint folder, a run folder, the JSON itself or a state file
    (None when ``path`` is none of these)."""
    if path.is_dir():
        for folder in (path, path / CHECKPOINT_DIR):
            if (folder / JSON_NAME).is_file():
                return folder / JSON_NAME
        return None
    if path.name == JSON_NAME or path.suffix == ".safetensors":
        return path.parent / JSON_NAME
    return None


def is_checkpoint(path: Path) -> bool:
    """True when ``path`` names a gan-eval checkpoint: its folder, its run folder, or its files.

    A ``.safetensors`` file or a ``checkpoint.json`` counts (so that
    :func:`gan_eval.gan.checkpoint.load_checkpoint` can explain what is wrong with it), even
    without a valid checkpoint beside it.
    """
    if path.is_dir():
        return checkpoint_json(path) is not None
    return path.suffix == ".safetensors" or path.name == JSON_NAME
