"""Wall time of a PGD-k ε sweep on the dlib face network against its k × (forward + backward) floor.

The workload is what ``gan-eval attack --attack pgd`` runs on one batch: foolbox's ``LinfPGD``
(k steps, random start) at each of several ε on a batch of 25×25 LFW faces, attacking dodging
through the 2-logit verification view of the recognizer wrapped once as a foolbox model
(``gan_eval.robustness``). Variants, alternated (A B C D A B C D ...) after a warm-up,
same inputs, medians:

- ``floor``: k × (forward + backward) per ε in plain torch on the same module, head and loss
  (cross-entropy of the 2 logits, gradient with respect to the input only): the work PGD cannot
  avoid.
- ``gan-eval sweep``: :func:`gan_eval.robustness.sweep.run_attack` (foolbox's LinfPGD through
  our wrapped model and criterion, seeded), i.e. what :func:`gan_eval.robustness.attack` does.
- ``foolbox direct``: ``LinfPGD()(model, x, criterion, epsilons=...)`` on the same wrapped model,
  without our batching/seeding layer.
- ``foolbox untuned``: the same call on a freshly wrapped network whose parameters require
  gradients and that runs in contiguous NCHW (what a plain ``PyTorchModel(net)`` of a network
  built for training gets): autograd then also computes every weight gradient.

Besides the k forward+backward passes per ε, foolbox evaluates the criterion once per ε (one
forward pass) and does a few elementwise ops per step; the expected ratio is therefore
≈ 1 + fwd / (k · (fwd + bwd)).

Usage: python benchmarks/attack.py [--steps 10] [--batch 16] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import foolbox as fb
import torch
import torch.nn.functional as F

from gan_eval.features.dlib_face import (
    DlibFaceNet,
    default_weights_path,
    embed_faces,
    load_dlib_face_net,
)
from gan_eval.features.dlib_format import read_dlib_net
from gan_eval.robustness import ATTACKS, AttackOptions, Dodging, recognizer_model
from gan_eval.robustness.models import MATCH, FaceEmbedder
from gan_eval.robustness.sweep import run_attack
from gan_eval.sources import open_source

EPSILONS = (2 / 255, 4 / 255, 8 / 255)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    images = open_source("builtin:lfw-subset").read(range(args.batch))
    x = images.to(device).float() / 255
    clean = embed_faces(images, device=device)
    embedder = recognizer_model(device)
    criterion = Dodging(clean)
    model, labels = criterion.as_classification(embedder)
    options = AttackOptions(steps=args.steps)
    pgd = ATTACKS["pgd"].build(options)
    module = FaceEmbedder(load_dlib_face_net(device=device))  # the recognizer's (cached) net
    untuned_net = DlibFaceNet(read_dlib_net(str(default_weights_path())), channels_last=False)
    untuned_net.requires_grad_(True)
    untuned = fb.PyTorchModel(FaceEmbedder(untuned_net).requires_grad_(True), bounds=(0, 1),
                              device=device)
    untuned_model, untuned_labels = criterion.as_classification(untuned)
    target = torch.full((x.shape[0],), MATCH, dtype=torch.long, device=device)

    def floor() -> None:
        for _ in EPSILONS:
            for _ in range(args.steps):
                xi = x.clone().requires_grad_()
                d = torch.linalg.vector_norm(module(xi) - clean, dim=-1) - 0.6
                loss = F.cross_entropy(torch.stack([d, -d], dim=1), target, reduction="sum")
                loss.backward()

    def ours() -> None:
        run_attack(pgd, x, lambda rows: (model, labels), EPSILONS, minimization=False,
                   batch_size=args.batch, seed=0, purpose="benchmark")

    def direct() -> None:
        pgd(model, x, labels, epsilons=list(EPSILONS))

    def plain() -> None:
        pgd(untuned_model, x, untuned_labels, epsilons=list(EPSILONS))

    def forward() -> None:
        with torch.no_grad():
            model(x)

    variants: dict[str, Callable[[], None]] = {
        "one forward": forward,
        "floor k×(fwd+bwd)": floor,
        "gan-eval sweep": ours,
        "foolbox direct": direct,
        "foolbox untuned": plain,
    }
    # warm-up: one PGD step at one ε through each path (allocator, kernels, autograd graph)
    warm = ATTACKS["pgd"].build(AttackOptions(steps=1))
    for m, c in ((model, labels), (untuned_model, untuned_labels)):
        warm(m, x, c, epsilons=[EPSILONS[0]])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["floor k×(fwd+bwd)"])
    print(f"PGD-{args.steps} sweep, {len(EPSILONS)} ε, batch {args.batch} (25×25 faces → 150×150),"
          f" dlib face net, {device}, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")
    print(f"{'variant':<22}{'sweep s':>10}{'per ε s':>10}{'img·ε/s':>10}{'× floor':>9}")
    for name, values in times.items():
        if name == "one forward":
            continue
        t = statistics.median(values)
        rate = args.batch * len(EPSILONS) / t
        print(f"{name:<22}{t:>10.3f}{t / len(EPSILONS):>10.3f}{rate:>10.2f}{t / base:>9.3f}")
    fwd = statistics.median(times["one forward"])
    fwd_bwd = base / (len(EPSILONS) * args.steps)
    print(f"forward {fwd:.3f} s, forward+backward {fwd_bwd:.3f} s per batch: foolbox's one "
          f"criterion forward per ε predicts × {1 + fwd / (args.steps * fwd_bwd):.3f}")


if __name__ == "__main__":
    main()
