"""Images/s of gan-eval's DCGAN training step vs the plain PyTorch DCGAN example, side by side.

The baseline is the loop of pytorch/examples ``dcgan/main.py``: nz = 100, ngf = ndf = 64, 64 px,
3 channels, BCELoss on a sigmoid D, Adam (2e-4, β = (0.5, 0.999)), fp32, NCHW; two D backward
passes (real, fake) and a G backward that also computes D's weight gradients. The candidate is
:class:`gan_eval.gan.training.GanStep` on the same shapes (non-saturating loss, which is the same
objective written with softplus on logits; plus the EMA update the baseline does not do).

Method (benchmarks/README conventions in PERF.md): one process, the same fixed real batch, a
warm-up, then the variants alternate (A B A B …) for ``--repeats`` rounds; each number is the
median time per step. FLOPs per step come from ``torch.utils.flop_counter.FlopCounterMode``
(matmul/conv FLOPs), and are divided by the machine's matmul rate measured here (fp32 sgemm;
TF32 / bf16 rates for those variants on GPU) to say how far from the limit a number is.

    python benchmarks/train_step.py                      # CPU: plain fp32 vs ours (NCHW, NHWC)
    python benchmarks/train_step.py --device cuda        # + TF32/channels_last, bf16, CUDA graphs
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

from gan_eval.gan.losses import get_loss
from gan_eval.gan.models import Discriminator, Generator, ModelSpec
from gan_eval.gan.training import GanStep

NZ, NGF, NDF, NC, RES = 100, 64, 64, 3, 64


# -- the baseline: pytorch/examples dcgan/main.py, verbatim in substance --------------------------

class PlainGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class PlainDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class PlainLoop:
    """One iteration of the example's training loop (its inner ``for`` body)."""

    def __init__(self, device: torch.device, batch: int, channels_last: bool = False) -> None:
        self.device = device
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.netG = PlainGenerator().to(device).to(memory_format=self.fmt)
        self.netG.apply(weights_init)
        self.netD = PlainDiscriminator().to(device).to(memory_format=self.fmt)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.real_label, self.fake_label = 1.0, 0.0
        self.batch = batch

    def step(self, real: torch.Tensor, noise: torch.Tensor) -> float | torch.Tensor:
        real_cpu = real.contiguous(memory_format=self.fmt)
        self.netD.zero_grad()
        label = torch.full((self.batch,), self.real_label, dtype=torch.float, device=self.device)
        output = self.netD(real_cpu).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        fake = self.netG(noise)
        label.fill_(self.fake_label)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        self.netG.zero_grad()
        label.fill_(self.real_label)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        return errD.detach()


# -- gan-eval's step ----------------------------------------------------------------------------

def ours(device: torch.device, *, channels_last: bool, bf16: bool,
         cuda_graphs: bool = False) -> GanStep:
    spec = ModelSpec(resolution=RES, channels=NC, nz=NZ, ngf=NGF, ndf=NDF)
    return GanStep(Generator(spec), Discriminator(spec), get_loss("ns"), device=device,
                   channels_last=channels_last, bf16=bf16, cuda_graphs=cuda_graphs)


@dataclass
class Variant:
    name: str
    step: Callable[[torch.Tensor, torch.Tensor], object]
    precision: str  # fp32 | tf32 | bf16: which matmul rate it is compared with
    times: list[float]
    flops_as: str | None = None  # a replayed CUDA graph hides its ops: count this variant's


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, precision: str) -> float:
    """Measured FLOP/s of a large square matmul at ``precision`` (median of 5 after warm-up)."""
    n = 2048 if device.type == "cpu" else 8192
    return sgemm_gflops(device, size=n, precision=precision, repeats=5, warmup=2) * 1e9


def count_flops(variant: Variant, real: torch.Tensor, noise: torch.Tensor) -> int:
    """Matmul/conv FLOPs of one step (run under the counter: not for a graphed variant)."""
    counter = FlopCounterMode(display=False)
    with counter:
        variant.step(real, noise)
    return int(counter.get_total_flops())


def check_same_objective(device: torch.device, batch: int) -> float:
    """Same weights and inputs: D's loss at the first step of both loops (relative difference)."""
    set_tf32(False)
    torch.manual_seed(0)
    plain = PlainLoop(device, batch)
    candidate = ours(device, channels_last=False, bf16=False)
    candidate.g.load_state_dict(plain.netG.state_dict())
    candidate.d.load_state_dict(plain.netD.state_dict())  # same keys: Sigmoid has no weights
    real = torch.rand(batch, NC, RES, RES, device=device) * 2 - 1
    noise = torch.randn(batch, NZ, 1, 1, device=device)
    a = float(plain.step(real, noise))
    b = float(candidate(real, noise).d_loss)
    return abs(a - b) / abs(a)


def check_graphs_match(device: torch.device, batch: int, steps: int = 8) -> float:
    """Same weights and inputs: largest relative D-loss difference, eager vs CUDA-graph steps.

    ``steps`` covers the eager warm-up, the capture and several replays, so a replay that reused
    stale inputs or skipped an update would show here.
    """
    set_tf32(False)
    torch.manual_seed(0)
    eager = ours(device, channels_last=True, bf16=False)
    graphed = ours(device, channels_last=True, bf16=False, cuda_graphs=True)
    graphed.g.load_state_dict(eager.g.state_dict())
    graphed.d.load_state_dict(eager.d.state_dict())
    worst = 0.0
    for step in range(steps):
        real = torch.rand(batch, NC, RES, RES, device=device) * 2 - 1
        noise = torch.randn(batch, NZ, 1, 1, device=device)
        a = float(eager(real, noise, step=step).d_loss)
        b = float(graphed(real, noise, step=step).d_loss)
        worst = max(worst, abs(a - b) / abs(a))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="A B A B rounds (median)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per timed sample (default: 1 on CPU, 20 on GPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up steps per variant (default: 1 on CPU, 10 on GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (20 if gpu else 1)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    batch = args.batch_size
    if gpu:
        torch.backends.cudnn.benchmark = True

    rel = check_same_objective(device, batch)
    print(f"check: first-step D loss, plain vs ours (same weights, fp32): rel. diff {rel:.1e}")
    if not rel < 1e-4:
        raise SystemExit("the two loops do not compute the same objective")
    if gpu:
        rel = check_graphs_match(device, batch)
        print(f"check: D loss over 8 steps, eager vs CUDA graphs (fp32): max rel. diff {rel:.1e}")
        if not rel < 1e-3:
            raise SystemExit("the CUDA-graph step does not train like the eager step")

    torch.manual_seed(0)
    plain = PlainLoop(device, batch)
    mine = ours(device, channels_last=False, bf16=False)
    variants = [Variant("plain PyTorch DCGAN fp32", plain.step, "fp32", []),
                Variant("gan-eval fp32 NCHW", lambda r, z: mine(r, z), "fp32", [])]
    if not gpu:  # the training default on CPU too (oneDNN's NHWC convolutions are faster)
        mine_cl = ours(device, channels_last=True, bf16=False)
        variants.append(Variant("gan-eval fp32 channels_last", lambda r, z: mine_cl(r, z), "fp32",
                                []))
    if gpu:
        plain_cl = PlainLoop(device, batch, channels_last=True)
        mine_cl = ours(device, channels_last=True, bf16=False)
        mine_bf16 = ours(device, channels_last=True, bf16=True)
        graphed = ours(device, channels_last=True, bf16=False, cuda_graphs=True)
        graphed_bf16 = ours(device, channels_last=True, bf16=True, cuda_graphs=True)
        variants += [
            Variant("plain TF32+channels_last", plain_cl.step, "tf32", []),
            Variant("gan-eval TF32+channels_last", lambda r, z: mine_cl(r, z), "tf32", []),
            Variant("gan-eval bf16+channels_last", lambda r, z: mine_bf16(r, z), "bf16", []),
            Variant("gan-eval TF32+CL+CUDA graphs", lambda r, z: graphed(r, z), "tf32", [],
                    flops_as="gan-eval TF32+channels_last"),
            Variant("gan-eval bf16+CL+CUDA graphs", lambda r, z: graphed_bf16(r, z), "bf16", [],
                    flops_as="gan-eval bf16+channels_last"),
        ]
    real = torch.rand(batch, NC, RES, RES, device=device) * 2 - 1
    noise = torch.randn(batch, NZ, 1, 1, device=device)

    def run(variant: Variant, n: int) -> float:
        set_tf32(variant.precision == "tf32")
        sync(device)
        start = time.perf_counter()
        for _ in range(n):
            variant.step(real, noise)
        sync(device)
        return (time.perf_counter() - start) / n

    for variant in variants:
        run(variant, warmup)
    for _ in range(args.repeats):
        for variant in variants:  # A B A B: drifts in machine load hit every variant alike
            variant.times.append(run(variant, steps))

    flops = {v.name: count_flops(v, real, noise) for v in variants if v.flops_as is None}
    flops |= {v.name: flops[v.flops_as] for v in variants if v.flops_as is not None}
    rates = {p: matmul_rate(device, p) for p in {v.precision for v in variants}}
    base = statistics.median(variants[0].times)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nDCGAN 64 px, batch {batch}, {name}, torch {torch.__version__}; "
          f"median of {args.repeats} A/B rounds × {steps} step(s)")
    print("matmul rate measured here: "
          + ", ".join(f"{p} {r / 1e12:.3f} TFLOP/s" for p, r in sorted(rates.items())))
    header = (f"{'variant':30s} {'s/step':>9s} {'img/s':>9s} {'GFLOP/step':>11s} "
              f"{'TFLOP/s':>8s} {'% matmul':>9s} {'vs plain':>9s}")
    print(header)
    print("-" * len(header))
    for v in variants:
        t = statistics.median(v.times)
        achieved = flops[v.name] / t
        print(f"{v.name:30s} {t:9.4f} {batch / t:9.1f} {flops[v.name] / 1e9:11.1f} "
              f"{achieved / 1e12:8.3f} {100 * achieved / rates[v.precision]:8.1f}% "
              f"{base / t:8.2f}×")


if __name__ == "__main__":
    main()
