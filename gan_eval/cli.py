"""The ``gan-eval`` command line: thin typer commands over the Python API.

Each command parses its options, builds the API's config and calls one API function (torchrun
set-up included there); nothing else. Exit codes are decided in one place (:func:`command`):
0 success; 1 a gate failed (``gate`` only); 2 bad input or an unusable output path; 3 a missing
asset; 4 an internal error (a short "please report" message; the traceback with ``--debug``).

Options are spelled so that torchrun's own parser cannot claim them (``--count``, not ``--n``,
which torchrun reads as an abbreviation of its ``--nnodes``/``--nproc-per-node``); the old
spellings still work outside torchrun. Heavy modules are imported inside the commands, after
every argument that can be checked without them has been (:mod:`gan_eval.preflight`): ``--help``,
``--version``, ``gate RESULTS.json`` and every bad-input error load no network.

Help is click's plain layout (typer's Rich panels print ``<bool>`` beside every flag): one
default style, ``[default: …]``, also for options whose default is decided at run time
(:func:`_with_default`).
"""

from __future__ import annotations

import functools
import json
import os
import time
import traceback
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gan_eval import catalogue, preflight
from gan_eval import weights as weights_table
from gan_eval.errors import GanEvalError, GanEvalWarning, InputError, MissingAssetError
from gan_eval.fileio import check_output_dir, check_output_file
from gan_eval.gan.loss_names import LossName
from gan_eval.gan.task_names import TaskName
from gan_eval.gates import check_baseline, evaluate_gates, load_config
from gan_eval.generators.spec import SpecKind
from gan_eval.report.junit import write_junit
from gan_eval.report.tables import (
    attack_table,
    gates_table,
    inspect_json,
    inspect_table,
    metrics_table,
    recognition_table,
)
from gan_eval.results import Results
from gan_eval.robustness.attacks import DEFAULT_ATTACKS, TargetModel, attack_choices, get_attacks
from gan_eval.version import __version__

app = typer.Typer(
    name="gan-eval",
    help="Train DCGANs on faces and audit what they produce.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


DEBUG = {"on": False}
"""Set by ``--debug``: show the traceback of an internal error."""

INTERNAL_ERROR = 4


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gan-eval {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error (exit 4).")
    ] = False,
) -> None:
    """Train DCGANs on faces and audit what they produce."""
    DEBUG["on"] = debug


weights_app = typer.Typer(
    name="weights",
    help="List, fetch (an explicit download) and verify the pretrained weights files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")


INTERRUPTED = 130
"""Exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it)."""


def command(name: str | None = None, group: typer.Typer = app) -> Callable[[F], F]:
    """Register a typer command (on ``group``) whose errors become exit codes here, the one
    place that decides them. The working directory is the same after the command as before it,
    whatever code ran inside (the user's code runs contained: gan_eval.generators.usercode)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            label = name or fn.__name__
            if group is not app:
                label = f"{group.info.name} {label}"
            cwd = os.getcwd()
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except KeyboardInterrupt:  # a real Ctrl-C (user code raising it is an input error)
                typer.echo(f"gan-eval {label}: interrupted", err=True)
                raise typer.Exit(INTERRUPTED) from None
            except SystemExit as exc:  # never gan-eval's way to exit, nor allowed to user code
                if DEBUG["on"]:
                    traceback.print_exc()
                typer.echo(f"gan-eval {label}: internal error: sys.exit({exc.code!r}) was called "
                           "outside the code gan-eval contains. This is a bug in gan-eval; "
                           "please report it with the command you ran.", err=True)
                raise typer.Exit(INTERNAL_ERROR) from None
            except GanEvalError as exc:
                if DEBUG["on"] and exc.detail:
                    typer.echo(exc.detail.rstrip(), err=True)
                typer.echo(f"gan-eval {label}: error: {exc}", err=True)
                raise typer.Exit(exc.exit_code) from None
            except MemoryError:
                typer.echo(f"gan-eval {label}: error: out of memory; use fewer images "
                           "(--count) or a smaller --batch-size", err=True)
                raise typer.Exit(2) from None
            except Exception as exc:  # an unexpected failure is ours: never exit 1 (gate failed)
                if DEBUG["on"]:
                    traceback.print_exc()
                typer.echo(
                    f"gan-eval {label}: internal error: {type(exc).__name__}: {exc}\n"
                    "This is a bug in gan-eval, not in your input. Please report it with the "
                    "command you ran and the output of `gan-eval --debug …` (which adds the "
                    "traceback).", err=True)
                raise typer.Exit(INTERNAL_ERROR) from None
            finally:
                if os.getcwd() != cwd:
                    os.chdir(cwd)

        group.command(name)(wrapper)
        return fn

    return decorate


DataArg = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help="Image folder, .zip, .npz/.npy, generator checkpoint, or builtin:lfw-subset.",
        show_default=False,
    ),
]


def _with_default(text: str, default: object) -> str:
    """``text`` ending in typer's own ``[default: …]``, for an option whose ``None`` default
    stands for a value chosen later (a checkpointed value under ``--resume``, the device found at
    run time)."""
    return f"{text}  [default: {default}]"


Device = Annotated[
    str | None,
    typer.Option("--device", metavar="DEVICE", show_default=False,
                 help=_with_default("auto (CUDA when available, else the CPU), cpu, cuda or "
                                    "cuda:N.", "auto")),
]
"""The one ``--device`` option of every command (``None`` = auto, :mod:`gan_eval.devices`)."""

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]

WeightsPairs = Annotated[
    list[str] | None,
    typer.Option("--weights", metavar="EXTRACTOR=PATH", show_default=False,
                 help="Weights file of an extractor (repeatable), e.g. "
                 "clip-vit-l14-336=ViT-L-14-336px.pt; see `gan-eval weights list`."),
]
"""``--weights EXTRACTOR=PATH``: the one spelling of an extractor's weights file on every
command (checked by :func:`gan_eval.preflight.weights_pairs`)."""

FaceExtractor = Annotated[
    str,
    typer.Option("--face-extractor", metavar="NAME",
                 help="Face network of every identity number: dlib-face or facenet-vggface2 "
                 "(its file: gan-eval weights fetch facenet-vggface2, or --weights)."),
]
"""``--face-extractor NAME``: the one option that picks the face network of the identity
metrics (checked by :func:`gan_eval.preflight.check_face_extractor`)."""


ZDim = Annotated[
    int | None,
    typer.Option("--z-dim", help="Latent size of an external generator that does not state it.",
                 show_default=False),
]
Truncation = Annotated[
    float | None,
    typer.Option("--truncation", metavar="PSI", help="Truncation ψ, for generators whose call "
                 "takes truncation_psi=.", show_default=False),
]
Classes = Annotated[
    int | None,
    typer.Option("--classes", metavar="K", help="Conditional generator: labels drawn uniformly "
                 "from K classes (seeded per image).", show_default=False),
]
Labels = Annotated[
    str | None,
    typer.Option("--labels", metavar="FILE", help="Conditional generator: one class index per "
                 "image (.npy or one integer a line).", show_default=False),
]
OutputRange = Annotated[
    str,
    typer.Option("--output-range", metavar="RANGE", help="External generator's output: -1,1 "
                 "(floats), 0,1 (floats) or uint8."),
]
DiscriminatorSpec = Annotated[
    str | None,
    typer.Option("--discriminator", metavar="SPEC", help="D of an external generator (py:, "
                 "file.py:attr, TorchScript or torch.export .pt2) for --model discriminator.",
                 show_default=False),
]
GeneratorBatch = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, help=_with_default(
        "Latents per call of an external generator.", "64 on the CPU, 256 on CUDA"),
        show_default=False),
]
AllowNondeterministic = Annotated[
    bool,
    typer.Option("--allow-nondeterministic", help="Audit an external generator whose images "
                 "differ between two draws of the same latents (recorded; never cached)."),
]


def _generator_options(
    z_dim: int | None, truncation: float | None, classes: int | None, labels: str | None,
    output_range: str, discriminator: str | None = None, allow_nondeterministic: bool = False,
) -> Any:
    """The :class:`~gan_eval.generators.GeneratorOptions` the GENERATOR options spell, checked
    (values, the --labels file, the --discriminator spec) without importing torch."""
    from gan_eval.generators.spec import GeneratorOptions

    preflight.check_file(labels, "--labels", "class indices (.npy, or one integer a line)")
    preflight.check_spec(discriminator, "--discriminator")
    return GeneratorOptions(z_dim=z_dim, truncation=truncation, classes=classes, labels=labels,
                            output_range=output_range, discriminator=discriminator,
                            allow_nondeterministic=allow_nondeterministic)


def _generator_arg(data: str, options: Any, **open_kwargs: Any) -> Any:
    """``data`` unchanged when no generator option is given, else the generator opened with
    them (so that every analysis takes it as a source)."""
    if options.is_default():
        return data
    from gan_eval.sources import open_source

    return open_source(data, options=options, **open_kwargs)


@command("inspect")
def inspect_cmd(
    data: DataArg,
    resolution: Annotated[
        int | None, typer.Option(help="Resize every image to this square size.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Count, resolution, channels, identities, content hash and problems of a DATA source."""
    preflight.check_data(data)
    from gan_eval.sources import inspect_source

    info = inspect_source(data, resolution=resolution)
    typer.echo(json.dumps(inspect_json(info), indent=2) if as_json else inspect_table(info))
    fatal = [p for p in info.problems if p.fatal]
    if fatal:
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        raise InputError(f"{fatal[0]}{more}")


@command("recognition")
def recognition_cmd(
    generated: Annotated[
        str,
        typer.Argument(
            metavar="GENERATED",
            help="Generated faces: image folder, .zip, .npz/.npy, checkpoint, or builtin:NAME.",
            show_default=False,
        ),
    ],
    reference: Annotated[
        str,
        typer.Option(
            "--reference",
            metavar="DATA",
            help="Training (reference) faces; identity subfolders enable verification.",
            show_default=False,
        ),
    ],
    heldout: Annotated[
        str | None,
        typer.Option(
            "--heldout",
            metavar="DATA",
            help="Real faces of people NOT in the training set (same population; identities "
            "from subfolders / npz labels, else one per image): enables the membership test of "
            "training identities and the held-out base rate of authenticity.",
            show_default=False,
        ),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the results JSON here (atomically)."),
    ] = None,
    face_extractor: FaceExtractor = "dlib-face",
    weights: WeightsPairs = None,
    threshold: Annotated[
        float | None, typer.Option(show_default=False, help=_with_default(
            "Match threshold: same person when distance ≤ this.",
            "the face network's published one (dlib: 0.6); FaceNet publishes none: calibrated "
            "at --far"))
    ] = None,
    far: Annotated[
        float, typer.Option(help="False-accept rate of the calibrated second threshold.")
    ] = 1e-3,
    margin: Annotated[
        float,
        typer.Option(help="Crop framing: fraction of the side padded (> 0) or cut (< 0) per side."),
    ] = 0.0,
    align: Annotated[
        bool,
        typer.Option("--align", help="Detect and align raw photos with dlib (needs dlib-bin)."),
    ] = False,
    n: Annotated[
        int | None,
        typer.Option("--count", "--n", help="Use the first N generated images (or sample N).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of pair sampling, subsets and trials.")] = 0,
    top_k: Annotated[int, typer.Option(help="Closest leaked pairs kept for the report.")] = 16,
    device: Device = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write cached embeddings.")
    ] = False,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    allow_nondeterministic: AllowNondeterministic = False,
) -> None:
    """Identity leakage, identity diversity (clusters and Vendi score), faceness, verification,
    membership of training identities (with --heldout) and authenticity of generated faces."""
    _writable("--json", json_path)
    json_path = _absolute(json_path)
    preflight.check_data(generated)
    preflight.check_data(reference, "--reference")
    preflight.check_data(heldout, "--heldout")
    preflight.check_face_extractor(face_extractor)
    pairs = dict(preflight.weights_pairs(weights or []))
    preflight.check_weights_found((face_extractor,), tuple(pairs.items()))
    options = _generator_options(z_dim, truncation, classes, labels, output_range,
                                 allow_nondeterministic=allow_nondeterministic)
    from gan_eval.devices import resolve_device
    from gan_eval.features.framing import Framing
    from gan_eval.identity import RecognitionConfig, recognition

    generated_arg = _generator_arg(generated, options, n=n, seed=seed,
                                   device=resolve_device(device))
    results = recognition(generated_arg, reference, RecognitionConfig(
        face_extractor=face_extractor, weights=pairs.get(face_extractor),
        threshold=threshold, far=far, framing=Framing(align=align, margin=margin), n=n,
        seed=seed, top_k=top_k, device=device, use_cache=not no_cache, heldout=heldout))
    if json_path is not None:
        results.save(json_path)
    typer.echo(recognition_table(results))
    if json_path is not None:
        typer.echo(f"\nresults written to {json_path}")


@command("restoration")
def restoration_cmd(
    models: Annotated[
        list[str],
        typer.Argument(metavar="MODEL...", show_default=False, help=(
            "Restoration models; the first is audited (its averages are the gated metrics): "
            "builtin:none|bicubic|richardson_lucy|wiener|tv|nl_means, a gan-eval restoration "
            "checkpoint, py:pkg.mod:attr or file.py:attr (runs that code), TorchScript, .onnx.")),
    ],
    data: Annotated[
        str, typer.Option("--data", metavar="DATA", show_default=False,
                          help="Real faces to degrade and restore (any DATA; identity subfolders "
                               "or npz labels say who is who, else one person per image)."),
    ],
    degradation: Annotated[
        list[str] | None,
        typer.Option("--degradation", metavar="KIND[:S1,S2]", show_default=False, help=(
            _with_default("Repeatable: blur:SIGMA (px), downsample:FACTOR (2..16), noise:SD "
                          "(0..255 levels), jpeg:QUALITY (1..100); KIND alone: its usual "
                          "strengths.", "all"))),
    ] = None,
    n: Annotated[int | None, typer.Option("--count", "--n", show_default=False,
                                          help=_with_default("Use the first N faces.",
                                                             "all"))] = None,
    resolution: Annotated[int | None, typer.Option(show_default=False, help=(
        _with_default("Audit at this square size.", "the model's own, else 64"))) ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", metavar="PATH", show_default=False,
                                                   help="Write the results JSON here.")] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="DIR", show_default=False, help=(
        "Write a report folder here: index.html, results.json, plots/ (tiles, swaps, "
        "curves)."))] = None,
    gates: Annotated[Path | None, typer.Option("--gates", metavar="GATES_TOML",
                                               show_default=False, help=(
        "Judge the audited model with these gates on the --out page (exit 0 either way; "
        "use gan-eval gate RESULTS.json to fail CI)."))] = None,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help=(
        "Also run every built-in method (builtin:none always runs: the paired "
        "reference).")) ] = True,
    model_range: Annotated[str, typer.Option("--model-range", metavar="RANGE", help=(
        "An external model's input and output range: -1,1, 0,1 or uint8."))] = "-1,1",
    model_scale: Annotated[int, typer.Option("--model-scale", metavar="S", help=(
        "An external model's output size / input size (S > 1: it restores downsampling by "
        "S from the small image)."))] = 1,
    extractor: Annotated[list[str] | None, typer.Option("--extractor", "-e", show_default=False,
                                                        help=(
        _with_default("Feature space of restoration_fid, repeatable (e.g. dinov2-vit-l14 for "
                      "FD_DINOv2).", "dlib-face")))] = None,
    face_extractor: FaceExtractor = "dlib-face",
    weights: WeightsPairs = None,
    far: Annotated[float, typer.Option(help=(
        "False-accept rate of the same-person threshold calibrated on the clean faces "
        "(identity_kept_rate)."))] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the noise and the calibration pairs.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 32,
    device: Device = None,
    quiet: Quiet = False,
) -> None:
    """Degrade real faces, restore them with MODEL, and measure what was kept: PSNR, SSIM,
    LPIPS, identity distance, identity kept / swap rates, TAR@FAR, landmark distance and FID,
    each with a paired 95% interval against no restoration."""
    from gan_eval.restoration.plan import check_method_spec, parse_degradations

    _writable("--json", json_path)
    _writable("--out", out, folder=True)
    json_path, out = _absolute(json_path), _absolute(out)
    conditions = parse_degradations(degradation)
    for spec in models:
        check_method_spec(spec)
    preflight.check_data(data, "--data")
    extractors = tuple(extractor or ("dlib-face",))
    preflight.check_extractors(extractors)
    preflight.check_face_extractor(face_extractor)
    pairs = dict(preflight.weights_pairs(weights or []))
    preflight.check_weights_found((*extractors, face_extractor), tuple(pairs.items()))
    if gates is not None:  # a bad gates file fails before any work
        try:
            load_config(gates)
        except InputError as exc:
            raise InputError(str(exc).replace("--config:", "--gates:", 1)) from None
    from gan_eval.restoration.audit import RestorationConfig, audit_restoration
    from gan_eval.restoration.models import ModelOptions

    start = time.perf_counter()

    def say(message: str) -> None:
        typer.echo(f"restoration [{time.perf_counter() - start:6.1f} s] {message}", err=True)

    run = audit_restoration(models, data, RestorationConfig(
        conditions=conditions, n=n, resolution=resolution, seed=seed, device=device,
        model=ModelOptions(range=model_range, scale=model_scale, batch_size=batch_size),
        baselines=baselines, extractors=extractors, far=far,
        face_extractor=face_extractor, weights=pairs, progress=None if quiet else say))
    from gan_eval.report.restoration import restoration_table

    for note in run.results.restoration.get("notes", []):
        typer.echo(f"note: {note}", err=True)
    if out is not None:
        from gan_eval.audit import write_restoration_report

        index = write_restoration_report(run, out, gates=gates)
        typer.echo(f"report       {index}")
    if json_path is not None:
        run.results.save(json_path)
    typer.echo(restoration_table(run.results))
    if json_path is not None:
        typer.echo(f"\nresults written to {json_path}")


@command("train")
def train_cmd(
    out: Annotated[
        Path,
        typer.Option("--out", help="Run folder: checkpoint/, samples/, metrics.jsonl.",
                     show_default=False),
    ],
    data: Annotated[
        str | None,
        typer.Option(help="Training images: folder, .zip, .npz/.npy or builtin:lfw-subset "
                          "(required unless --resume).", show_default=False),
    ] = None,
    task: Annotated[
        TaskName | None,
        typer.Option(help=_with_default(
            "generation: a DCGAN making faces from latents; restoration: a pix2pix-style GAN "
            "restoring degraded faces (U-Net, PatchGAN, L1).", "generation"),
            show_default=False),
    ] = None,
    l1_weight: Annotated[
        float | None,
        typer.Option(help=_with_default("Restoration: weight λ of the L1 term.", 100.0),
                     show_default=False),
    ] = None,
    degradations: Annotated[
        str | None,
        typer.Option(metavar="NAME=LOW:HIGH,…", help=_with_default(
            "Restoration: degradations and severity ranges drawn from: blur (sigma, px), "
            "downsample (integer scale), noise (sd, 0..255 levels), jpeg (quality 1..100).",
            "blur=0.5:2,downsample=2:4,noise=5:25,jpeg=10:50"), show_default=False),
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(help=_with_default("Image size: 32, 64 or 128.", 32), show_default=False),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help=_with_default("Total training steps.", 300), show_default=False)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help=_with_default("Global batch, split evenly over torchrun processes.",
                                        64), show_default=False),
    ] = None,
    loss: Annotated[
        LossName | None, typer.Option(help=_with_default("GAN loss.", "ns"), show_default=False)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help=_with_default("Random seed.", 0), show_default=False)
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the run in --out (options not given keep their "
                                      "checkpointed values)."),
    ] = False,
    width: Annotated[
        int | None,
        typer.Option(help=_with_default("ngf = ndf.", "32 at 32 px, 64 above"),
                     show_default=False),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(help=_with_default("1 or 3.", "1 if the data is gray, else 3"),
                     show_default=False),
    ] = None,
    spectral_norm: Annotated[
        bool | None,
        typer.Option("--spectral-norm/--no-spectral-norm",
                     help=_with_default("Spectral norm in D (then no BatchNorm in D).",
                                        "off"),
                     show_default=False),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help=_with_default("Adam learning rate.", 0.0002), show_default=False)
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option(help=_with_default("EMA decay of G.", 0.999), show_default=False)
    ] = None,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help=_with_default("Random horizontal flips.", "on"),
                     show_default=False),
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option(help=_with_default("Steps between sample grids.", 100),
                     show_default=False),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(help=_with_default("Steps between checkpoints.", 500), show_default=False),
    ] = None,
    device: Device = None,
    bf16: Annotated[
        bool | None,
        typer.Option("--bf16/--no-bf16", help=_with_default("bf16 autocast on GPU.", "off"),
                     show_default=False),
    ] = None,
    tf32: Annotated[
        bool | None,
        typer.Option("--tf32/--no-tf32", help=_with_default("TF32 math on GPU.", "on"),
                     show_default=False),
    ] = None,
    cuda_graphs: Annotated[
        bool | None,
        typer.Option("--cuda-graphs/--no-cuda-graphs",
                     help=_with_default("Replay each step as a CUDA graph (GPU, single "
                                        "process).", "off"), show_default=False),
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option("--channels-last/--no-channels-last",
                     help=_with_default("NHWC tensors (faster on GPU and CPU).", "on"),
                     show_default=False),
    ] = None,
    sync_bn: Annotated[
        bool | None,
        typer.Option("--sync-bn/--no-sync-bn",
                     help=_with_default("SyncBatchNorm across torchrun GPUs.", "off"),
                     show_default=False),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help=_with_default(
            "CPU threads. On a CPU shared with other jobs, 1 is often faster than torch's "
            "default (one per core), which waits on the busiest core.", "torch's: one per core"),
            show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a DCGAN on DATA (or, with --task restoration, a GAN that restores degraded faces of
    DATA): checkpoints, sample grids and metrics.jsonl go to --out.

    A restoration GAN on 32 px faces trains in under a minute on 2 CPU cores with --width 16
    --lr 0.002 --batch-size 16 --steps 400 (on 80 faces, longer runs overfit).

    Under `torchrun --nproc-per-node K -m gan_eval train …` it trains with DistributedDataParallel
    (--batch-size is the global batch).
    """
    _writable("--out", out, folder=True)
    if resume:
        preflight.check_resumable(out)
    elif data is None:
        raise InputError("--data is required (unless --resume continues the run in --out)")
    preflight.check_data(data, "--data")
    from gan_eval.gan.training import TrainConfig, config_for_resume, train

    options: dict[str, Any] = {
        "data": data, "task": task, "l1_weight": l1_weight, "degradations": degradations,
        "resolution": resolution, "steps": steps, "batch_size": batch_size,
        "loss": loss, "seed": seed, "width": width, "channels": channels,
        "spectral_norm": spectral_norm, "lr": lr, "ema_decay": ema_decay, "flip": flip,
        "sample_every": sample_every, "checkpoint_every": checkpoint_every, "device": device,
        "bf16": bf16, "tf32": tf32, "cuda_graphs": cuda_graphs,
        "channels_last": channels_last, "sync_bn": sync_bn,
        "threads": threads, "quiet": quiet, "out": out,
    }
    if resume:
        config = config_for_resume(out, **options)
    else:
        config = TrainConfig(**{k: v for k, v in options.items() if v is not None})
    checkpoint = train(config)
    if not quiet:
        typer.echo(f"checkpoint   {checkpoint}")
        typer.echo(f"samples      {out / 'samples'}")


@command("sample")
def sample_cmd(
    generator: Annotated[
        str,
        typer.Argument(metavar="GENERATOR",
                       help="Checkpoint (folder, run folder, checkpoint.json or state file), "
                       "py:module:attr or file.py:attr (runs that code), TorchScript or .onnx.",
                       show_default=False),
    ],
    n: Annotated[int, typer.Option("--count", "--n", help="Number of images.",
                                   show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for 000000.png, 000001.png, …", show_default=False)
    ],
    npz: Annotated[bool, typer.Option("--npz", help="Also write samples.npz (uint8).")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty --out folder whole.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = 0,
    device: Device = None,
    batch_size: Annotated[int, typer.Option(help="Images per generator call.")] = 256,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    allow_nondeterministic: AllowNondeterministic = False,
) -> None:
    """Write N images of GENERATOR as PNGs (image i depends on seed and i only)."""
    check_output_dir(out, "--out", create=False, empty=not overwrite)
    preflight.check_spec(generator)
    options = _generator_options(z_dim, truncation, classes, labels, output_range,
                                 allow_nondeterministic=allow_nondeterministic)
    from gan_eval.generators.sample import sample

    folder = sample(generator, n=n, out=_absolute(out), seed=seed, npz=npz, device=device,
                    batch_size=batch_size, overwrite=overwrite, options=options)
    typer.echo(f"wrote {n} images to {folder}")


@command("attack")
def attack_cmd(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="GENERATOR (checkpoint, py:/file.py:attr, TorchScript, .onnx: generated vs "
            "training faces) or DATA (image folder, .zip, .npz/.npy, builtin:lfw-subset).",
            show_default=False,
        ),
    ],
    model: Annotated[
        TargetModel,
        typer.Option("--model", help="recognizer: dlib face network; discriminator: the "
                     "checkpoint's D (needs a checkpoint)."),
    ] = TargetModel.RECOGNIZER,
    attack_names: Annotated[
        list[str] | None,
        typer.Option("--attack", metavar="NAME",
                     help=_with_default(
                         f"Attack, repeatable: {attack_choices()}. cw and deepfool search for "
                         "minimal perturbations (minutes per face set on a CPU): name them to "
                         "run them.", ", ".join(DEFAULT_ATTACKS))),
    ] = None,
    eps: Annotated[
        list[str] | None,
        typer.Option("--eps", metavar="E",
                     help=_with_default(
                         "ε for fixed-ε attacks, repeatable: [0, 1] pixel units, e.g. 8/255; tag "
                         "as linf:E or l2:E when L∞ and L2 attacks are mixed.",
                         "a grid per norm")),
    ] = None,
    n: Annotated[int, typer.Option("--count", "--n",
                                   help="Faces per set (samples of a generator).")] = 32,
    reference: Annotated[
        str | None,
        typer.Option("--reference", metavar="DATA",
                     help=_with_default("Real faces to compare with (an external generator "
                                        "needs it).", "a checkpoint's training data")),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the results JSON here (atomically)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of subsets, samples, targets, starts.")] = 0,
    steps: Annotated[int, typer.Option(help="PGD iterations.")] = 10,
    corruptions: Annotated[
        bool, typer.Option(help="Also measure embedding drift under noise, blur and JPEG.")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Images attacked at once.")] = 32,
    device: Device = None,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    discriminator: DiscriminatorSpec = None,
    allow_nondeterministic: AllowNondeterministic = False,
) -> None:
    """Adversarial (foolbox) and corruption robustness of the face recognizer or D."""
    _writable("--json", json_path)
    json_path = _absolute(json_path)
    preflight.check_data(target)
    preflight.check_data(reference, "--reference")
    get_attacks(attack_names or DEFAULT_ATTACKS)
    options = _generator_options(z_dim, truncation, classes, labels, output_range, discriminator,
                                 allow_nondeterministic)
    from gan_eval.devices import resolve_device
    from gan_eval.robustness import AttackConfig, AttackOptions, attack

    target_arg = _generator_arg(target, options, n=n, seed=seed, device=resolve_device(device),
                                batch_size=batch_size)
    results = attack(target_arg, AttackConfig(
        model=model, attacks=tuple(attack_names or DEFAULT_ATTACKS),
        epsilons=tuple(eps) if eps else None,
        n=n, reference=reference, corruptions=corruptions, options=AttackOptions(steps=steps),
        batch_size=batch_size, seed=seed, device=device,
        progress=lambda message: typer.echo(f"attack: {message}", err=True)))
    if json_path is not None:
        results.save(json_path)
    typer.echo(attack_table(results))
    if json_path is not None:
        typer.echo(f"\nresults written to {json_path}")


ExtractorName = Annotated[
    list[str] | None,
    typer.Option(
        "--extractor",
        "-e",
        metavar="NAME",
        help=_with_default("Feature extractor, repeatable: " + ", ".join(catalogue.EXTRACTORS)
                           + ".", "dlib-face"),
        show_default=False,
    ),
]
InceptionWeights = Annotated[
    Path | None,
    typer.Option(
        "--inception-weights",
        metavar="PATH", show_default=False,
        help=_with_default("weights-inception-2015-12-05-6726825d.pth (never downloaded; same as "
                           "--weights inception=PATH).",
                           "$GAN_EVAL_INCEPTION_WEIGHTS, then the weights caches"),
    ),
]


@command("evaluate")
def evaluate_cmd(
    generated: Annotated[
        str, typer.Argument(metavar="GENERATED", help="Generated images: any DATA.")
    ],
    reference: Annotated[
        str,
        typer.Option("--reference", "-r", metavar="DATA", help="Real images: any DATA."),
    ],
    extractor: ExtractorName = None,
    n: Annotated[int | None, typer.Option("--count", "--n",
                                          help="Images to sample from a generator.")] = None,
    resolution: Annotated[int | None, typer.Option(help="Resize both sets to this size.")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results JSON here.")
    ] = None,
    inception_weights: InceptionWeights = None,
    weights: WeightsPairs = None,
    splits: Annotated[int, typer.Option(
        help="Random halves/quarters of the generated set behind the 95% intervals of fid, "
             "fid_infinity, recall and is (split-variance extrapolation).")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of sampling and of the interval splits.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    device: Device = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the feature cache.")
    ] = False,
    quiet: Quiet = False,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    allow_nondeterministic: AllowNondeterministic = False,
) -> None:
    """FID, KID, precision/recall, density/coverage (and IS on Inception) with 95% intervals.

    Under torchrun each process extracts a shard of the images; rank 0 prints and writes.
    """
    _writable("--json", json_path)
    json_path = _absolute(json_path)
    preflight.check_data(generated)
    preflight.check_data(reference, "--reference")
    extractors = tuple(extractor or ("dlib-face",))
    preflight.check_extractors(extractors)
    weights_pairs = preflight.weights_pairs(weights or [], inception_weights)
    preflight.check_weights_found(extractors, weights_pairs)
    options = _generator_options(z_dim, truncation, classes, labels, output_range,
                                 allow_nondeterministic=allow_nondeterministic)
    from gan_eval.distributed import is_main_process
    from gan_eval.evaluation import EvaluateConfig, evaluate

    generated_arg = _generator_arg(generated, options, resolution=resolution, n=n, seed=seed,
                                   device=device, batch_size=batch_size)
    results = evaluate(generated_arg, reference, EvaluateConfig(
        extractors=extractors, n=n, resolution=resolution,
        batch_size=batch_size, device=device, inception_weights=inception_weights,
        weights=weights_pairs,
        use_cache=not no_cache, splits=splits, seed=seed, progress=not quiet))
    if not is_main_process():
        return  # every torchrun process holds the same results; rank 0 reports them
    for note in results.provenance.get("notes", []):
        typer.echo(f"note: {note}", err=True)
    typer.echo(metrics_table(results.metrics))
    if json_path is not None:
        results.save(json_path)
        typer.echo(f"wrote {json_path}")


@command("calibrate")
def calibrate_cmd(
    data: DataArg,
    extractor: Annotated[str, typer.Option(
        "--extractor", "-e", help="Feature extractor: " + ", ".join(catalogue.EXTRACTORS) + ".")
    ] = "dlib-face",
    n: Annotated[int, typer.Option("--count", "--n", help="Generated samples you evaluate "
                                   "with (the n to check the intervals at).")] = 1000,
    n_reference: Annotated[int | None, typer.Option(
        "--reference-count", help=_with_default("Reference samples.", "every image of DATA"),
        show_default=False)] = None,
    trials: Annotated[int, typer.Option(help="Simulated draws per design (coverage ±2 % at "
                                        "400, ±3 % at 200).")] = 200,
    workers: Annotated[int | None, typer.Option(help=_with_default("Processes.", "up to 2"),
                                                show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 0,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the table as JSON here.")
    ] = None,
    weights: WeightsPairs = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    device: Device = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the feature cache.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Do the intervals hold on your features at your n? Simulates on DATA's own features.

    DATA's features become a population (smoothed bootstrap); pseudo-generated sets of
    --count are drawn against a reference, and each interval's coverage of what it claims
    and its width against the true spread are printed, with whether gan-eval reports it.
    """
    _writable("--json", json_path)
    json_path = _absolute(json_path)
    preflight.check_data(data)
    preflight.check_extractors([extractor])
    pairs = preflight.weights_pairs(weights or [])
    preflight.check_weights_found([extractor], pairs)
    from gan_eval.calibration import CalibrateConfig, calibrate  # torch-free until it runs

    config = CalibrateConfig(extractor=extractor, n=n, n_reference=n_reference, trials=trials,
                             seed=seed, workers=workers, device=device, batch_size=batch_size,
                             weights=dict(pairs).get(extractor), use_cache=not no_cache,
                             progress=not quiet)
    from gan_eval.report.tables import calibration_table

    found = calibrate(data, config)
    for note in found.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(calibration_table(found))
    if json_path is not None:
        from gan_eval.fileio import atomic_write_text

        atomic_write_text(json_path, json.dumps(found.to_json(), indent=2) + "\n")
        typer.echo(f"wrote {json_path}")


@command("report")
def report_cmd(
    data: Annotated[
        str | None,
        typer.Option(metavar="DATA", show_default=False, help=_with_default(
            "Training/reference faces (an external --checkpoint needs it).",
            "the checkpoint's training data, else builtin:lfw-train")),
    ] = None,
    heldout: Annotated[
        str | None,
        typer.Option(metavar="DATA", show_default=False, help=_with_default(
            "Real faces of people kept out of training, for the membership test.",
            "builtin:lfw-heldout with builtin:lfw-train, else none")),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(metavar="GENERATOR", help="Audit this generator (a checkpoint, py:/file.py:"
                     "attr, TorchScript or .onnx) instead of training a DCGAN.",
                     show_default=False),
    ] = None,
    out: Annotated[Path, typer.Option(
        help="Report folder (runs/ is git-ignored; the committed reports/default is a reference "
             "copy: write there only to update it).")] = Path("runs/report"),
    from_results: Annotated[
        Path | None,
        typer.Option(metavar="RESULTS_JSON", help="Only draw the report of this results.json.",
                     show_default=False),
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps (when training).")] = 300,
    restoration_steps: Annotated[int, typer.Option(
        help="Steps of the restoration GAN trained on DATA and audited first, beside the "
             "built-in baselines, on the held-out faces (0: the baselines only).")] = 400,
    n: Annotated[int, typer.Option("--count", "--n",
                                   help="Generated faces for the metrics.")] = 1000,
    attack_n: Annotated[int, typer.Option(help="Faces per set in the robustness sweep.")] = 8,
    gates: Annotated[
        Path | None,
        typer.Option(metavar="GATES_TOML", show_default=False,
                     help=_with_default("Gates for the verdict.", "gan-eval's built-in gates")),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(metavar="RESULTS_JSON", help="Baseline for the gates.",
                                  show_default=False)
    ] = None,
    inception_weights: InceptionWeights = None,
    seed: Annotated[int, typer.Option(help="Seed of training, sampling and interval splits.")] = 0,
    device: Device = None,
    quiet: Quiet = False,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    allow_nondeterministic: AllowNondeterministic = False,
    batch_size: GeneratorBatch = None,
) -> None:
    """The whole pipeline (train → evaluate → recognition → attacks → gates) as an HTML report.

    With no options: a small DCGAN on the built-in LFW faces, reported in runs/report/.
    The gate verdict is shown on the page and in the last line; the exit code stays 0 (use
    `gan-eval gate` to fail a CI job).
    """
    _writable("--out", out, folder=True)
    out = _absolute(out)
    if from_results is not None:
        Results.load(from_results)  # a file that is not a results JSON is refused now
    else:
        preflight.check_data(data, "--data")
        preflight.check_data(heldout, "--heldout")
        kind = preflight.check_spec(checkpoint, "--checkpoint")
        if kind not in (None, SpecKind.CHECKPOINT):
            preflight.data_for_external(str(checkpoint), data)
        gate_config = load_config(gates) if gates is not None else None
        if baseline is not None:
            base = Results.load(baseline)
            if gate_config is not None:
                check_baseline(gate_config, base, baseline_source=str(baseline))
    generator = _generator_options(z_dim, truncation, classes, labels, output_range,
                                   allow_nondeterministic=allow_nondeterministic)
    from gan_eval.audit import AuditConfig, run_audit
    from gan_eval.report.render import render_from_results

    start = time.perf_counter()

    def say(message: str) -> None:
        typer.echo(f"report [{time.perf_counter() - start:6.1f} s] {message}", err=True)

    if from_results is not None:
        index = render_from_results(from_results, out)
    else:
        index = run_audit(AuditConfig(
            data=data, heldout=heldout, checkpoint=checkpoint, out=out, steps=steps, n=n,
            attack_n=attack_n, restoration_steps=restoration_steps,
            gates=gates, baseline=baseline, inception_weights=inception_weights, seed=seed,
            device=device, progress=None if quiet else say, generator=generator,
            generator_batch=batch_size))
    typer.echo(f"report       {index}")
    typer.echo(f"results      {index.parent / 'results.json'}")
    typer.echo(f"gates        {_verdict(index.parent / 'results.json')}")


def _verdict(results_json: Path) -> str:
    """One line of the report's gate verdict (the report exits 0 either way; ``gate`` fails CI)."""

    gates = Results.load(results_json).gates
    checks = gates.get("checks", [])
    unjudged = [c["gate"] for c in checks if c.get("kind") == "cannot_judge"]
    failed = [c["gate"] for c in checks if not c["passed"] and c.get("kind") != "cannot_judge"]
    if not checks:
        return "none checked"
    if unjudged:
        return (f"cannot judge {len(unjudged)} of {len(checks)}: {', '.join(unjudged)}"
                + (f"; failed: {', '.join(failed)}" if failed else ""))
    if not failed:
        return f"all {len(checks)} passed ({gates.get('config', 'gates')})"
    return f"{len(failed)} of {len(checks)} failed: {', '.join(failed)}"


@command("gate")
def gate_cmd(
    target: Annotated[
        str,
        typer.Argument(metavar="RESULTS_JSON_OR_GENERATOR",
                       help="A results.json to judge, or a GENERATOR (checkpoint, py:/file.py:"
                       "attr, TorchScript, .onnx) to evaluate (only the metrics the gates name "
                       "are computed).", show_default=False),
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="Gates TOML file.")],
    baseline: Annotated[Path | None, typer.Option(
        help="Baseline results.json: each gated metric is tested against it (one-sided, at the "
             "config's [baseline] alpha and tolerance; fid etc. only at equal --count).")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    data: Annotated[
        str | None,
        typer.Option(metavar="DATA", show_default=False, help=_with_default(
            "Reference faces for a generator (an external generator needs it).",
            "a checkpoint's training data")),
    ] = None,
    n: Annotated[int, typer.Option("--count", "--n",
                                   help="Samples drawn from a generator.")] = 1000,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", metavar="PATH", help="Write a checkpoint's results here (a "
                     "baseline for the next run).", show_default=False),
    ] = None,
    inception_weights: InceptionWeights = None,
    seed: Annotated[int, typer.Option(help="Seed of sampling and interval splits.")] = 0,
    device: Device = None,
    z_dim: ZDim = None,
    truncation: Truncation = None,
    classes: Classes = None,
    labels: Labels = None,
    output_range: OutputRange = "-1,1",
    allow_nondeterministic: AllowNondeterministic = False,
    batch_size: GeneratorBatch = None,
) -> None:
    """Exit 0 when every gate passes, 1 when one fails, 2 on a bad config or results file."""
    _writable("--json", json_path)
    _writable("--junit", junit)
    json_path, junit = _absolute(json_path), _absolute(junit)

    gates = load_config(config)
    base = Results.load(baseline) if baseline is not None else None
    is_results = _is_results_file(Path(target))
    if base is not None:  # a baseline that cannot be compared fails before any evaluation
        check_baseline(gates, base, baseline_source=str(baseline))
    if not is_results:
        kind = preflight.check_spec(target)
        if kind is not SpecKind.CHECKPOINT:
            preflight.data_for_external(target, data)
        preflight.check_data(data, "--data")
        generator = _generator_options(z_dim, truncation, classes, labels, output_range,
                                       allow_nondeterministic=allow_nondeterministic)
        from gan_eval.audit import AuditConfig, gate_generator

        results = gate_generator(target, gates, AuditConfig(
            data=data, n=n, seed=seed, device=device, inception_weights=inception_weights,
            generator=generator,
            generator_batch=batch_size,
            progress=lambda message: typer.echo(f"gate: {message}", err=True)))
        if json_path is not None:
            results.save(json_path)
    else:
        results = Results.load(target)
    checks = evaluate_gates(gates, results, base, source=str(target),
                            baseline_source=str(baseline))
    typer.echo(gates_table(checks))
    if junit is not None:
        write_junit(checks, junit)
    unjudged = [c for c in checks if not c.judged]
    if unjudged:  # exit 2: not a failed gate (1 means only that)
        raise InputError("; ".join(f"{c.gate}: {c.message}" for c in unjudged))
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


NamesArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="NAME...",
                   help=_with_default(f"Weights names: {', '.join(weights_table.WEIGHTS)}.",
                                      "all")),
]


def _known_names(names: list[str] | None) -> list[str]:
    """``names`` (default: every known weights file), each checked (exit 2 on an unknown one)."""
    chosen = list(names or weights_table.WEIGHTS)
    for name in chosen:
        weights_table.known(name)
    return chosen


@command("list", weights_app)
def weights_list_cmd(names: NamesArg = None) -> None:
    """Each known weights file: name, published sha256, size, official URL, where it was found."""
    for name in _known_names(names):
        located = weights_table.locate(name)
        entry = located.entry
        spec = catalogue.EXTRACTORS[name]
        where = f"found ({located.source}): {located.path}" if located.path else (
            f"not found (looked at: {', '.join(located.tried)}; run `gan-eval weights fetch "
            f"{entry.name}`, pass `--weights {entry.name}=PATH` or set {entry.env})"
        )
        needs = ""
        if spec.packages:
            missing = spec.missing_packages()
            needs = (f"\n  needs:   {', '.join(spec.packages)} ("
                     + (f"missing: {spec.install_hint()}" if missing else "installed") + ")")
        typer.echo(f"{entry.name}\n  file:    {entry.filename} ({entry.approx_size}, "
                   f"{entry.kind})\n  sha256:  {entry.published_hash}\n"
                   f"  hash:    {entry.hash_source}\n  url:     {entry.url}\n"
                   f"  license: {entry.license}{needs}\n  where:   {where}")


@command("fetch", weights_app)
def weights_fetch_cmd(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Weights to download.")],
    url: Annotated[str | None, typer.Option(
        "--url", help="Download from this mirror URL (http/https), not the official one (one "
                      "NAME).")] = None,
    dest: Annotated[str | None, typer.Option(
        "--dest", show_default=False,
        help=_with_default("Target folder.", "$GAN_EVAL_WEIGHTS_DIR or ~/.cache/gan-eval/weights")
    )] = None,
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="Full sha256 the file must have (pins files with no published "
                         "hash; one NAME).")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, help="Resumptions after a cut connection.")] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download weights files (explicit opt-in): resumable, sha256- and content-checked, atomic.

    A file is placed only when its size matches the server's answer, its sha256 matches the
    published or pinned one, and its content is the expected network (right format, exact
    parameter names and shapes); otherwise nothing is placed (exit 3). Exit 2: an unusable
    --dest / $GAN_EVAL_WEIGHTS_DIR, a malformed --url, or another fetch of the file running.
    """
    if (url or sha256) and len(names) != 1:
        raise InputError("--url and --sha256 apply to one NAME at a time")
    _known_names(names)
    from gan_eval.features.registry import weights_check

    for name in names:
        path = weights_table.fetch(name, check=weights_check(name), url=url, dest_dir=dest,
                                   sha256=sha256, retries=retries, progress=not quiet)
        typer.echo(str(path))


@command("verify", weights_app)
def weights_verify_cmd(names: NamesArg = None) -> None:
    """Check each found weights file: its sha256 against the published, pinned or recorded one,
    and its content (format, parameter names and shapes) as the extractor reads it.

    Exit 3 when a file does not match or is not the expected network, or when a NAME given
    explicitly is not found.
    """
    chosen = _known_names(names)
    from gan_eval.features.registry import weights_check

    bad: list[str] = []
    for name in chosen:
        row = weights_table.verify_one(name, check=weights_check(name))
        typer.echo(f"{row.entry.name}: {row.status}"
                   + (f" {row.path} sha256 {row.sha256}" if row.path else "")
                   + (f" (expected {row.expected})" if row.status == "mismatch" else "")
                   + (f"\n  {row.detail}" if row.detail else ""))
        if row.status in weights_table.BAD_STATUSES or (row.status == "missing" and names):
            bad.append(row.entry.name)
    if bad:
        raise MissingAssetError(
            f"{', '.join(bad)}: missing, not matching its sha256, or not the expected network; "
            f"run `gan-eval weights fetch {' '.join(bad)}` (a file that fails is replaced)"
        )


P = TypeVar("P", str, Path)


@typing.overload
def _absolute(path: P) -> P: ...
@typing.overload
def _absolute(path: None) -> None: ...
def _absolute(path: str | Path | None) -> str | Path | None:
    """``path`` made absolute now, before any user code runs (a generator that changes the
    working directory must not move gan-eval's outputs); None stays None."""
    if path is None:
        return None
    return Path(os.path.abspath(path)) if isinstance(path, Path) else os.path.abspath(path)


def _writable(option: str, path: str | Path | None, *, folder: bool = False) -> None:
    """Refuse an unusable output path before any work (exit 2 naming ``option``)."""

    if path is not None:
        (check_output_dir if folder else check_output_file)(path, option)


def _is_results_file(target: Path) -> bool:
    """True when ``target`` is a JSON file (a results file to judge), False for a generator."""
    return (target.is_file() and target.suffix.lower() == ".json"
            and target.name != "checkpoint.json")


def _format_warning(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, line: str | None = None) -> str:
    """gan-eval's own warnings as ``warning: MESSAGE`` lines (others as Python formats them)."""
    if issubclass(category, GanEvalWarning):
        return f"warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


_PYTHON_FORMAT = warnings.formatwarning


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _format_warning
    app()
