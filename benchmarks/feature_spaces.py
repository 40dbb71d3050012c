"""Benchmark: gan-eval's DINOv2 / CLIP extractors vs the plain library forward of the same model.

Same weights (random, written in the official file formats by ``tests/spaces_fixture.py``:
timings are real, feature values are PLUMBING), same inputs, one process; after a warm-up,
interleaved rounds (A B A B …, so load from other processes hits both alike), median per
configuration.

Rows per model, at each batch size:

- ``ours net``: the extractor's network on preprocessed input (``forward_preprocessed``);
- ``lib net``: the plain library forward of the same network with the same weights —
  DINOv2: ``timm.create_model(arch, img_size=224)`` loaded through timm's checkpoint filter,
  ``model(x)`` under ``torch.no_grad``; CLIP: torch-fidelity's ``FeatureExtractorCLIP`` given the
  same archive, ``model.visual(x)`` under ``torch.no_grad``;
- ``ours e2e``: the extractor on uint8 64×64 images (PIL resize + network);
- ``lib e2e`` (CLIP only): torch-fidelity's extractor on the same uint8 images (its own resize).

Printed: FLOPs/img (``FlopCounterMode``), the sgemm rate (``torch.mm`` 2048³ fp32, measured
before and after), img/s, ratio (ours ÷ library, > 1 = ours faster), achieved GFLOP/s and its
fraction of the sgemm rate, and the relative difference of the features (ours vs the library
with Meta's position grid for DINOv2, vs torch-fidelity's visual for CLIP; ≤ 1e-4 required,
exit status 1 otherwise).

    python benchmarks/feature_spaces.py                         # dinov2-vit-s14, clip-vit-b32
    python benchmarks/feature_spaces.py --models dinov2-vit-b14,clip-vit-l14 --batch-sizes 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import spaces_fixture as sf  # noqa: E402
from _rates import sgemm_gflops  # noqa: E402

from gan_eval.features import dinov2 as dv  # noqa: E402
from gan_eval.features.registry import EXTRACTORS as FEATURE_SPACES  # noqa: E402

TOLERANCE = 1e-4


@dataclass
class Row:
    label: str
    batch: int
    run: Callable[[], torch.Tensor]
    flops_per_img: float
    times: list[float] = field(default_factory=list)


def count_flops(fn: Callable[[], object], batch: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops()) / batch


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def weights_file(name: str) -> Path:
    folder = Path(tempfile.gettempdir()) / "gan_eval_bench"
    if name.startswith("dinov2"):
        path = folder / sf.DINOV2_FILES[name]
        if not path.exists():
            print(f"writing random {name} weights (plumbing) to {path} ...", flush=True)
            sf.write_dinov2_weights(path, name)
    else:
        path = folder / sf.CLIP_FILES[name]
        if not path.exists():
            print(f"writing random {name} archive (plumbing) to {path} ...", flush=True)
            sf.write_clip_archive(path, name)
    return path


def model_rows(name: str, batch: int, images: torch.Tensor) -> tuple[list[Row], float]:
    """Timed rows for one model at one batch size, and the features' relative difference."""
    path = weights_file(name)
    ours = FEATURE_SPACES[name](torch.device("cpu"), path)
    batch_images = images[:batch]
    x = ours.preprocess(batch_images)
    rows: list[Row] = []
    if name.startswith("dinov2"):
        state = torch.load(path, weights_only=True)
        lib = dv.build_timm_dinov2(name, state, meta_positions=False)  # timm's own load
        same_grid = dv.build_timm_dinov2(name, state)  # for the numbers: Meta's grid
        with torch.no_grad():
            error = rel(ours.forward_preprocessed(x), same_grid(x))
        del same_grid

        def lib_net() -> torch.Tensor:
            with torch.no_grad():
                return lib(x)  # type: ignore[no-any-return]
    else:
        from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

        stock = FeatureExtractorCLIP(sf.TORCH_FIDELITY_CLIP[name], ["clip"],
                                     feature_extractor_weights_path=str(path)).eval()
        with torch.no_grad():
            error = rel(ours.forward_preprocessed(x), stock.model.visual(x).float())

        def lib_net() -> torch.Tensor:
            with torch.no_grad():
                return stock.model.visual(x)  # type: ignore[no-any-return]

        def lib_e2e() -> torch.Tensor:
            with torch.no_grad():
                return stock(batch_images)[0]  # type: ignore[no-any-return]

    def ours_net() -> torch.Tensor:
        return ours.forward_preprocessed(x)

    def ours_e2e() -> torch.Tensor:
        return ours(batch_images)[ours.primary]

    # one network, one FLOP count: FlopCounterMode does not see the projections inside
    # nn.MultiheadAttention's fused inference path (open_clip's CLIP), so take the larger count
    flops = max(count_flops(ours_net, batch), count_flops(lib_net, batch))
    rows.append(Row(f"{name} ours net", batch, ours_net, flops))
    rows.append(Row(f"{name} lib net", batch, lib_net, flops))
    rows.append(Row(f"{name} ours e2e", batch, ours_e2e, flops))
    if not name.startswith("dinov2"):
        rows.append(Row(f"{name} lib e2e", batch, lib_e2e, flops))
    return rows, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="dinov2-vit-s14,clip-vit-b32")
    parser.add_argument("--batch-sizes", default="8")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per row")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    images = sf.test_images(max(sizes), size=64, seed=0)
    rate_before = sgemm_gflops("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"sgemm {rate_before:.1f} GFLOP/s (before)")
    status = 0
    for name in args.models.split(","):
        for batch in sizes:
            rows, error = model_rows(name, batch, images)
            ok = error <= TOLERANCE
            status |= 0 if ok else 1
            for row in rows:  # warm-up
                row.run()
            for _ in range(args.repeats):
                for row in rows:
                    start = time.perf_counter()
                    row.run()
                    row.times.append(time.perf_counter() - start)
            rate = sgemm_gflops("cpu", repeats=3, warmup=1)
            print(f"\n{name}  batch {batch}  features rel. diff {error:.1e} "
                  f"({'ok' if ok else 'FAIL'} ≤ {TOLERANCE:g})  sgemm now {rate:.1f} GFLOP/s")
            print(f"{'row':32} {'GFLOP/img':>9} {'img/s':>8} {'ratio':>6} {'best':>6} "
                  f"{'paired':>6} {'GFLOP/s':>8} {'of sgemm':>8}")
            medians = {row.label: statistics.median(row.times) for row in rows}
            best = {row.label: min(row.times) for row in rows}
            for row in rows:
                t = medians[row.label]
                img_s = batch / t
                twin = row.label.replace("ours", "lib") if "ours" in row.label else None
                if twin in medians:
                    lib_times = next(r.times for r in rows if r.label == twin)
                    # each round runs ours and the library back to back: the median of the
                    # per-round ratios is the least sensitive to load drifting between rounds
                    paired = statistics.median(
                        lt / ot for lt, ot in zip(lib_times, row.times, strict=True))
                    ratio = (f"{medians[twin] / t:6.2f} {best[twin] / best[row.label]:6.2f} "
                             f"{paired:6.2f}")
                else:
                    ratio = " " * 20
                gflops = row.flops_per_img * img_s / 1e9
                print(f"{row.label:32} {row.flops_per_img / 1e9:9.2f} {img_s:8.2f} {ratio} "
                      f"{gflops:8.1f} {gflops / rate:8.0%}")
    print(f"\nsgemm {sgemm_gflops('cpu'):.1f} GFLOP/s (after); ratio = library time ÷ ours "
          "(> 1: ours faster) on the medians, best = on the fastest round, paired = median of "
          "per-round ratios; numbers on random weights are plumbing, not FD_DINOv2/CMMD")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
