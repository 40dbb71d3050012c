"""``gan-eval evaluate`` against torch-fidelity, side by side in one run on the same CPU.

    python benchmarks/evaluate.py --quick     # small sizes, ≈4 min on 2 shared cores
    python benchmarks/evaluate.py             # the full sizes, ≈12 min on 2 shared cores
    python benchmarks/evaluate.py --only inception,series --repeats 3

Every row: a warm-up, then baseline and candidate alternated (A B A B …), median of ``--repeats``;
the table at the end gives row, baseline, gan-eval, ratio, target and whether it is met, plus a
correctness check for each row. Timings on a shared CPU are noisy (other jobs take cores at
random moments): the ratios, measured side by side, are what to read; the load average is printed
at the start and the end. Rows:

* ``inception`` — InceptionV3 features of 64×64 uint8 LFW faces, one batch: torch-fidelity's
  stock ``inception-v3-compat`` extractor vs gan-eval's (``inception``: folded BN, merged
  1×1 GEMMs, channels_last), both loading one weights file with *random calibrated* weights in
  the real file format (``tests/inception_fixture.py``, written to a temp dir: feature values are
  plumbing, timings are real). Reuses ``benchmarks/inception.py``. Features must agree to 1e-4.
* ``series`` — repeated gating, CLI against CLI: K folders of generated-like PNGs (jittered LFW
  faces, a different seed each) evaluated one after another against one reference folder:
  ``gan-eval evaluate GEN -r REF -e inception --inception-weights W --json …`` (fresh
  ``GAN_EVAL_CACHE_DIR`` per series, so the first call pays the reference and the next ones read
  it from the cache) vs ``fidelity --cpu --fid --input1 GEN --input2 REF
  --feature-extractor-weights-path W`` (its defaults: FID only, no cache for folder inputs).
  gan-eval computes more per call (KID, precision/recall/density/coverage, IS, and 95% bootstrap
  intervals of each); its CLI has no FID-only switch, so a second baseline row times
  torch-fidelity asked for the same metric set (``--fid --kid --prc --isc --feature-extractor
  inception-v3-compat``, one network for all four; still no intervals; ``--same-metric-set``, on
  by default with ``--quick``). Sizes: 2 × 40 vs 40 images (quick), 3 × 200 vs 200 (full).
  FIDs of the two CLIs are compared per folder.
* ``fid`` / ``kid`` / ``prc`` — the metric math on the same features: the rows of
  ``benchmarks/metrics_math.py`` (called, not copied). Targets are issue #4's: Fréchet from
  statistics at D = 2,048 ≥ 1.7×, KID at N = 2,000 ≥ 4×, precision/recall at N = 10,000 ≥ 2×
  (PERF.md's anchors: eigvals 3.0 s vs eigh 1.7 s; KID ≈25× fewer FLOPs; PRC 10.4 s vs 4.3 s).
* ``dlib-face`` — gan-eval's dlib-face extractor (uint8 150×150 faces → 128-d), achieved
  GFLOP/s (FLOPs/img from ``benchmarks/embed.py``, ≈0.54 G) as a fraction of the sgemm rate
  measured in the same rounds (``benchmarks/_rates.py``); target ≥ 70%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT, ROOT / "tests", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import embed as embed_bench  # noqa: E402  (benchmarks/embed.py)
import inception as inception_bench  # noqa: E402  (benchmarks/inception.py)
import inception_fixture as fx  # noqa: E402  (tests/inception_fixture.py)
import metrics_math  # noqa: E402  (benchmarks/metrics_math.py)
from _rates import sgemm_gflops  # noqa: E402

from gan_eval.features.dlib_face import load_dlib_face_net  # noqa: E402
from gan_eval.features.registry import build_extractor  # noqa: E402
from gan_eval.metrics.frechet import SmallSampleFIDWarning  # noqa: E402

CPU = torch.device("cpu")
ROWS = ("inception", "series", "fid", "kid", "prc", "dlib")


@dataclass
class Row:
    """One line of the final table; ``ratio`` is baseline time / gan-eval time (or a fraction)."""

    name: str
    baseline: str
    ours: str
    ratio: float
    target: float
    check: str
    percent: bool = False  # ratio and target are fractions, shown as %

    def cells(self) -> list[str]:
        fmt = (lambda v: f"{100 * v:.0f}%") if self.percent else (lambda v: f"{v:.2f}×")
        return [self.name, self.baseline, self.ours, fmt(self.ratio), f"≥ {fmt(self.target)}",
                "yes" if self.ratio >= self.target else "NO", self.check]


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def alternate(base: Callable[[], object], ours: Callable[[], object], repeats: int,
              warmup: bool = True) -> tuple[list[float], list[float]]:
    """Warm-up once each, then base, ours, base, ours … ``repeats`` times; seconds."""
    if warmup:
        base()
        ours()
    tb, to = [], []
    for _ in range(repeats):
        for fn, times in ((base, tb), (ours, to)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return tb, to


# -- Inception features ---------------------------------------------------------------------------

def row_inception(weights: Path, batch: int, repeats: int) -> Row:
    args = argparse.Namespace(batch_sizes=str(batch), extras=False)
    configs, _, _ = inception_bench.build_configs(args, weights, CPU)
    tf = next(c for c in configs if c.model == "tf")
    fast = next(c for c in configs if c.model == "fast")
    images = fx.lfw_faces(batch, size=64, seed=5)
    check = images[: min(16, batch)]
    with torch.no_grad():
        ref, got = tf.run(check), fast.run(check)
    err = max(inception_bench.rel_error(got[k], ref[k]) for k in inception_bench.FEATURES)
    tb, to = alternate(lambda: inception_bench.timed_batch(tf, images, CPU),
                       lambda: inception_bench.timed_batch(fast, images, CPU), repeats)
    base, ours = batch / statistics.median(tb), batch / statistics.median(to)
    ok = "ok" if err <= inception_bench.TOLERANCE else "FAIL"
    return Row(f"Inception features, batch {batch} (img/s)", f"{base:.1f}", f"{ours:.1f}",
               ours / base, 1.5, f"max rel err {err:.1e} ≤ {inception_bench.TOLERANCE:g}: {ok}")


# -- repeated gating, CLI against CLI -------------------------------------------------------------

def write_pngs(folder: Path, images: torch.Tensor) -> Path:
    """uint8 N×3×H×W → folder/000000.png …"""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:06d}.png")
    return folder


def run_cli(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def fidelity_command() -> list[str]:
    exe = shutil.which("fidelity")
    return [exe] if exe else [sys.executable, "-m", "torch_fidelity.fidelity"]


@dataclass
class Series:
    """One series of K evaluate calls against one reference; returns {folder: fid}."""

    label: str
    call: Callable[[Path, Path], float]
    prepare: Callable[[], None] = lambda: None

    def __call__(self, folders: list[Path]) -> dict[str, float]:
        self.prepare()
        return {folder.name: self.call(folder, folders[-1]) for folder in folders[:-1]}


def row_series(weights: Path, work: Path, k: int, n: int, n_ref: int, repeats: int,
               same_metric_set: bool) -> list[Row]:
    folders = [write_pngs(work / f"gen{i}", fx.lfw_faces(n, start=17 * i, size=64, seed=i + 1))
               for i in range(k)]
    folders.append(write_pngs(work / "ref", fx.lfw_faces(n_ref, start=50, size=64, seed=100)))
    warm = [write_pngs(work / "warm-gen", fx.lfw_faces(16, seed=200)),
            write_pngs(work / "warm-ref", fx.lfw_faces(16, start=16, seed=201))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    caches = iter(range(10**6))

    def fresh_cache() -> None:
        env["GAN_EVAL_CACHE_DIR"] = str(work / f"cache{next(caches)}")

    def ours(gen: Path, ref: Path) -> float:
        out = gen.parent / f"{gen.name}.json"
        run_cli([sys.executable, "-m", "gan_eval", "evaluate", str(gen), "-r", str(ref),
                 "-e", "inception", "--inception-weights", str(weights), "--device", "cpu",
                 "--json", str(out), "-q"], env)
        metrics = json.loads(out.read_text())["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "fid"))

    def theirs(*metrics: str) -> Callable[[Path, Path], float]:
        def call(gen: Path, ref: Path) -> float:
            size = min(len(list(gen.glob("*.png"))), len(list(ref.glob("*.png"))), 1000)
            extra = ["--kid-subset-size", str(size)] if "--kid" in metrics else []
            out = run_cli([*fidelity_command(), "--cpu", *metrics, "--input1", str(gen),
                           "--input2", str(ref), "--feature-extractor-weights-path",
                           str(weights), *extra, "--json", "--silent"], env)
            return float(json.loads(out)["frechet_inception_distance"])
        return call

    tf_fid = Series("torch-fidelity --fid", theirs("--fid"))
    # --prc alone would default to a second network (vgg16); name Inception for all metrics
    tf_all = Series("torch-fidelity --fid --kid --prc --isc",
                    theirs("--fid", "--kid", "--prc", "--isc",
                           "--feature-extractor", "inception-v3-compat"))
    ge = Series("gan-eval evaluate -e inception", ours, prepare=fresh_cache)
    timed = [tf_fid, ge, tf_all] if same_metric_set else [tf_fid, ge]
    # warm-up: one tiny call of each (imports, page cache), then A B C A B C …
    for series in timed:
        series(warm)
    times: dict[str, list[float]] = {s.label: [] for s in timed}
    fids: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for series in timed:
            start = time.perf_counter()
            fids[series.label] = series(folders)
            times[series.label].append(time.perf_counter() - start)
            print(f"  {series.label}: {times[series.label][-1]:.1f} s", flush=True)
    ours_t = statistics.median(times[ge.label])
    worst = max(abs(fids[ge.label][f] - fids[tf_fid.label][f]) / abs(fids[tf_fid.label][f])
                for f in fids[ge.label])
    what = f"{k} × ({n} vs {n_ref}) PNGs, total s"
    rows = []
    for series, note in ((tf_fid, "FID only (tf defaults)"), (tf_all, "same metric set")):
        if series not in timed:
            continue
        base_t = statistics.median(times[series.label])
        check = (f"FID rel diff vs tf ≤ {worst:.1e}" if series is tf_fid
                 else "gan-eval adds 95% CIs, density, coverage")
        rows.append(Row(f"gating series, {what}; tf {note}", f"{base_t:.1f}", f"{ours_t:.1f}",
                        base_t / ours_t, 2.0, check))
    return rows


# -- metric math (benchmarks/metrics_math.py rows) ----------------------------------------------

def rows_metrics(only: set[str], quick: bool, repeats: int) -> list[Row]:
    warnings.simplefilter("ignore", SmallSampleFIDWarning)
    d = 512 if quick else 2048
    found = []
    if "fid" in only:
        found.append(("fid", 1.7, metrics_math.bench_fid(d, repeats)))
    if "kid" in only:
        found.append(("kid", 4.0, metrics_math.bench_kid(1200 if quick else 2000, d, repeats)))
    if "prc" in only:
        found.append(("prc", 2.0, metrics_math.bench_prc(3000 if quick else 10_000, d, repeats)))
    rows = []
    for _, target, r in found:
        assert r.baseline is not None  # these three rows always time torch-fidelity
        rows.append(Row(f"{r.work}, {r.size} (s)", f"{r.baseline:.3f}", f"{r.ours:.3f}",
                        r.baseline / r.ours, target, r.check))
        print(f"  {rows[-1].cells()}", flush=True)
    return rows


# -- dlib-face against the sgemm rate -------------------------------------------------------------

def row_dlib(batch: int, repeats: int) -> Row:
    extractor = build_extractor("dlib-face", device=CPU)
    flops = embed_bench.flops_per_image(load_dlib_face_net(device=CPU))
    images = fx.lfw_faces(batch, size=150, seed=7)  # uint8 chips at the network's size
    with torch.inference_mode():
        extractor(images)  # warm-up (oneDNN primitives)
        sgemm_gflops(CPU, repeats=1, warmup=1)
        rates, seconds = [], []
        for _ in range(repeats):  # the extractor and the matmul alternate
            start = time.perf_counter()
            extractor(images)
            seconds.append(time.perf_counter() - start)
            rates.append(sgemm_gflops(CPU, repeats=1, warmup=0))
    sgemm = statistics.median(rates)
    img_s = batch / statistics.median(seconds)
    achieved = img_s * flops / 1e9
    return Row(f"dlib-face extraction, batch {batch} (GFLOP/s)", f"sgemm {sgemm:.0f}",
               f"{achieved:.0f}", achieved / sgemm, 0.70,
               f"{img_s:.1f} img/s × {flops / 1e9:.3f} GFLOP/img", percent=True)


# -- main -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def workdir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="gan-eval-bench-") as tmp:
            yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows among {','.join(ROWS)}")
    parser.add_argument("--repeats", type=int, default=None,
                        help="A/B rounds per row (default: 3; the CLI series: 2)")
    parser.add_argument("--weights", default=None,
                        help="Inception weights file (default: random calibrated weights written "
                             "to a temp dir; plumbing)")
    parser.add_argument("--workdir", default=None, help="keep the PNG folders and JSONs here")
    parser.add_argument("--same-metric-set", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch-fidelity with --fid --kid --prc --isc in the series "
                             "(default: on with --quick; off in the full run, ≈12 min without "
                             "it)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    if unknown := only - set(ROWS):
        parser.error(f"--only: unknown rows {sorted(unknown)}")
    q = args.quick
    repeats = args.repeats or 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; {load_line()}", flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    with workdir(args.workdir) as work:
        weights = Path(args.weights) if args.weights else None
        if weights is None and only & {"inception", "series"}:
            weights = fx.write_calibrated_weights(work / fx.FIXTURE_FILENAME, seed=0)
            print(f"wrote random calibrated Inception weights (plumbing) to {weights}", flush=True)
        if "inception" in only:
            assert weights is not None
            rows.append(row_inception(weights, 8 if q else 32, repeats))
            print(f"  {rows[-1].cells()}", flush=True)
        if "series" in only:
            assert weights is not None
            k, n, n_ref = (2, 40, 40) if q else (3, 200, 200)
            same = q if args.same_metric_set is None else args.same_metric_set
            rows += row_series(weights, work, k, n, n_ref, args.repeats or 2, same)
            notes.append("series: gan-eval computes FID, KID, precision, recall, density, "
                         "coverage, IS and a 95% bootstrap interval of each per call; "
                         "torch-fidelity's defaults compute FID only, so the first series row "
                         "favours torch-fidelity's work count. gan-eval's CLI has no FID-only "
                         "switch (the nearest is fewer resamples, --bootstrap); "
                         + ("the second row gives torch-fidelity the same metric set."
                            if same else "the same-metric-set baseline was not timed in this "
                            "run (--same-metric-set)."))
        rows += rows_metrics(only, q, repeats)
        if "dlib" in only:
            rows.append(row_dlib(16 if q else 64, repeats if q else 5))
            print(f"  {rows[-1].cells()}", flush=True)

    print(f"\n{load_line()} at the end")
    header = ["row", "baseline", "gan-eval", "ratio", "target", "met?", "check"]
    table = [header] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("baseline = torch-fidelity (img/s, or seconds); for dlib-face the baseline column is the "
          "sgemm rate and the ratio the fraction of it reached. Inception values are plumbing.")
    for note in notes:
        print(f"- {note}")
    failed = [r.name for r in rows if "FAIL" in r.check]
    if failed:
        print(f"FAIL (correctness): {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
