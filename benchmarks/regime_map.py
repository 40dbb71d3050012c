"""The regime map of issue 23: coverage and width of every interval over feature models, D and n.

Each cell draws ``--trials`` generated sets (reference held fixed) and, for FID with both sets
redrawn, as many draws of both, from a simulated feature model
(:func:`gan_eval.metrics.simulation.model_pair`) and runs
:func:`gan_eval.metrics.coverage.coverage_table` (the intervals as ``gan-eval evaluate``
computes them). One line per (model, D, n, interval): coverage, its binomial 95 % interval,
width ratio, and whether gan-eval reports the estimate there (:mod:`gan_eval.metrics.regimes`).
docs/regimes.md holds the tables this printed.

    OMP_NUM_THREADS=1 python benchmarks/regime_map.py --cell relu:128:1024 --trials 200
    python benchmarks/regime_map.py --cell relu:2048:1000 --intervals fid,fid_infinity --trials 20

A cell is ``MODEL:D:N`` (reference ``max(2000, 2.5·D)`` rows unless ``:N_REF`` follows).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from gan_eval.metrics.coverage import INTERVALS, coverage_table
from gan_eval.metrics.simulation import model_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", action="append", required=True, help="MODEL:D:N[:N_REF]")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--intervals", default=",".join(INTERVALS))
    parser.add_argument("--json", help="append one JSON line per row to this file")
    args = parser.parse_args()
    for cell in args.cell:
        kind, d_text, n_text, *rest = cell.split(":")
        d, n = int(d_text), int(n_text)
        n_ref = int(rest[0]) if rest else max(2000, round(2.5 * d))
        generated, reference = model_pair(kind, d)
        start = time.time()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + time.process_time()
        rows = coverage_table(generated, reference, n=n, n_reference=n_ref, trials=args.trials,
                              workers=args.workers, intervals=args.intervals.split(","))
        seconds = time.time() - start
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + time.process_time() - cpu0
        print(f"# {cell}: {seconds:.0f} s wall, {cpu:.0f} s CPU (workers included)", flush=True)
        for r in rows:
            lo, hi = r.coverage_ci
            print(f"{kind:8s} D={d:5d} n={n:6d} n_ref={n_ref:5d} {r.metric:14s} {r.estimand:13s} "
                  f"coverage {r.coverage:.3f} [{lo:.3f}, {hi:.3f}] width {r.width_ratio:.2f} "
                  f"trials {r.trials:4d} {'reported' if r.reported else 'refused'}", flush=True)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps({"model": kind, "d": d, "n": n, "n_reference": n_ref,
                                          "seconds": seconds, "cpu_seconds": cpu,
                                          **r.to_json()}) + "\n")


if __name__ == "__main__":
    main()
