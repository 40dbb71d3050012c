"""``gan-eval evaluate`` under torchrun gives the single process's numbers (CPU, gloo).

Feature extraction shards the images in whole batches (``gan_eval.distributed.batch_shard``), so
every batch a rank forms is one the single process forms: with the same batch size and thread count
(``OMP_NUM_THREADS=1`` for both runs here; torchrun's default per worker) the gathered features
are bitwise those of one process, and the metrics computed from them (seeded bootstrap) are
therefore *exactly* equal — every value and every interval bound, not just within a tolerance.
Balanced per-image shards would not give that: oneDNN's blocking depends on the batch shape and
moves Inception features by ~3e-6 relative on this CPU.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from torchrun_helpers import free_port, run_clean

from gan_eval import distributed as dist
from gan_eval.data.source import ArraySource
from gan_eval.features.cache import FeatureCache
from gan_eval.features.extraction import extract
from gan_eval.features.registry import FeatureExtractor
from gan_eval.sources import open_source

# ---------------------------------------------------------------------------------------------
# the sharding helper
# ---------------------------------------------------------------------------------------------


@given(st.integers(0, 500), st.integers(1, 70), st.integers(1, 9))
def test_batch_shards_partition_the_range_at_batch_boundaries(
    n: int, batch_size: int, world: int
) -> None:
    shards = [dist.batch_shard(n, batch_size, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    batches = [-(-len(s) // batch_size) for s in shards]
    assert max(batches) - min(batches) <= 1
    for s in shards:  # each rank's batches are batches of the single process
        assert s.start % batch_size == 0 or len(s) == 0
        assert len(s) % batch_size == 0 or s.stop == n
    empty = sum(len(s) == 0 for s in shards)
    assert empty == max(0, world - -(-n // batch_size))


def test_batch_shard_examples() -> None:
    assert [dist.batch_shard(100, 64, r, 2) for r in range(2)] == [range(0, 64), range(64, 100)]
    assert [dist.batch_shard(2, 1, r, 3) for r in range(3)] == [range(0, 1), range(1, 2),
                                                                range(2, 2)]
    with pytest.raises(ValueError, match="batch_size"):
        dist.batch_shard(10, 0, 0, 1)


# ---------------------------------------------------------------------------------------------
# extract() in 3 processes, with a cheap extractor that records what each rank saw
# ---------------------------------------------------------------------------------------------


class _Recording(FeatureExtractor):
    """Cheap deterministic features of two widths; remembers how many images it was given."""

    name = "recording-test"
    primary = "pixels"

    def __init__(self) -> None:
        super().__init__(torch.device("cpu"))
        self.seen = 0

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen += images.shape[0]
        x = images.float()
        return {"pixels": x.flatten(1)[:, :5] / 255, "mean": x.mean((1, 2, 3))[:, None]}

    def weights_sha256(self) -> str:
        return "0" * 64


def _images(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(n),
                         dtype=torch.uint8)


CASES = [(7, 2), (2, 1), (1, 4)]  # (n, batch_size): 4 batches on 3 ranks; 2 and 1 leave ranks idle


def _extract_worker(rank: int, port: int, out: str, cache_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="3")
    torch.set_num_threads(1)
    with dist.job("cpu") as env:
        assert env is not None and env.world_size == 3
        rows: list[dict[str, Any]] = []
        for n, batch_size in CASES:
            source = ArraySource(_images(n), data=f"test-{n}")
            extractor = _Recording()
            cache = FeatureCache(Path(cache_dir))
            first = extract(source, extractor, batch_size=batch_size, cache=cache, progress=False)
            torch_dist.barrier()  # rank 0 has written the cache entry
            again = extract(source, extractor, batch_size=batch_size, cache=cache, progress=False)
            rows.append({
                "seen": extractor.seen,
                "passes": first.forward_passes,
                "tensors": {k: v.tolist() for k, v in first.tensors.items()},
                "again_cached": again.from_cache,
                "again_equal": all(torch.equal(again.tensors[k], v)
                                   for k, v in first.tensors.items()),
            })
        Path(f"{out}.{rank}").write_text(json.dumps(rows))


def test_sharded_extract_equals_one_process_and_survives_empty_shards(tmp_path: Path) -> None:
    out = tmp_path / "rank"
    mp.spawn(_extract_worker, args=(free_port(), str(out), str(tmp_path / "cache")), nprocs=3,
             join=True)
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(3)]
    for case, (n, batch_size) in enumerate(CASES):
        single = extract(ArraySource(_images(n), data=f"test-{n}"), _Recording(),
                         batch_size=batch_size, progress=False)
        shards = [dist.batch_shard(n, batch_size, r, 3) for r in range(3)]
        probe = [1 if len(s) == 0 else 0 for s in shards]  # an empty rank runs one image
        for rank, rows in enumerate(ranks):
            row = rows[case]
            assert row["seen"] == len(shards[rank]) + probe[rank], (n, batch_size, rank)
            assert row["passes"] == single.forward_passes == -(-n // batch_size)
            for name, value in single.tensors.items():
                got = torch.tensor(row["tensors"][name], dtype=value.dtype)
                assert got.shape == value.shape and torch.equal(got, value), (n, rank, name)
            assert row["again_cached"] and row["again_equal"]
    assert len(list((tmp_path / "cache" / "features").glob("*.safetensors"))) == len(CASES)


# ---------------------------------------------------------------------------------------------
# the command line: torchrun -m gan_eval evaluate vs python -m gan_eval evaluate
# ---------------------------------------------------------------------------------------------


def _numbers(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    results = json.loads(path.read_text())
    return {(m["extractor"], m["name"]): m for m in results["metrics"]}


@pytest.mark.parametrize(
    "extractors",
    [
        pytest.param(("dlib-face",), id="dlib-face"),
        pytest.param(("inception", "dlib-face"), id="inception+dlib-face",
                     marks=pytest.mark.slow),
    ],
)
def test_torchrun_evaluate_equals_one_process(
    tmp_path: Path, extractors: tuple[str, ...]
) -> None:
    """100 generated images (batches of 64: one per rank) against 40 reference images (one
    batch: rank 1's shard is empty); 2 processes vs 1."""
    generated = "builtin:lfw-subset"
    reference = tmp_path / "nonfaces.npz"
    np.savez(reference, images=open_source("builtin:lfw-nonfaces").load()[:40].numpy())
    options = ["-r", str(reference), "--no-cache", "-q", "--device", "cpu", "--batch-size", "64"]
    for name in extractors:
        options += ["-e", name]
    if "inception" in extractors:
        from inception_fixture import write_calibrated_weights

        weights = write_calibrated_weights(tmp_path / "inception-plumbing.pth")
        options += ["--inception-weights", str(weights)]
    single_json, multi_json = tmp_path / "single.json", tmp_path / "torchrun.json"
    single = run_clean([sys.executable, "-m", "gan_eval", "evaluate", generated, *options,
                   "--json", str(single_json)])
    multi = run_clean([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                  "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                  "--master-port", str(free_port()),
                  "-m", "gan_eval", "evaluate", generated, *options, "--json", str(multi_json)])

    # rank 0 alone reports: one table, one "wrote", one copy of each note
    assert single.stdout.count(f"wrote {single_json}") == 1
    assert multi.stdout.count(f"wrote {multi_json}") == 1
    assert multi.stdout.count("fid") == single.stdout.count("fid") > 0
    assert multi.stderr.count("note:") == single.stderr.count("note:")
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["single.json", "torchrun.json"]

    ours, theirs = _numbers(multi_json), _numbers(single_json)
    assert ours.keys() == theirs.keys()
    assert {name for name, _ in ours} == set(extractors)
    for key, metric in theirs.items():
        other = ours[key]
        # bitwise-equal features ⇒ exactly equal numbers (see the module docstring)
        assert other["value"] == metric["value"], (key, other["value"], metric["value"])
        assert other["ci95"] == metric["ci95"], (key, other["ci95"], metric["ci95"])
        assert (other["n_generated"], other["n_reference"]) == (100, 40)
        assert other["details"] == metric["details"], key
    prov = [json.loads(p.read_text())["provenance"] for p in (multi_json, single_json)]
    # whole batches in both runs: the same number of forward passes in total
    assert prov[0]["forward_passes"] == prov[1]["forward_passes"]
    assert prov[0]["data"] == prov[1]["data"]
