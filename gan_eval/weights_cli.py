"""``gan-eval weights list | fetch | verify``: the known pretrained weights files.

A typer sub-app; the main CLI mounts it with ``app.add_typer(weights_cli.app, name="weights")``.
Each command maps gan-eval's errors to their exit codes itself (2: bad input, 3: missing or
corrupt asset) so it behaves the same mounted or run alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from gan_eval.errors import GanEvalError, MissingAssetError
from gan_eval.features import weights as w

app = typer.Typer(
    name="weights",
    help="List, fetch (explicit download) and verify the pretrained weights files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _errors_to_exit(name: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except GanEvalError as exc:
                typer.echo(f"gan-eval weights {name}: error: {exc}", err=True)
                raise typer.Exit(exc.exit_code) from None

        return wrapper  # type: ignore[return-value]

    return decorate


NamesArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="NAME...",
                   help=f"Weights names (default: all): {', '.join(w.WEIGHTS)}."),
]


@app.command("list")
@_errors_to_exit("list")
def list_cmd(names: NamesArg = None) -> None:
    """Each known weights file: name, published sha256, size, official URL, where it was found."""
    for name in names or list(w.WEIGHTS):
        located = w.locate(name)
        entry = located.entry
        where = f"found ({located.source}): {located.path}" if located.path else (
            f"not found (looked at: {', '.join(located.tried)}; "
            f"set {entry.env} or run `gan-eval weights fetch {entry.name}`)"
        )
        typer.echo(f"{entry.name}\n  file:    {entry.filename} ({entry.approx_size}, "
                   f"{entry.kind})\n  sha256:  {entry.published_hash}\n"
                   f"  hash:    {entry.hash_source}\n  url:     {entry.url}\n"
                   f"  license: {entry.license}\n  where:   {where}")


@app.command("fetch")
@_errors_to_exit("fetch")
def fetch_cmd(
    names: Annotated[list[str], typer.Argument(metavar="NAME...", help="Weights to download.")],
    url: Annotated[str | None, typer.Option(
        "--url", help="Download from this mirror URL, not the official one (one NAME).")
    ] = None,
    dest: Annotated[str | None, typer.Option(
        "--dest", help="Target folder (default: $GAN_EVAL_WEIGHTS_DIR or "
                       "~/.cache/gan-eval/weights).")] = None,
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="Full sha256 the file must have (pins files with no published "
                         "hash; one NAME).")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, help="Resumptions after a cut connection.")] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download weights files (explicit opt-in): progress bar, resume, sha256 check, atomic."""
    if (url or sha256) and len(names) != 1:
        from gan_eval.errors import InputError

        raise InputError("--url and --sha256 apply to one NAME at a time")
    for name in names:
        path = w.fetch(name, url=url, dest_dir=dest, sha256=sha256, retries=retries,
                       progress=not quiet)
        typer.echo(str(path))


@app.command("verify")
@_errors_to_exit("verify")
def verify_cmd(names: NamesArg = None) -> None:
    """Hash each found weights file against its published, pinned or recorded sha256.

    Exit 3 when a file does not match, or when a NAME given explicitly is not found.
    """
    bad: list[str] = []
    for name in names or list(w.WEIGHTS):
        row = w.verify_one(name)
        typer.echo(f"{row.entry.name}: {row.status}"
                   + (f" {row.path} sha256 {row.sha256}" if row.path else "")
                   + (f" (expected {row.expected})" if row.status == "mismatch" else ""))
        if row.status == "mismatch" or (row.status == "missing" and names):
            bad.append(row.entry.name)
    if bad:
        raise MissingAssetError(
            f"{', '.join(bad)}: missing or not matching its sha256; run "
            f"`gan-eval weights fetch {' '.join(bad)}` (a mismatching file is replaced)"
        )
