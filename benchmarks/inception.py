"""Benchmark: torch-fidelity's InceptionV3 extractor vs gan-eval's fast execution of it.

Same weights file (random calibrated weights in the real file format, from
``tests/inception_fixture.py``: timings are real, feature values are PLUMBING), same 64×64 uint8
inputs (LFW faces), one process; after a warm-up, rounds of one batch per configuration
(A B C … A B C …, so load from other processes hits all alike), median over the rounds.

Prints: correctness (relative error of each configuration's '2048' and 'logits_unbiased' features
against torch-fidelity's, required ≤ 1e-4 for the exact configurations; exit status 1 otherwise),
FLOPs/img (``torch.utils.flop_counter.FlopCounterMode``), the measured sgemm rate
(``torch.mm`` 2048³ fp32) and a table of img/s, ratio to torch-fidelity at the same batch size,
and achieved GFLOP/s.

    python benchmarks/inception.py                       # CPU fp32, batch sizes 8,16,32
    python benchmarks/inception.py --device cuda --batch-sizes 64,256 --repeats 20

CPU configurations: ``tf`` (torch-fidelity), ``fast`` (folded BN + merged 1×1 GEMMs +
channels_last), ``fold`` (folded BN + channels_last only, the ablation), each with oneDNN on; at
the middle batch size also oneDNN off (``torch.backends.mkldnn.enabled = False``) and oneDNN's
implicit bf16 for fp32 (``torch.backends.mkldnn.{conv,matmul}.fp32_precision = "bf16"``; not
exact).
CUDA configurations: fp32 (TF32 off), tf32 (PyTorch's default for cuDNN convolutions, what
torch-fidelity gets by default) and bf16 autocast (not exact), each for ``tf`` and ``fast``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import inception_fixture as fx  # noqa: E402
from _rates import sgemm_gflops  # noqa: E402
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # noqa: E402

from gan_eval.features.inception import InceptionFeatures, load_inception  # noqa: E402

FEATURES = ("2048", "logits_unbiased")
TOLERANCE = 1e-4


@dataclass
class Config:
    """One timed configuration: ``run(batch)`` → features dict; settings applied around it."""

    model: str  # "tf", "fast", "fold"
    setting: str  # backend settings, e.g. "oneDNN", "tf32"
    batch: int
    run: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    settings: Callable[[], contextlib.AbstractContextManager[None]]
    exact: bool = True
    times: list[float] = field(default_factory=list)
    error: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model} {self.setting}"


@contextlib.contextmanager
def mkldnn_settings(enabled: bool = True, fp32_precision: str = "none") -> Iterator[None]:
    """Set oneDNN flags (enabled; fp32 math mode of convolutions and matmuls) for the block."""
    backend = torch.backends.mkldnn
    old = (backend.enabled, backend.conv.fp32_precision, backend.matmul.fp32_precision)
    backend.enabled = enabled
    backend.conv.fp32_precision = fp32_precision
    backend.matmul.fp32_precision = fp32_precision
    try:
        yield
    finally:
        backend.enabled = old[0]
        backend.conv.fp32_precision, backend.matmul.fp32_precision = old[1], old[2]


@contextlib.contextmanager
def cuda_settings(tf32: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and cuBLAS matmuls on/off for the block."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[torch.Tensor], object], image: torch.Tensor) -> float:
    """FLOPs (FlopCounterMode: convolutions + matmuls, 2 per multiply-add) for one image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(image)
    return float(counter.get_total_flops())


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ over the whole batch (float64)."""
    a64, b64 = a.double().cpu(), b.double().cpu()
    return float((a64 - b64).norm() / b64.norm())


def timed_batch(cfg: Config, images: torch.Tensor, device: torch.device) -> float:
    """Seconds for one forward of the first ``cfg.batch`` images with ``cfg``'s settings."""
    batch = images[: cfg.batch]
    with cfg.settings(), torch.no_grad():
        sync(device)
        start = time.perf_counter()
        cfg.run(batch)
        sync(device)
        return time.perf_counter() - start


def weights_file(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    cache = Path(tempfile.gettempdir()) / "gan_eval_bench" / fx.FIXTURE_FILENAME
    if not cache.exists():
        print(f"writing calibrated random weights (plumbing) to {cache} ...", flush=True)
        fx.write_calibrated_weights(cache, seed=0)
    return cache


def build_configs(args: argparse.Namespace, path: Path, device: torch.device
                  ) -> tuple[list[Config], FeatureExtractorInceptionV3, InceptionFeatures]:
    stock = FeatureExtractorInceptionV3("inception-v3-compat", list(FEATURES),
                                        feature_extractor_weights_path=str(path)).to(device)
    fast = load_inception(path, device)
    fold = load_inception(path, device, merge_1x1=False)

    def run_tf(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(FEATURES, stock(x), strict=True))

    runs: dict[str, Callable[[torch.Tensor], dict[str, torch.Tensor]]] = {
        "tf": run_tf, "fast": fast, "fold": fold,
    }
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    configs: list[Config] = []
    if device.type == "cpu":
        for bs in sizes:
            for name in ("tf", "fast", "fold"):
                configs.append(Config(name, "oneDNN", bs, runs[name], mkldnn_settings))
        mid = sizes[len(sizes) // 2]
        for name in ("tf", "fast") if args.extras else ():
            configs.append(Config(name, "oneDNN off", mid, runs[name],
                                  lambda: mkldnn_settings(enabled=False)))
        if args.extras:
            configs.append(Config("fast", "oneDNN fp32→bf16", mid, runs["fast"],
                                  lambda: mkldnn_settings(fp32_precision="bf16"), exact=False))
    else:
        fast_bf16 = load_inception(path, device, autocast_dtype=torch.bfloat16)

        def run_tf_bf16(x: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return run_tf(x)

        for bs in sizes:
            for name in ("tf", "fast"):
                configs.append(Config(name, "fp32", bs, runs[name],
                                      lambda: cuda_settings(False)))
                configs.append(Config(name, "tf32", bs, runs[name],
                                      lambda: cuda_settings(True), exact=False))
            configs.append(Config("tf", "bf16", bs, run_tf_bf16, lambda: cuda_settings(True),
                                  exact=False))
            configs.append(Config("fast", "bf16", bs, fast_bf16, lambda: cuda_settings(True),
                                  exact=False))
    return configs, stock, fast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed batches per configuration (interleaved rounds)")
    parser.add_argument("--weights", default=None,
                        help="weights file (default: calibrated random weights, plumbing)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--no-extras", dest="extras", action="store_false",
                        help="CPU: skip the oneDNN-off and fp32→bf16 rows")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    path = weights_file(args.weights)
    sizes = [int(v) for v in args.batch_sizes.split(",")]
    images = fx.lfw_faces(max(sizes), size=64, seed=5).to(device)  # uint8 N×3×64×64
    configs, stock, fast = build_configs(args, path, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batches of 64×64 uint8 faces, weights {path.name} (feature values: plumbing)")

    # --- correctness (once per configuration, on the first ≤16 images) ---
    check = images[: min(16, images.shape[0])]
    with torch.no_grad(), (cuda_settings(False) if device.type == "cuda"
                           else contextlib.nullcontext()):
        reference = dict(zip(FEATURES, stock(check), strict=True))
    failed = False
    for cfg in configs:
        with cfg.settings(), torch.no_grad():
            out = cfg.run(check)
        cfg.error = {k: rel_error(out[k], reference[k]) for k in FEATURES}
        if cfg.exact and max(cfg.error.values()) > TOLERANCE:
            failed = True

    # --- FLOPs and the machine's matmul rate ---
    one = images[:1]
    flops_tf = count_flops(lambda x: stock(x), one)
    flops_fast = count_flops(lambda x: fast(x), one)
    gemm_before = sgemm_gflops(device)

    # --- timings: warm-up, then rounds of one batch per configuration (A B C A B C ...) ---
    for cfg in configs:
        timed_batch(cfg, images, device)
    for _ in range(args.repeats):
        for cfg in configs:
            cfg.times.append(timed_batch(cfg, images, device))
    gemm_after = sgemm_gflops(device)
    gemm = statistics.median([gemm_before, gemm_after])

    print(f"FLOPs/img (FlopCounterMode): torch-fidelity {flops_tf / 1e9:.2f} G, "
          f"fast {flops_fast / 1e9:.2f} G")
    print(f"sgemm (torch.mm 2048³ fp32): {gemm_before:.0f} GFLOP/s before, {gemm_after:.0f} after "
          f"→ limit {gemm * 1e9 / flops_tf:.1f} img/s at the sgemm rate")
    # ratio: torch-fidelity with the same settings and batch size (else its default settings)
    base = {(c.batch, c.setting): statistics.median(c.times) for c in configs if c.model == "tf"}
    default_setting = "oneDNN" if device.type == "cpu" else "fp32"
    header = (f"{'configuration':<24} {'batch':>5} {'img/s':>8} {'(min–max)':>14} "
              f"{'×tf':>6} {'GFLOP/s':>8} {'err 2048':>9} {'err logits':>10}")
    print(header)
    print("-" * len(header))
    for cfg in configs:
        med = statistics.median(cfg.times)
        rate = cfg.batch / med
        spread = f"{cfg.batch / max(cfg.times):.1f}–{cfg.batch / min(cfg.times):.1f}"
        ref_time = base.get((cfg.batch, cfg.setting), base.get((cfg.batch, default_setting)))
        ratio = ref_time / med if ref_time is not None else float("nan")
        gflops = rate * flops_tf / 1e9
        mark = "" if cfg.exact else " *"
        print(f"{cfg.label + mark:<24} {cfg.batch:>5} {rate:>8.2f} {spread:>14} {ratio:>6.2f} "
              f"{gflops:>8.0f} {cfg.error['2048']:>9.1e} {cfg.error['logits_unbiased']:>10.1e}")
    print("* not exact (reduced precision); err = ‖Δ‖/‖ref‖ vs torch-fidelity fp32 "
          f"(exact configurations must be ≤ {TOLERANCE:g})")
    if failed:
        print("FAIL: an exact configuration differs from torch-fidelity by more than "
              f"{TOLERANCE:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
