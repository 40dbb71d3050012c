"""The ``gan-eval`` command line: thin typer commands over the Python API.

Domain errors become exit codes in one place (:func:`command`): 2 for bad input, 3 for a missing
asset; a passed gate is 0 and a failed gate 1.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from gan_eval.errors import GanEvalError

app = typer.Typer(
    name="gan-eval",
    help="Train DCGANs on faces and audit what they produce.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        from gan_eval import __version__

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
) -> None:
    """Train DCGANs on faces and audit what they produce."""


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a typer command whose gan-eval errors print one line and exit with their code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except GanEvalError as exc:
                typer.echo(f"gan-eval {name or fn.__name__}: error: {exc}", err=True)
                raise typer.Exit(exc.exit_code) from None

        app.command(name)(wrapper)
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


@command("inspect")
def inspect_cmd(
    data: DataArg,
    resolution: Annotated[
        int | None, typer.Option(help="Resize every image to this square size.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Count, resolution, channels, identities, content hash and problems of a DATA source."""
    from gan_eval.data import inspect_source
    from gan_eval.errors import InputError

    info = inspect_source(data, resolution=resolution)
    fatal = [p for p in info.problems if p.fatal]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "data": info.data,
                    "kind": info.kind,
                    "count": info.count,
                    "resolutions": {f"{h}x{w}": n for (h, w), n in info.resolutions.items()},
                    "channels": {str(c): n for c, n in info.channels.items()},
                    "identities": info.identities,
                    "content_hash": info.content_hash,
                    "problems": [
                        {"path": p.path, "message": p.message, "fatal": p.fatal}
                        for p in info.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        sizes = ", ".join(f"{h}×{w} ({n})" for (h, w), n in sorted(info.resolutions.items()))
        chans = ", ".join(f"{c} ({n})" for c, n in sorted(info.channels.items()))
        typer.echo(f"data         {info.data}")
        typer.echo(f"kind         {info.kind}")
        typer.echo(f"images       {info.count}")
        typer.echo(f"resolution   {sizes}")
        typer.echo(f"channels     {chans}   (read as RGB; gray repeated, alpha dropped)")
        identities = info.identities if info.identities is not None else "none (no subfolders)"
        typer.echo(f"identities   {identities}")
        typer.echo(f"sha256       {info.content_hash}")
        typer.echo(f"problems     {len(info.problems) or 'none'}")
        for problem in info.problems:
            typer.echo(f"  {'ERROR' if problem.fatal else 'note '} {problem}")
    if fatal:
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        raise InputError(f"{fatal[0]}{more}")


def main() -> None:
    """Console-script entry point."""
    app()
