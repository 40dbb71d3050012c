"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_eval.gan.train import TrainConfig, train


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of a tiny DCGAN on the built-in faces (read-only: copy it to damage it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second thread only spins on shared CPUs
    try:
        run = tmp_path_factory.mktemp("gan") / "run"
        train(TrainConfig(data="builtin:lfw-subset", out=run, steps=2, batch_size=16, width=8,
                          nz=16, quiet=True, device="cpu"))
    finally:
        torch.set_num_threads(threads)
    return run
