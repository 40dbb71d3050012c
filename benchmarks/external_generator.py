"""Evaluating an external TorchScript generator on the fly vs the same images from an .npz.

    python benchmarks/external_generator.py            # n = 256, 64 px DCGAN (ngf 64), ≈2 min
    python benchmarks/external_generator.py --n 128 --repeats 1

A DCGAN (random weights, 64 px, nz = 100, ngf = 64) is exported with ``torch.jit.save``; its
``n`` images are also written once to ``samples.npz`` by ``gan_eval.sample`` (the PNG-free
workflow a user without external-generator support would follow). Rows, each the median of
``--repeats`` alternated runs of ``gan_eval.evaluate`` on dlib-face features (generated side only:
the reference's features come from a warm cache, bootstrap 10):

* ``npz`` — evaluate ``samples.npz`` (the images already written);
* ``on the fly`` — evaluate the TorchScript archive, sampled while extracting (read-ahead: the
  next batch is generated in a worker thread while dlib runs on the current one);
* ``on the fly, no read-ahead`` — the same with ``prefetch = False`` (generation in series);
* ``sample + npz`` — what the npz row costs end to end (sampling to PNG + npz, then evaluate).

Also printed: the generator's and the extractor's own cost per image, so the ratio can be read:
on the fly is no slower than from the npz when generating overlaps extraction (enough cores) or
costs little next to it. Timings on a shared CPU are noisy: read the ratios, measured side by
side in one run; the load average is printed.

Measured on the 2-core shared CPU (load average 7–10), n = 256, 64 px, dlib-face:
generator 5.3–7.6 ms/img, extraction 13–14 ms/img; npz 4.08 s / on the fly 3.45 s (0.85) / no
read-ahead 3.72 s (0.91), median of 3; an earlier run (median of 2, load 10): npz 11.9 s, on the
fly 6.7 s, no read-ahead 14.1 s. Sampling to PNG + npz first costs another 3–4 s.

Since the content hash of an external generator is a hash of its pixels (issue 24) it is
accumulated while extraction reads the images in order, so each image is still generated once:
process CPU time of the on-the-fly evaluate, n = 128, alternated, 6 runs each (load 13–19 on the
2 cores): median 2.44 s before, 2.42 s after. A first version that hashed the pixels in a pass of
their own before extracting cost 15.8 s against 7.4 s from the npz (ratio 2.1, load 15–20).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_eval.evaluation import EvaluateConfig, evaluate  # noqa: E402
from gan_eval.features import build_extractor  # noqa: E402
from gan_eval.gan.models import Generator, ModelSpec  # noqa: E402
from gan_eval.generators.export import export_torchscript  # noqa: E402
from gan_eval.generators.sample import sample  # noqa: E402
from gan_eval.sources import open_source  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    torch.manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["GAN_EVAL_CACHE_DIR"] = str(tmp / "cache")
        spec = ModelSpec(resolution=args.resolution, nz=100, ngf=args.width, ndf=args.width)
        g = Generator(spec).eval()
        ts = export_torchscript(g, spec.nz, tmp / "g.pt")
        start = time.perf_counter()
        sample(str(ts), n=args.n, out=tmp / "samples", npz=True, device="cpu",
               batch_size=args.batch_size)
        sample_seconds = time.perf_counter() - start
        npz = tmp / "samples" / "samples.npz"
        reference = "builtin:lfw-subset"
        warm = tmp / "warm-cache"  # holds the reference's features only
        evaluate(reference, reference, EvaluateConfig(
            splits=10, progress=False, device="cpu", batch_size=args.batch_size,
            resolution=args.resolution, cache_dir=warm))

        def run(kind: str, round_: int) -> float:
            if kind == "npz":
                generated = open_source(str(npz), resolution=args.resolution)
            else:
                generated = open_source(str(ts), n=args.n, device="cpu")
                generated.prefetch = kind == "fly"  # type: ignore[attr-defined]
            cache = tmp / f"cache-{kind}-{round_}"  # warm for the reference, cold for the rest
            shutil.copytree(warm, cache)
            start = time.perf_counter()
            results = evaluate(generated, reference, EvaluateConfig(
                splits=10, progress=False, device="cpu", batch_size=args.batch_size,
                resolution=args.resolution, cache_dir=cache))
            seconds = time.perf_counter() - start
            assert results.metric("fid", "dlib-face").value >= 0
            return seconds

        times: dict[str, list[float]] = {"npz": [], "fly": [], "serial": []}
        for round_ in range(args.repeats):
            for kind in times:
                times[kind].append(run(kind, round_))
        med = {k: statistics.median(v) for k, v in times.items()}

        module = open_source(str(ts), n=args.batch_size, device="cpu")
        with torch.no_grad():
            module.read(range(args.batch_size))
            module._kept = None  # type: ignore[attr-defined]  # (generate again, not reuse)
            t0 = time.perf_counter()
            images = module._generate_range(range(args.batch_size))  # type: ignore[attr-defined]
            gen_ms = (time.perf_counter() - t0) / args.batch_size * 1e3
        extractor = build_extractor("dlib-face", device=torch.device("cpu"))
        with torch.inference_mode():
            extractor(images)
            t0 = time.perf_counter()
            extractor(images)
            ext_ms = (time.perf_counter() - t0) / args.batch_size * 1e3
    print(f"\nn = {args.n} images, {args.resolution} px DCGAN (ngf {args.width}), dlib-face, "
          f"batch {args.batch_size}; median of {args.repeats}")
    print(f"  generator        {gen_ms:7.2f} ms/img    dlib-face extraction {ext_ms:7.2f} ms/img")
    print(f"  npz                          {med['npz']:7.2f} s")
    print(f"  on the fly (read-ahead)      {med['fly']:7.2f} s   ratio "
          f"{med['fly'] / med['npz']:.2f}")
    print(f"  on the fly, no read-ahead    {med['serial']:7.2f} s   ratio "
          f"{med['serial'] / med['npz']:.2f}")
    print(f"  sample + npz (end to end)    {sample_seconds + med['npz']:7.2f} s   "
          f"(sampling to PNG + npz: {sample_seconds:.2f} s)")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
