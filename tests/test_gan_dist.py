"""Distributed helpers and DDP training on CPU (gloo, 2 processes on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from torchrun_helpers import free_port

from gan_eval import distributed as dist
from gan_eval.errors import InputError
from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.sources import open_source


@given(st.integers(0, 1000), st.integers(1, 9))
def test_shards_partition_the_range(n: int, world: int) -> None:
    shards = [dist.shard_range(n, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_per_rank_batch() -> None:
    assert dist.per_rank_batch(64, 4) == 16
    with pytest.raises(InputError, match="--batch-size 10 is not divisible by the 3"):
        dist.per_rank_batch(10, 3)


def test_single_process_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist.init_from_env("cpu") is None
    t = torch.arange(5.0)
    assert dist.all_gather_cat(t, None) is t and dist.all_reduce_mean(t, None) is t


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    env = dist.init_from_env("cpu")
    assert env is not None and env.backend == "gloo" and env.world_size == 2
    try:
        data = torch.arange(11.0).view(-1, 1).repeat(1, 2)  # 11 rows: shards of 6 and 5
        mine = dist.shard_range(11, env.rank, 2)
        shard = data[mine.start : mine.stop]
        gathered = dist.all_gather_cat(shard, env)
        mean = dist.all_reduce_mean(torch.tensor([float(env.rank)]), env)
        if env.is_main:
            Path(out).write_text(json.dumps({"gathered": gathered.tolist(), "mean": mean.item()}))
    finally:
        dist.shutdown(env)


def test_gather_rebuilds_the_single_process_result(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    mp.spawn(_worker, args=(free_port(), str(out)), nprocs=2, join=True)
    result = json.loads(out.read_text())
    assert result["gathered"] == torch.arange(11.0).view(-1, 1).repeat(1, 2).tolist()
    assert result["mean"] == 0.5
    assert not torch_dist.is_initialized()


@pytest.mark.parametrize("task", ["generation", "restoration"])
def test_ddp_training_with_torchrun(tmp_path: Path, task: str) -> None:
    """`torchrun --nproc-per-node 2 -m gan_eval train …` on CPU: gloo DDP, rank 0 writes."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "gan_eval", "train", "--data", "builtin:lfw-subset", "--out", str(run),
        "--steps", "3", "--batch-size", "16", "--width", "8", "--device", "cpu", "--quiet",
        "--task", task,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    checkpoint = load_checkpoint(run, groups=("g", "d", "g_ema", "opt_g", "opt_d"), task=None)
    assert checkpoint.step == 3 and checkpoint.task == task
    assert (checkpoint.meta["world_size"], checkpoint.meta["per_rank_batch"]) == (2, 8)
    assert (run / "samples" / "step-000003.png").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # written once (by rank 0)
    if task == "generation":
        images = open_source(str(run), n=4, device="cpu").load()
        assert images.shape == (4, 3, 32, 32)
    else:  # each rank degraded its own half of the batch: the L1 logged is the mean of both
        assert all(r["l1"] > 0 for r in rows)
