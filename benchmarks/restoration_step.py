"""Images/s of gan-eval's restoration-GAN step vs a plain pix2pix training loop, side by side.

The baseline is ``Pix2PixModel.optimize_parameters`` of junyanz/pytorch-CycleGAN-and-pix2pix
(vanilla GAN loss = BCEWithLogitsLoss against target tensors, λ_L1 = 100, Adam 2e-4, β =
(0.5, 0.999), fp32, NCHW): G's forward once; D's loss on the detached fake pair and the real
pair, halved, backward, step; D frozen (``set_requires_grad(netD, False)``), G's loss = GAN +
λ·L1, backward, step. Both loops train the *same* networks (gan-eval's U-Net and PatchGAN, which
are pix2pix's UnetGenerator and NLayerDiscriminator without dropout and with the residual
output), so the ratio measures the loop: :class:`gan_eval.gan.training.GanStep` with
``conditional=True, l1_weight=100`` (non-saturating loss: the same objective on logits, D's not
halved; fused Adam; channels_last; plus the EMA update the baseline does not do). The random
degradations that make the pairs are not timed (both loops would make them alike).

Method as ``benchmarks/train_step.py``: one process, the same fixed batch, a warm-up, then the
variants alternate (A B A B …) for ``--repeats`` rounds; median time per step; FLOPs from
``FlopCounterMode`` against the measured sgemm rate.

    python benchmarks/restoration_step.py                  # CPU, 32 px, batch 16, width 32
    python benchmarks/restoration_step.py --resolution 64 --width 64 --batch-size 32
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from _rates import sgemm_gflops
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gan_eval.data import open_images
from gan_eval.data.degrade import DEFAULT_RANGES, parse_ranges, random_degradations
from gan_eval.gan.losses import get_loss
from gan_eval.gan.pix2pix import RestorationSpec, default_d_layers
from gan_eval.gan.training import GanStep

LAMBDA_L1 = 100.0


class PlainPix2Pix:
    """One ``optimize_parameters`` call of pix2pix's model, on the given networks."""

    def __init__(self, g: nn.Module, d: nn.Module, device: torch.device) -> None:
        self.netG, self.netD = g.to(device), d.to(device)
        self.criterionGAN = nn.BCEWithLogitsLoss()
        self.criterionL1 = nn.L1Loss()
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def gan_loss(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.tensor(1.0 if target_is_real else 0.0, device=prediction.device)
        return self.criterionGAN(prediction, target.expand_as(prediction))

    @staticmethod
    def set_requires_grad(net: nn.Module, requires_grad: bool) -> None:
        for param in net.parameters():
            param.requires_grad = requires_grad

    def step(self, real_b: torch.Tensor, real_a: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_b = self.netG(real_a)  # forward()
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad()
        pred_fake = self.netD(torch.cat((real_a, fake_b), 1).detach())
        loss_d_fake = self.gan_loss(pred_fake, False)
        pred_real = self.netD(torch.cat((real_a, real_b), 1))
        loss_d_real = self.gan_loss(pred_real, True)
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_d.backward()
        self.optimizer_D.step()
        self.set_requires_grad(self.netD, False)
        self.optimizer_G.zero_grad()
        loss_g_gan = self.gan_loss(self.netD(torch.cat((real_a, fake_b), 1)), True)
        loss_g_l1 = self.criterionL1(fake_b, real_b) * LAMBDA_L1
        (loss_g_gan + loss_g_l1).backward()
        self.optimizer_G.step()
        return {"d": loss_d.detach(), "g_gan": loss_g_gan.detach(),
                "l1": loss_g_l1.detach() / LAMBDA_L1}


def networks(spec: RestorationSpec, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return spec.build()


def ours(spec: RestorationSpec, device: torch.device, *, channels_last: bool) -> GanStep:
    g, d = networks(spec)
    return GanStep(g, d, get_loss("ns"), device=device, channels_last=channels_last,
                   conditional=True, l1_weight=LAMBDA_L1)


def check_same_objective(spec: RestorationSpec, device: torch.device, clean: torch.Tensor,
                         degraded: torch.Tensor) -> float:
    """Same weights, same pair, three steps of each loop: the largest relative difference of
    G's adversarial loss, the L1 and D's loss (pix2pix halves D's; compared ×2)."""
    plain = PlainPix2Pix(*networks(spec), device)
    candidate = ours(spec, device, channels_last=False)
    worst = 0.0
    for step in range(3):
        a = plain.step(clean, degraded)
        b = candidate(clean, degraded, step=step)
        assert b.g_loss is not None and b.l1 is not None
        for x, y in ((2 * a["d"], b.d_loss), (a["g_gan"], b.g_loss), (a["l1"], b.l1)):
            worst = max(worst, abs(float(x) - float(y)) / abs(float(x)))
    return worst


@dataclass
class Variant:
    name: str
    step: Callable[[torch.Tensor, torch.Tensor], object]
    times: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7, help="A B A B rounds (median)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed sample")
    args = parser.parse_args()
    device = torch.device(args.device)
    spec = RestorationSpec(resolution=args.resolution, ngf=args.width, ndf=args.width,
                           d_layers=default_d_layers(args.resolution))
    faces = open_images("builtin:lfw-train", resolution=args.resolution).load()
    faces = faces[torch.arange(args.batch_size) % faces.shape[0]]
    degraded, _ = random_degradations(faces, parse_ranges(DEFAULT_RANGES),
                                      torch.Generator().manual_seed(0))
    clean = (faces.float() / 127.5 - 1).to(device)
    degraded_f = (degraded.float() / 127.5 - 1).to(device)

    rel = check_same_objective(spec, device, clean, degraded_f)
    print(f"check: D, G-adversarial and L1 losses over 3 steps, plain vs ours (same weights, "
          f"fp32): max rel. diff {rel:.1e}")
    if not rel < 1e-4:
        raise SystemExit("the two loops do not compute the same objective")

    plain = PlainPix2Pix(*networks(spec), device)
    mine = ours(spec, device, channels_last=False)
    mine_cl = ours(spec, device, channels_last=True)
    variants = [Variant("plain pix2pix loop fp32", plain.step, []),
                Variant("gan-eval fp32 NCHW", lambda r, x: mine(r, x), []),
                Variant("gan-eval fp32 channels_last", lambda r, x: mine_cl(r, x), [])]

    def run(variant: Variant, n: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            variant.step(clean, degraded_f)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / n

    for variant in variants:
        run(variant, 2)
    for _ in range(args.repeats):
        for variant in variants:  # A B A B: drifts in machine load hit every variant alike
            variant.times.append(run(variant, args.steps))

    flops = {}
    for variant in variants:
        counter = FlopCounterMode(display=False)
        with counter:
            variant.step(clean, degraded_f)
        flops[variant.name] = counter.get_total_flops()
    rate = sgemm_gflops(device, size=2048 if device.type == "cpu" else 8192, precision="fp32",
                        repeats=5, warmup=2) * 1e9
    base = statistics.median(variants[0].times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"\nrestoration GAN {args.resolution} px, width {args.width}, batch {args.batch_size}, "
          f"{name}, torch {torch.__version__}; median of {args.repeats} A/B rounds × "
          f"{args.steps} steps")
    print(f"fp32 matmul rate measured here: {rate / 1e12:.3f} TFLOP/s")
    header = (f"{'variant':30s} {'s/step':>9s} {'img/s':>9s} {'GFLOP/step':>11s} "
              f"{'% matmul':>9s} {'vs plain':>9s}")
    print(header)
    print("-" * len(header))
    for v in variants:
        t = statistics.median(v.times)
        print(f"{v.name:30s} {t:9.4f} {args.batch_size / t:9.1f} {flops[v.name] / 1e9:11.2f} "
              f"{100 * flops[v.name] / t / rate:8.1f}% {base / t:8.2f}×")


if __name__ == "__main__":
    main()
