"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from gan_eval.gan.training import TrainConfig, train


@contextmanager
def single_thread() -> Iterator[None]:
    """Tiny models run as fast on one thread; a second one only spins when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test (modules of tiny models use it: ``pytestmark``)."""
    with single_thread():
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of a tiny DCGAN on the built-in faces (read-only: copy it to damage it)."""
    run = tmp_path_factory.mktemp("gan") / "run"
    with single_thread():
        train(TrainConfig(data="builtin:lfw-subset", out=run, steps=2, batch_size=16, width=8,
                          nz=16, quiet=True, device="cpu"))
    return run


@pytest.fixture(scope="session")
def tiny_restoration_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of a tiny restoration GAN on the built-in faces (read-only)."""
    run = tmp_path_factory.mktemp("restoration") / "run"
    with single_thread():
        train(TrainConfig(data="builtin:lfw-subset", out=run, task="restoration", steps=2,
                          batch_size=16, width=8, quiet=True, device="cpu"))
    return run
