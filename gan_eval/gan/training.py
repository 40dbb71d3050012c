"""The GAN training loop: one readable loop over :class:`GanStep`, with checkpoints and resume.

Two tasks share it (``TrainConfig.task``, :mod:`gan_eval.gan.tasks` holds what differs):
``generation``, a DCGAN that makes faces from latents, and ``restoration``, a pix2pix-style
conditional GAN (U-Net generator, PatchGAN discriminator on (degraded, image) pairs,
adversarial + λ·L1 loss, :mod:`gan_eval.gan.pix2pix`) trained on pairs made on the fly: each
training face degraded at random (:mod:`gan_eval.data.degrade`) → the face.

A run folder (``TrainConfig.out``) ends up holding::

    checkpoint/      checkpoint.json + state-XXXXXXXX.safetensors (see gan_eval.gan.checkpoint)
    samples/         step-XXXXXX.png: an 8×8 grid of the EMA generator on fixed latents, or
                     (restoration) rows degraded / restored / clean of 8 fixed training faces
    metrics.jsonl    one JSON object per step: step, d_loss, g_loss (the adversarial term; null
                     on steps without a G update), gp (WGAN-GP), l1 (restoration: mean |G(x̃) − x|
                     in [-1, 1] units), img_per_s, time_s

Randomness is counter-based (:func:`gan_eval.seeding.derive_seed`): the data order of epoch e is a
permutation seeded by (seed, e); the flips, latents or degradations, and penalty mix weights of
step s on rank r come from a generator seeded by (seed, s, r). A resumed run therefore replays
exactly what an uninterrupted one does; on CPU, N steps + ``resume`` + N steps give bit-identical
weights to 2N steps in one run (tested for both tasks).

Distributed (``torchrun --nproc-per-node K -m gan_eval train …``): G and D are wrapped in
DistributedDataParallel (NCCL on GPU, gloo on CPU). ``batch_size`` is the *global* batch: each of
the K ranks takes an equal slice of the same global batch (so the data order and the optimizer's
view of a step do not depend on K), which requires K to divide it. BatchNorm statistics are
per rank (over batch_size / K images) unless ``sync_bn`` (GPU only) turns them into
SyncBatchNorm; DDP broadcasts rank 0's running statistics at each forward, so the saved buffers
are rank 0's. Rank 0 alone writes checkpoints, samples and metrics.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_eval import distributed as dist
from gan_eval.data import open_images
from gan_eval.data.degrade import DEFAULT_RANGES, SeverityRange, format_ranges, parse_ranges
from gan_eval.data.pictures import write_png
from gan_eval.devices import resolve_device
from gan_eval.errors import GanEvalError, InputError
from gan_eval.fileio import atomic_write_text
from gan_eval.gan.checkpoint import (
    ADAM_STATE_NAMES,
    CHECKPOINT_DIR,
    JSON_NAME,
    MODULE_GROUPS,
    OPTIMIZER_GROUPS,
    Checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from gan_eval.gan.cuda_graph import GraphedStep
from gan_eval.gan.losses import GanLoss, LossName, get_loss, gradient_penalty
from gan_eval.gan.models import MAX_NZ, MAX_WIDTH, RESOLUTIONS, DNorm, ModelSpec
from gan_eval.gan.pix2pix import RestorationSpec, default_d_layers
from gan_eval.gan.task_names import TaskName
from gan_eval.gan.tasks import GenerationTask, RestorationTask, to_unit_range
from gan_eval.seeding import derive_seed

DEFAULT_L1_WEIGHT = 100.0
"""λ of the restoration GAN's L1 term (pix2pix)."""

QUICK_RESTORATION: dict[str, Any] = {
    "task": TaskName.RESTORATION, "resolution": 32, "steps": 400, "batch_size": 16,
    "width": 16, "lr": 2e-3,
}
"""``TrainConfig`` options of a restoration GAN that trains in well under a minute on 2 CPU
cores and beats no restoration on faces it never saw (``tests/test_restoration_quality.py``:
trained on ``builtin:lfw-train``, measured on ``builtin:lfw-heldout``). The defaults (Adam 2e-4,
width 32, batch 64: pix2pix's and the DCGAN's) learn too slowly for a few hundred steps; on the
80 training faces, longer runs overfit: with these options the held-out PSNR gain over the
degraded input was +0.36 dB at 250 steps, +0.42 at 400, +0.25 at 600 and −0.31 at 1,200
(measured before the downsampled observation was rounded to uint8; +0.30 at 400 since)."""


class TrainingDivergedError(InputError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept.

    An :class:`InputError` (exit 2): the usual cause is a hyperparameter the user chose (--lr).
    """


class TrainingInterrupted(GanEvalError):
    """SIGINT or SIGTERM stopped training; exit code 128 + the signal number (130, 143).

    After the first signal the current step finishes and a checkpoint of it is committed (the
    run continues with ``--resume``); a second signal abandons a checkpoint write in progress
    (its temporary file is removed, the previous checkpoint stays the committed one).
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _StopFlag:
    """The first SIGINT/SIGTERM received during training (``signum``), None before any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:  # a second signal: stop now, whatever is being written
            raise TrainingInterrupted(
                f"training abandoned by a second {signal.Signals(signum).name}; the last "
                "committed checkpoint is kept (continue with --resume)", signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[_StopFlag]:
    """Turn SIGINT/SIGTERM into a request to stop after the current step (main thread only).

    The previous handlers are restored on exit. Under torchrun (``enabled`` False) the default
    handlers stay: ranks that stopped at different steps would wait for each other forever.
    """
    flag = _StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.signal(sig, flag.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of one training run. Defaults train faces at 32 px in ~1-2 minutes on 2 CPU cores."""

    data: str  # DATA string (folder, .zip, .npz/.npy, builtin:lfw-subset); see gan_eval.data
    out: Path  # run folder: checkpoint/, samples/, metrics.jsonl
    task: TaskName = TaskName.GENERATION  # generation (DCGAN) | restoration (pix2pix-style)
    resolution: int = 32  # square image size: 32, 64 or 128 (data is resized to it)
    steps: int = 300  # total training steps (batches); with resume, the total to reach
    batch_size: int = 64  # global batch; under torchrun each of K ranks takes batch_size / K
    loss: LossName = LossName.NS  # ns | hinge | wgan-gp (see gan_eval.gan.losses)
    l1_weight: float | None = None  # restoration: λ of the L1 term; None: 100 (pix2pix)
    degradations: str | None = None  # restoration: name=low:high,…; None: degrade.DEFAULT_RANGES
    seed: int = 0  # seeds model init, data order, latents, flips
    resume: bool = False  # continue from out/checkpoint instead of starting fresh
    width: int | None = None  # ngf = ndf; None: 32 at 32 px (fast on CPU), 64 above (DCGAN paper)
    nz: int = 100  # latent size (DCGAN paper; generation only)
    channels: int | None = None  # 1 or 3; None: 1 when every image is gray, else 3 (restoration: 3)
    spectral_norm: bool = False  # spectral norm on D's convs (then D has no normalization layers)
    lr: float = 2e-4  # Adam learning rate of G and D (DCGAN paper)
    beta1: float = 0.5  # Adam β1 (DCGAN paper: 0.9 oscillates)
    beta2: float = 0.999  # Adam β2
    ema_decay: float = 0.999  # EMA of G's weights; ramped up as min(decay, (1+s)/(10+s))
    flip: bool = True  # random horizontal flips of real images (faces are ~symmetric)
    sample_every: int = 100  # write samples/step-XXXXXX.png every this many steps (and at the end)
    checkpoint_every: int = 500  # write the checkpoint every this many steps (and at the end)
    log_every: int = 10  # read losses back from the device (NaN check, progress bar) this often
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N
    channels_last: bool = True  # NHWC tensors: faster convs on GPU and CPU (oneDNN); see PERF
    tf32: bool = True  # TF32 matmul/conv on GPU (ignored on CPU)
    bf16: bool = False  # bf16 autocast of forward passes on GPU (ignored on CPU)
    cuda_graphs: bool = False  # replay each step as a CUDA graph (GPU without torchrun only)
    sync_bn: bool = False  # SyncBatchNorm across torchrun ranks (GPU only)
    threads: int | None = None  # CPU intra-op threads; None: torch's current setting
    quiet: bool = False  # no progress bar

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        try:
            object.__setattr__(self, "task", TaskName(self.task))
        except ValueError:
            choices = ", ".join(t.value for t in TaskName)
            raise InputError(
                f"--task {self.task!r}: unknown task; choose one of {choices}"
            ) from None
        try:
            object.__setattr__(self, "loss", LossName(self.loss))
        except ValueError:
            choices = ", ".join(n.value for n in LossName)
            raise InputError(
                f"--loss {self.loss!r}: unknown loss; choose one of {choices}"
            ) from None

    @property
    def model_width(self) -> int:
        """ngf = ndf after applying the resolution-dependent default."""
        if self.width is not None:
            return self.width
        return 32 if self.resolution <= 32 else 64

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (paths and enums as strings) for checkpoint.json."""
        out = dataclasses.asdict(self)
        out["out"] = str(self.out)
        out["task"] = self.task.value
        out["loss"] = self.loss.value
        return out

    @classmethod
    def from_json(cls, stored: dict[str, Any], /, **overrides: Any) -> TrainConfig:
        """Inverse of :meth:`to_json`, with ``overrides`` applied (unknown keys are ignored).

        ``stored`` is positional-only, so that every field (``data`` included) can be overridden
        by keyword. Stored values are type-checked (they come from a file): a wrong type raises
        ValueError naming the field; the caller names the file.
        """
        if not isinstance(stored, dict):
            raise ValueError(f"expected an object of options, got {type(stored).__name__}")
        known = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        values = {k: _check_stored(k, v, known[k]) for k, v in stored.items() if k in known}
        values.update(overrides)
        return cls(**values)


def _check_stored(name: str, value: Any, annotation: str) -> Any:
    """``value`` of stored option ``name`` converted to its field's type, or ValueError."""
    optional = annotation.endswith("| None")
    kind = annotation.removesuffix("| None").strip()
    if value is None:
        if optional:
            return None
        raise ValueError(f"field {name!r} is null; expected {kind}")
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "Path": isinstance(value, str),
        "LossName": isinstance(value, str),
        "TaskName": isinstance(value, str),
    }.get(kind, True)
    if not ok:
        expected = "a finite number" if kind == "float" else kind
        raise ValueError(f"field {name!r} is {value!r}; expected {expected}")
    return float(value) if kind == "float" else value


# Options a resumed run may change; every other option must equal the checkpoint's.
RESUME_MAY_CHANGE = frozenset({
    "data", "out", "steps", "resume", "sample_every", "checkpoint_every", "log_every", "device",
    "channels_last", "tf32", "bf16", "cuda_graphs", "sync_bn", "quiet", "threads",
})

_OPTION = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)}


def validate_config(cfg: TrainConfig) -> None:
    """Raise :class:`InputError` naming the option for any value that cannot be trained with."""
    if cfg.resolution not in RESOLUTIONS:
        raise InputError(
            f"--resolution {cfg.resolution} is not supported; choose one of "
            f"{', '.join(map(str, RESOLUTIONS))}"
        )
    positive = {"steps": cfg.steps, "batch_size": cfg.batch_size, "nz": cfg.nz,
                "sample_every": cfg.sample_every, "checkpoint_every": cfg.checkpoint_every,
                "log_every": cfg.log_every, "width": cfg.model_width}
    for name, value in positive.items():
        if value < 1:
            raise InputError(f"{_OPTION[name]} {value}: expected an integer >= 1")
    for name, top in (("nz", MAX_NZ), ("width", MAX_WIDTH)):
        value = cfg.model_width if name == "width" else cfg.nz
        if value > top:
            raise InputError(f"{_OPTION[name]} {value}: expected an integer <= {top}")
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"--threads {cfg.threads}: expected an integer >= 1")
    if cfg.channels not in (None, 1, 3):
        raise InputError(f"--channels {cfg.channels}: expected 1 or 3")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise InputError(f"--lr {cfg.lr}: expected a positive learning rate")
    for name in ("beta1", "beta2", "ema_decay"):
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise InputError(f"{_OPTION[name]} {value}: expected a number in [0, 1)")
    if cfg.task is TaskName.GENERATION:
        for name in ("l1_weight", "degradations"):
            if getattr(cfg, name) is not None:
                raise InputError(f"{_OPTION[name]} applies to --task restoration only")
        return
    if cfg.channels not in (None, 3):
        raise InputError(f"--channels {cfg.channels}: a restoration model maps 3-channel images "
                         "to 3-channel images (gray data is three equal channels); leave "
                         "--channels out")
    if cfg.l1_weight is not None and not (cfg.l1_weight >= 0 and math.isfinite(cfg.l1_weight)):
        raise InputError(f"--l1-weight {cfg.l1_weight}: expected a number >= 0")
    degradation_ranges(cfg)


def degradation_ranges(cfg: TrainConfig) -> tuple[SeverityRange, ...]:
    """The degradations a restoration run trains on (``--degradations`` parsed, or the default);
    :class:`InputError` naming the option when the text is not valid."""
    text = DEFAULT_RANGES if cfg.degradations is None else cfg.degradations
    try:
        return parse_ranges(text)
    except ValueError as exc:
        raise InputError(f"--degradations {text!r}: {exc}") from None


def resolved_config(cfg: TrainConfig, *, gray: bool) -> TrainConfig:
    """``cfg`` with every default that depends on the data or the task made explicit (what the
    checkpoint stores): channels (1 for gray data, else 3; always 3 for restoration), width,
    and for restoration the L1 weight and the degradations in canonical form."""
    if cfg.task is TaskName.GENERATION:
        channels = cfg.channels or (1 if gray else 3)
        return dataclasses.replace(cfg, channels=channels, width=cfg.model_width)
    return dataclasses.replace(
        cfg, channels=3, width=cfg.model_width,
        l1_weight=DEFAULT_L1_WEIGHT if cfg.l1_weight is None else float(cfg.l1_weight),
        degradations=format_ranges(degradation_ranges(cfg)))


def model_spec(cfg: TrainConfig, loss: GanLoss) -> ModelSpec | RestorationSpec:
    """The networks' spec for a resolved ``cfg``; :class:`InputError` naming the options when
    the models would be too large."""
    d_norm: DNorm = "none" if cfg.spectral_norm else (
        "layer" if loss.needs_per_sample_d else "batch")
    try:
        if cfg.task is TaskName.RESTORATION:
            return RestorationSpec(resolution=cfg.resolution, ngf=cfg.model_width,
                                   ndf=cfg.model_width, d_layers=default_d_layers(cfg.resolution),
                                   d_norm=d_norm, spectral_norm=cfg.spectral_norm)
        assert cfg.channels is not None
        return ModelSpec(resolution=cfg.resolution, channels=cfg.channels, nz=cfg.nz,
                         ngf=cfg.model_width, ndf=cfg.model_width,
                         spectral_norm=cfg.spectral_norm, d_norm=d_norm)
    except ValueError as exc:  # the size bound: the other fields were validated before
        if cfg.task is TaskName.RESTORATION:
            raise InputError(f"--width {cfg.model_width}: {exc}") from exc
        raise InputError(f"--width {cfg.model_width} / --nz {cfg.nz}: {exc}") from exc


def config_for_resume(run_dir: Path, /, **overrides: Any) -> TrainConfig:
    """The configuration stored in ``run_dir``'s checkpoint, with ``overrides`` (non-None) applied.

    The CLI's ``--resume`` uses it so that options not repeated on the command line keep their
    checkpointed values; :func:`train` then refuses overrides outside :data:`RESUME_MAY_CHANGE`.
    """
    checkpoint = load_checkpoint(Path(run_dir) / CHECKPOINT_DIR, groups=(), task=None)
    given = {"out": Path(run_dir)} | {k: v for k, v in overrides.items() if v is not None}
    given["resume"] = True
    if "task" in given and str(given["task"]) != checkpoint.task.value:
        # refused before the stored options are checked against a task they were not made for
        raise InputError(f"--resume: options differ from {checkpoint.json_path}: --task "
                         f"{str(given['task'])!r} (checkpoint: {checkpoint.task.value!r})")
    try:
        config = TrainConfig.from_json(checkpoint.meta["config"], **given)
    except InputError as exc:
        raise InputError(f"{checkpoint.json_path}: the stored config is not valid ({exc})") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"{checkpoint.json_path}: the stored config is not valid ({exc})") from exc
    try:
        validate_config(config)
    except InputError as exc:
        # a value out of range: name the file when it came from there, not from the command line
        option = str(exc).split(" ", 1)[0].split(":", 1)[0]
        from_file = not any(_OPTION.get(name) == option for name in given)
        if from_file:
            raise InputError(f"{checkpoint.json_path}: the stored config is not valid "
                             f"({exc})") from exc
        raise
    return config


def dataset_tensor(data: str, *, resolution: int) -> tuple[torch.Tensor, str]:
    """Training images as uint8 N×3×R×R plus the source's content hash.

    Kept as uint8 (4× smaller than float on the device); :meth:`_Run.batch` turns each batch
    into float in [-1, 1].
    """
    source = open_images(data, resolution=resolution)
    return source.load(), source.content_hash()


def is_gray(images: torch.Tensor) -> bool:
    """True when the three channels of uint8 N×3×H×W are equal everywhere."""
    return bool(torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2]))


def adam(params: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float],
         device: torch.device, capturable: bool = False) -> torch.optim.Adam:
    """Adam, fused (one kernel for all parameters) where this PyTorch supports it on ``device``.

    ``capturable``: step counters stay on the device, so that a CUDA graph can replay the step.
    """
    params = list(params)  # the fallback needs them a second time
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"),
                                capturable=capturable)
    except RuntimeError:  # older builds: no fused kernel for this device
        return torch.optim.Adam(params, lr=lr, betas=betas, capturable=capturable)


def pair(cond: torch.Tensor | None, image: torch.Tensor) -> torch.Tensor:
    """D's input: ``image``, or (conditional D) ``cond`` and ``image`` stacked on channels."""
    return image if cond is None else torch.cat([cond, image], 1)


class _DObjective(nn.Module):
    """D's loss on a real and a fake batch in one forward, so that DDP sees one forward/backward.

    Returns (total loss, penalty or 0). Real and fake go through D separately: BatchNorm
    statistics are per batch, as in DCGAN, rather than over the mixed batch. A conditional D
    sees ``cond`` beside each image; the WGAN-GP penalty is then the gradient with respect to the
    image alone (the condition is the same on both sides of the mix).
    """

    def __init__(self, d: nn.Module, loss: GanLoss) -> None:
        super().__init__()
        self.d = d
        self.loss = loss

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor | None,
        eps: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        value = self.loss.d_loss(self.d(pair(cond, real)).float(),
                                 self.d(pair(cond, fake)).float())
        penalty = torch.zeros((), device=value.device)
        if self.loss.gp_weight and eps is not None:
            penalty = gradient_penalty(lambda x: self.d(pair(cond, x)), real, fake, eps)
            value = value + self.loss.gp_weight * penalty
        return value, penalty


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, weight: torch.Tensor) -> None:
    """ema ← ema + weight · (model − ema) for parameters; buffers (BN statistics) copied.

    ``weight`` = 1 − decay, a 0-dim tensor on the models' device: a Python number would be
    frozen into a captured CUDA graph (and ``_foreach_lerp_`` reads a tensor weight back to the
    host), so the update is written with multi-tensor kernels that take a device scalar.
    """
    ema_params: list[torch.Tensor] = list(ema.parameters())
    model_params: list[torch.Tensor] = list(model.parameters())
    delta = list(torch._foreach_sub(model_params, ema_params))
    torch._foreach_mul_(delta, weight)
    torch._foreach_add_(ema_params, delta)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay used after step ``step`` (0-based): ramps up so early weights fade out quickly.

    ``min(decay, (1 + step) / (10 + step))``: with decay 0.999, a 300-step run would otherwise
    keep 74% of the random initial weights (0.999^300).
    """
    return min(decay, (1.0 + step) / (10.0 + step))


@dataclass
class StepLosses:
    """Detached scalar losses of one step (on the device; read them back in batches)."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor | None  # the adversarial term of G's loss
    gp: torch.Tensor | None
    l1: torch.Tensor | None = None  # mean |G(input) − real| (restoration)


class GanStep:
    """One GAN training step: a D update, then (every ``n_critic``-th step) a G update.

    DCGAN: G maps latents to images, D judges images. Conditional (``conditional``, the
    restoration GAN): D judges (G's input, image) pairs, and with ``l1_weight`` λ G minimises
    its adversarial loss + λ · mean |G(input) − real| (pix2pix).

    The same object serves the training loop and ``benchmarks/train_step.py``. Savings over the
    textbook loop, all exact: G's forward pass is shared by both updates (its output is detached
    for D); D's parameters are frozen during G's backward so their weight gradients are not
    computed (the textbook loop computes and discards them); on steps without a G update, G runs
    without autograd; fused Adam. With ``cuda_graphs`` (CUDA, no DDP) each step after a short
    eager warm-up is one replayed CUDA graph (:mod:`gan_eval.gan.cuda_graph`).
    """

    def __init__(
        self,
        g: nn.Module,
        d: nn.Module,
        loss: GanLoss,
        *,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        ema_decay: float = 0.999,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        bf16: bool = False,
        env: dist.DistEnv | None = None,
        sync_bn: bool = False,
        cuda_graphs: bool = False,
        conditional: bool = False,
        l1_weight: float | None = None,
    ) -> None:
        """``l1_weight``: λ of the L1 term (None: no L1 term and none logged; 0: logged only)."""
        self.device = torch.device(device)
        self.loss = loss
        self.conditional = conditional
        self.l1_weight = l1_weight
        self.ema_decay = ema_decay
        self.bf16 = bf16 and self.device.type == "cuda"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if sync_bn and env is not None:
            g = nn.SyncBatchNorm.convert_sync_batchnorm(g)
            d = nn.SyncBatchNorm.convert_sync_batchnorm(d)
        self.g = g.to(self.device).to(memory_format=self.memory_format)
        self.d = d.to(self.device).to(memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.ema_weight = torch.zeros((), device=self.device)  # 1 − decay of the current step
        graphs = cuda_graphs and self.device.type == "cuda"
        if graphs and env is not None:
            warnings.warn("--cuda-graphs is not used under torchrun: DistributedDataParallel's "
                          "gradient hooks cannot be captured; training runs eagerly",
                          stacklevel=2)
            graphs = False
        self.opt_g = adam(self.g.parameters(), lr=lr, betas=betas, device=self.device,
                          capturable=graphs)
        self.opt_d = adam(self.d.parameters(), lr=lr, betas=betas, device=self.device,
                          capturable=graphs)
        # one graph per kind of step: with and without the G update (WGAN-GP's n_critic)
        self.graphs = {update_g: GraphedStep(functools.partial(self._step, update_g=update_g),
                                             self.device)
                       for update_g in (True, False)} if graphs else None
        self.g_run: nn.Module = self.g
        self.d_objective: nn.Module = _DObjective(self.d, loss)
        if env is not None:
            # A weight with one input channel (D's first conv on gray images) has ambiguous
            # strides under channels_last; DDP then warns about a layout mismatch that costs
            # nothing for such a tensor.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            ids = [env.local_rank] if self.device.type == "cuda" else None
            self.g_run = DistributedDataParallel(self.g, device_ids=ids)
            self.d_objective = DistributedDataParallel(self.d_objective, device_ids=ids)

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.bf16:  # a graph capture needs autocast's cast cache off
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=self.graphs is None)
        return contextlib.nullcontext()

    def __call__(
        self,
        real: torch.Tensor,
        g_input: torch.Tensor,
        *,
        step: int = 0,
        eps: torch.Tensor | None = None,
        update_g: bool = True,
    ) -> StepLosses:
        """Train on ``real`` (float B×C×R×R in [-1, 1]) with G's input ``g_input``: latents z
        (float B×nz×1×1) for a DCGAN, the degraded images (float B×3×R×R in [-1, 1]) for the
        restoration GAN.

        ``eps``: float B in [0, 1], the WGAN-GP mix weights; ``step``: 0-based index (EMA ramp).
        """
        self.ema_weight.fill_(1.0 - ema_decay_at(self.ema_decay, step))
        real = real.contiguous(memory_format=self.memory_format)
        if g_input.ndim == 4 and g_input.shape[-1] > 1:
            g_input = g_input.contiguous(memory_format=self.memory_format)
        if self.graphs is not None:
            d_loss, g_loss, gp, l1 = self.graphs[update_g](real, g_input, eps)
        else:
            d_loss, g_loss, gp, l1 = self._step(real, g_input, eps, update_g=update_g)
        assert d_loss is not None
        return StepLosses(d_loss, g_loss, gp, l1)

    def _step(self, real: torch.Tensor, g_input: torch.Tensor, eps: torch.Tensor | None, *,
              update_g: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                                       torch.Tensor | None]:
        """The step's device work (what a CUDA graph captures): (D loss, G's adversarial loss,
        penalty, L1)."""
        cond = g_input if self.conditional else None
        with self._autocast():
            if update_g:
                fake = self.g_run(g_input)
            else:
                with torch.no_grad():
                    fake = self.g_run(g_input)
            d_loss, gp = self.d_objective(real, fake.detach(), cond, eps)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = l1 = None
        if update_g:
            # D is called directly, not through DDP: its gradients are neither needed nor synced
            self.d.requires_grad_(False)
            try:
                with self._autocast():
                    g_loss = self.loss.g_loss(self.d(pair(cond, fake)).float())
                total = g_loss
                if self.l1_weight is not None:
                    l1 = (fake.float() - real.float()).abs().mean()
                    total = g_loss + self.l1_weight * l1 if self.l1_weight else g_loss
                self.opt_g.zero_grad(set_to_none=True)
                total.backward()
            finally:
                self.d.requires_grad_(True)
            self.opt_g.step()
            update_ema(self.ema, self.g, self.ema_weight)
            g_loss = g_loss.detach()
            l1 = None if l1 is None else l1.detach()
        return d_loss.detach(), g_loss, gp.detach() if self.loss.gp_weight else None, l1

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor a resume needs, flattened under the checkpoint's group names."""
        tensors: dict[str, torch.Tensor] = {}
        for group, module in zip(MODULE_GROUPS, (self.g, self.d, self.ema), strict=True):
            for key, value in module.state_dict().items():
                tensors[f"{group}.{key}"] = value
        for group, opt in zip(OPTIMIZER_GROUPS, (self.opt_g, self.opt_d), strict=True):
            for index, state in opt.state_dict()["state"].items():
                for name in ADAM_STATE_NAMES:
                    tensors[f"{group}.state.{index}.{name}"] = state[name]
        return tensors

    def load_state(self, checkpoint: Checkpoint) -> None:
        """Restore models, EMA and optimizer states from a validated checkpoint."""
        for group, module in zip(MODULE_GROUPS, (self.g, self.d, self.ema), strict=True):
            module.load_state_dict(checkpoint.tensors(group))
        for group, opt in zip(OPTIMIZER_GROUPS, (self.opt_g, self.opt_d), strict=True):
            params = [p for g in opt.param_groups for p in g["params"]]
            saved = checkpoint.optimizer_state(group)
            for index, tensors in saved.items():
                for name in ("exp_avg", "exp_avg_sq"):
                    # Moments must share their parameter's memory layout: the fused kernels
                    # walk storage linearly, so an NCHW moment of a channels_last weight would be
                    # paired with the wrong elements (CPU) or refused (CUDA).
                    like = torch.empty_like(params[index], memory_format=torch.preserve_format)
                    tensors[name] = like.copy_(tensors[name])
            state = opt.state_dict()
            state["state"] = saved
            opt.load_state_dict(state)

    def params_finite(self) -> bool:
        """True when every parameter of G, D and the EMA is finite (checked before saving)."""
        params = [*self.g.parameters(), *self.d.parameters(), *self.ema.parameters()]
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())


class _Run:
    """State of one call of :func:`train` (one process of a possibly distributed run)."""

    def __init__(self, cfg: TrainConfig, env: dist.DistEnv | None, device: torch.device) -> None:
        self.env = env
        self.rank = env.rank if env else 0
        self.world = env.world_size if env else 1
        self.main = self.rank == 0
        self.device = dist.rank_device(env, device)
        self.out = cfg.out
        self.ckpt_dir = cfg.out / CHECKPOINT_DIR
        self.metrics_path = cfg.out / "metrics.jsonl"
        self.samples_dir = cfg.out / "samples"
        self.stop = _StopFlag()  # train() installs one that signals set

        existing = (self.ckpt_dir / JSON_NAME).is_file()
        checkpoint: Checkpoint[Any] | None = None
        if cfg.resume:
            if not existing:
                raise InputError(f"--resume: {self.ckpt_dir / JSON_NAME} does not exist; nothing "
                                 "to resume (drop --resume to start a new run)")
            checkpoint = load_checkpoint(self.ckpt_dir, groups=MODULE_GROUPS + OPTIMIZER_GROUPS,
                                         task=None)
        elif existing:
            raise InputError(f"--out {cfg.out}: already holds a checkpoint; pass --resume to "
                             "continue it or choose another --out")

        images, content_hash = dataset_tensor(cfg.data, resolution=cfg.resolution)
        cfg = resolved_config(cfg, gray=is_gray(images))
        channels = cfg.channels
        assert channels is not None
        if checkpoint is not None:
            self._check_resume(cfg, checkpoint, content_hash)
        if cfg.batch_size > images.shape[0]:
            raise InputError(f"--batch-size {cfg.batch_size} is larger than the data: {cfg.data} "
                             f"holds {images.shape[0]} images")
        if cfg.sync_bn and self.device.type != "cuda":
            raise InputError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        self.local_batch = dist.per_rank_batch(cfg.batch_size, self.world)
        self.cfg = cfg
        self.content_hash = content_hash
        self.loss = get_loss(cfg.loss)
        self.n_images = int(images.shape[0])
        self.batches_per_epoch = self.n_images // cfg.batch_size  # drop_last: equal batch shapes
        self.images = self._place(images[:, :channels].contiguous())
        self._epoch_perm: tuple[int, torch.Tensor] | None = None

        is_cuda = self.device.type == "cuda"
        if is_cuda:
            torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
            torch.backends.cudnn.allow_tf32 = cfg.tf32
            torch.backends.cudnn.benchmark = True
        self.spec = model_spec(cfg, self.loss)
        self.task: GenerationTask | RestorationTask
        if isinstance(self.spec, RestorationSpec):
            self.task = RestorationTask(self.spec, degradation_ranges(cfg), seed=cfg.seed,
                                        grid_faces=self.images, device=self.device)
        else:
            self.task = GenerationTask(self.spec, seed=cfg.seed, device=self.device)
        torch.manual_seed(derive_seed(cfg.seed, "init"))  # model init; identical on every rank
        g, d = self.spec.build()
        self.stepper = GanStep(
            g, d, self.loss, lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2), ema_decay=cfg.ema_decay, device=self.device,
            channels_last=cfg.channels_last,
            bf16=cfg.bf16 and is_cuda, env=env,
            sync_bn=cfg.sync_bn, cuda_graphs=cfg.cuda_graphs,
            conditional=self.task.conditional, l1_weight=cfg.l1_weight,
        )
        self.start_step = 0
        self.last_good: Checkpoint[Any] | None = checkpoint
        if checkpoint is not None:
            self.stepper.load_state(checkpoint)
            rng = checkpoint.tensors("rng")
            if "cpu" in rng:
                torch.set_rng_state(_rng_state(rng["cpu"], torch.get_rng_state(), checkpoint,
                                               "rng.cpu"))
            if "cuda" in rng and is_cuda:
                torch.cuda.set_rng_state(
                    _rng_state(rng["cuda"], torch.cuda.get_rng_state(self.device), checkpoint,
                               "rng.cuda"), self.device)
            self.start_step = checkpoint.step
        self.step_rng = torch.Generator(device=self.device)

    def _check_resume(self, cfg: TrainConfig, checkpoint: Checkpoint[Any],
                      content_hash: str) -> None:
        # a checkpoint written before the task field trained a DCGAN
        stored = {"task": TaskName.GENERATION.value, **checkpoint.meta["config"]}
        current = cfg.to_json()
        changed = [name for name in current
                   if name not in RESUME_MAY_CHANGE and stored.get(name) != current[name]]
        if changed:
            listing = "; ".join(f"{_OPTION[n]} {current[n]!r} (checkpoint: {stored.get(n)!r})"
                                for n in changed)
            raise InputError(f"--resume: options differ from {checkpoint.json_path}: {listing}")
        if checkpoint.meta["data"].get("content_hash") != content_hash:
            raise InputError(f"--resume: --data {cfg.data} is not the data the checkpoint was "
                             f"trained on (content hash differs from {checkpoint.json_path})")
        if checkpoint.step > cfg.steps:
            raise InputError(f"--steps {cfg.steps}: the checkpoint is already at step "
                             f"{checkpoint.step}; ask for more steps to continue")

    def _place(self, images: torch.Tensor) -> torch.Tensor:
        """Keep the uint8 dataset on the device when it takes under a quarter of free memory."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() < free // 4:
                return images.to(self.device)
            return images.pin_memory()
        return images

    def batch_indices(self, step: int) -> torch.Tensor:
        """This rank's slice of global batch ``step`` (int64, on the dataset's device).

        Epochs are seeded shuffles; drop_last, so every batch has the same shape.
        """
        epoch, j = divmod(step, self.batches_per_epoch)
        if self._epoch_perm is None or self._epoch_perm[0] != epoch:
            rng = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "epoch", epoch))
            # drawn on the CPU (same order on every device), moved once per epoch: indexing
            # with a host tensor every step would be a host-device sync every step on GPU
            perm = torch.randperm(self.n_images, generator=rng).to(self.images.device)
            self._epoch_perm = (epoch, perm)
        start = j * self.cfg.batch_size + self.rank * self.local_batch
        return self._epoch_perm[1][start : start + self.local_batch]

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(real float b×C×R×R in [-1, 1], G's input, eps float b or None) for ``step``.

        G's input is the task's (:mod:`gan_eval.gan.tasks`): latents, or the flipped real
        images degraded at random.
        """
        real = self.images[self.batch_indices(step)].to(self.device, non_blocking=True)
        gen = self.step_rng.manual_seed(derive_seed(self.cfg.seed, "step", step, self.rank))
        b = real.shape[0]
        if self.cfg.flip:
            flip = torch.rand(b, generator=gen, device=self.device) < 0.5
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        g_input = self.task.inputs(real, gen)
        eps = torch.rand(b, generator=gen, device=self.device) if self.loss.gp_weight else None
        return to_unit_range(real), g_input, eps

    # -- outputs (rank 0) ------------------------------------------------------------------

    def write_grid(self, step: int) -> None:
        write_png(self.samples_dir / f"step-{step:06d}.png", self.task.grid(self.stepper.ema))

    def write_checkpoint(self, step: int, last: dict[str, float | None]) -> None:
        tensors = self.stepper.state_tensors()
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "step": step,
            **self.task.meta(),
            "config": self.cfg.to_json(),
            "model": self.spec.to_json(),
            "data": {"data": self.cfg.data, "content_hash": self.content_hash,
                     "count": self.n_images},
            "world_size": self.world,
            "per_rank_batch": self.local_batch,
            "device": str(self.device),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "last_losses": last,
        }
        write_checkpoint(self.ckpt_dir, tensors, meta)
        self.last_good = load_checkpoint(self.ckpt_dir, groups=(), task=None)

    def _interrupted(self, step: int, *, saved: bool) -> TrainingInterrupted:
        signum = self.stop.signum
        assert signum is not None
        if saved:
            kept = f"its checkpoint is saved in {self.ckpt_dir / JSON_NAME}"
        elif self.last_good is not None:
            kept = f"the last checkpoint is {self.last_good.json_path} (step {self.last_good.step})"
        else:
            kept = "no checkpoint had been written yet"
        return TrainingInterrupted(
            f"training stopped by {signal.Signals(signum).name} after step {step}; {kept}. "
            f"Continue with: gan-eval train --out {self.out} --resume", signum)

    def _diverged(self, step: int, what: str) -> TrainingDivergedError:
        if self.last_good is not None:
            good = self.last_good
            kept = f"the last good checkpoint is {good.json_path} (step {good.step})"
        else:
            kept = "no checkpoint had been written yet"
        return TrainingDivergedError(
            f"step {step}: non-finite {what}; training stopped and {kept}. Lower --lr, or try "
            "--loss hinge or --spectral-norm"
        )

    def truncate_metrics(self, upto: int) -> None:
        """Drop metric lines past ``upto`` (written after the checkpoint a resume starts from)."""
        if not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError, TypeError, KeyError):
                if json.loads(line)["step"] <= upto:
                    kept.append(line + "\n")
        atomic_write_text(self.metrics_path, "".join(kept))

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> Path:
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.truncate_metrics(self.start_step)
        progress = _progress(cfg, self.start_step, enabled=self.main and not cfg.quiet)
        pending: list[tuple[int, StepLosses]] = []
        last: dict[str, float | None] = {}
        window_start, window_images = time.perf_counter(), 0
        run_start = window_start
        metrics = open(self.metrics_path, "a", encoding="utf-8") if self.main else None  # noqa: SIM115
        try:
            for step in range(self.start_step, cfg.steps):
                if self.stop.signum is not None and step == self.start_step:
                    raise self._interrupted(step, saved=False)
                real, g_input, eps = self.batch(step)
                update_g = (step + 1) % self.loss.n_critic == 0
                pending.append((step + 1, self.stepper(real, g_input, step=step, eps=eps,
                                                       update_g=update_g)))
                window_images += cfg.batch_size
                done = step + 1
                grid = done % cfg.sample_every == 0 or done == cfg.steps
                save = done % cfg.checkpoint_every == 0 or done == cfg.steps
                stopping = self.stop.signum is not None and done < cfg.steps
                save = save or stopping  # keep the work done so far
                if done % cfg.log_every == 0 or grid or save:
                    now = time.perf_counter()
                    rate = window_images / max(now - window_start, 1e-9)
                    last = self._flush(pending, rate, now - run_start, metrics)
                    pending.clear()
                    if progress is not None:
                        progress.set_postfix_str(_postfix(last, rate), refresh=False)
                    window_start, window_images = now, 0
                if progress is not None:
                    progress.update(1)
                if self.main and grid:
                    self.write_grid(done)
                if save:
                    # every rank checks (DDP keeps the weights equal), so all stop together
                    if not self.stepper.params_finite():
                        raise self._diverged(done, "parameters")
                    if self.main:
                        self.write_checkpoint(done, last)
                    dist.barrier(self.env)
                if stopping:
                    raise self._interrupted(done, saved=True)
        finally:
            if progress is not None:
                progress.close()
            if metrics is not None:
                metrics.close()
        return self.ckpt_dir

    def _flush(self, pending: list[tuple[int, StepLosses]], rate: float, elapsed: float,
               metrics: Any) -> dict[str, float | None]:
        """Read the pending losses back (one sync), NaN-check them, append them to metrics.jsonl."""
        nan = torch.tensor(float("nan"), device=self.device)
        rows = torch.stack([
            torch.stack([s.d_loss.float(),
                         s.g_loss.float() if s.g_loss is not None else nan,
                         s.gp.float() if s.gp is not None else nan,
                         s.l1.float() if s.l1 is not None else nan])
            for _, s in pending
        ])
        has_g = [s.g_loss is not None for _, s in pending]
        logs_l1 = self.stepper.l1_weight is not None
        # mean over ranks: a NaN on any rank reaches every rank, so all of them stop together
        values = dist.all_reduce_mean(rows, self.env).tolist()
        last: dict[str, float | None] = {}
        for (step, _), (d_loss, g_loss, gp, l1), g_present in zip(pending, values, has_g,
                                                                  strict=True):
            for what, value, present in (("D loss", d_loss, True), ("G loss", g_loss, g_present),
                                         ("gradient penalty", gp, self.loss.gp_weight > 0),
                                         ("L1 loss", l1, g_present and logs_l1)):
                if present and not math.isfinite(value):
                    if metrics is not None:
                        metrics.flush()
                    raise self._diverged(step, f"{what} ({value})")
            last = {"step": step, "d_loss": d_loss, "g_loss": g_loss if g_present else None}
            if self.loss.gp_weight:
                last["gp"] = gp
            if logs_l1:
                last["l1"] = l1 if g_present else None
            if metrics is not None:
                record = {**last, "img_per_s": round(rate, 2), "time_s": round(elapsed, 3)}
                metrics.write(json.dumps(record) + "\n")
        if metrics is not None:
            metrics.flush()
        return last


def _rng_state(stored: torch.Tensor, like: torch.Tensor, checkpoint: Checkpoint[Any],
               name: str) -> torch.Tensor:
    """``stored`` when it has the dtype and shape of a live RNG state ``like``, else InputError.

    torch's own check would raise a TypeError or RuntimeError (a traceback) instead.
    """
    if stored.dtype != like.dtype or stored.shape != like.shape:
        raise InputError(
            f"{checkpoint.state_path}: tensor {name} is {stored.dtype} of shape "
            f"{list(stored.shape)}; an RNG state is {like.dtype} of shape {list(like.shape)}"
        )
    return stored


def _progress(cfg: TrainConfig, start: int, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    task = "" if cfg.task is TaskName.GENERATION else f" {cfg.task.value}"
    return tqdm(total=cfg.steps, initial=start, unit="step", dynamic_ncols=True,
                desc=f"train{task} {cfg.resolution}px {cfg.loss.value}")


def _postfix(last: dict[str, float | None], rate: float) -> str:
    parts = [f"D {last['d_loss']:.3f}"]
    if last.get("g_loss") is not None:
        parts.append(f"G {last['g_loss']:.3f}")
    if last.get("l1") is not None:
        parts.append(f"L1 {last['l1']:.4f}")
    parts.append(f"{rate:.0f} img/s")
    return " ".join(parts)


def train(config: TrainConfig) -> Path:
    """Train (or, with ``config.resume``, continue) a DCGAN or, with ``task="restoration"``, a
    restoration GAN; returns the checkpoint folder.

    Under torchrun the process joins the job (DDP). Raises :class:`InputError` naming the option
    or file for unusable input, :class:`TrainingDivergedError` when a loss becomes non-finite.
    """
    validate_config(config)
    device = resolve_device(config.device)
    env = dist.init_from_env(device)
    threads = torch.get_num_threads()
    try:
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(config))
        with _stop_on_signals(env is None) as stop:
            run = _Run(config, env, device)
            run.stop = stop
            return run.run()
    finally:
        torch.set_num_threads(threads)
        dist.shutdown(env)


def cpu_threads(config: TrainConfig) -> int:
    """Intra-op threads for training on the CPU: ``--threads``, else torch's current setting.

    Measured on a quiet 2-core box (the 300-step default run at 32 px, wall clock): 2 threads
    23.4-24.1 s, 1 thread 32.2-32.3 s. An earlier default of 1 thread at 32 px was chosen on an
    overloaded box (load ≈ 6), where threads waiting for each other at every parallel region
    made 2 threads far slower; ``--threads 1`` is the answer there. Bit-exact resume assumes the
    same count.
    """
    return config.threads if config.threads is not None else torch.get_num_threads()
