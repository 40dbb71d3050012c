"""Calling the user's code so that it never decides gan-eval's exit code or where outputs land.

The user's code is a ``py:`` / ``file.py:attr`` spec (its import, its factory, its forward) and any
external model's forward (TorchScript, ONNX, ``torch.export``), as a GENERATOR or as
``--discriminator``. Every call into it runs inside :func:`contained`, and whatever happens there
becomes an :class:`~gan_eval.errors.InputError` (exit 2) naming the spec and what the code did:

- an exception: its type and message (the last line of a long one, such as a TorchScript
  interpreter traceback) and the user's own frame (file, line, source); the full traceback is the
  error's ``detail``, shown with ``gan-eval --debug``;
- ``sys.exit()`` (``SystemExit``), a ``KeyboardInterrupt`` the code raised itself, or any other
  ``BaseException``: never gan-eval's own exit. Only a real Ctrl-C stays a ``KeyboardInterrupt``:
  while the code runs (in the main thread) a SIGINT handler records that the signal arrived before
  passing it on, which tells a signal from a ``raise KeyboardInterrupt`` in the code;
- errors gan-eval raises on purpose (:class:`~gan_eval.errors.GanEvalError`, e.g. from a factory
  that opens a gan-eval checkpoint) pass through unchanged.

The working directory is restored after every call (a factory that calls ``os.chdir`` must not
move gan-eval's outputs or break a relative ``--reference``). An import also runs with
``sys.argv`` set to the module's own name (a module that parses the command line when imported
sees no gan-eval option) and with what it prints held back: written out after a successful
import, quoted in the error of a failed one (so that its argparse usage text cannot pass for
gan-eval rejecting its own arguments).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import sysconfig
import threading
import traceback
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Literal

from gan_eval.errors import GanEvalError, InputError

MAX_MESSAGE = 400
"""Characters of the user's exception message kept in the one-line error."""

_PACKAGES_NOT_USER = ("torch", "numpy", "onnxruntime", "foolbox", "eagerpy", "typer", "click")
"""Libraries whose frames are never "the user's frame" of a traceback."""


def _library_roots() -> tuple[str, ...]:
    roots = {str(Path(__file__).resolve().parents[1])}  # gan_eval itself
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            roots.add(str(Path(paths[key]).resolve()))
    for name in _PACKAGES_NOT_USER:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.add(str(Path(module.__file__).resolve().parent))  # type: ignore[arg-type]
    return tuple(roots)


def _is_user_frame(filename: str, roots: tuple[str, ...], files: Collection[str]) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    resolved = str(Path(filename).resolve())
    if files:
        return resolved in files
    return not any(resolved == root or resolved.startswith(root + os.sep) for root in roots)


def user_frame(exc: BaseException, files: Collection[str] = ()) -> str:
    """`` (at FILE:LINE, in FUNCTION: SOURCE)`` for the innermost frame of the user's code in
    ``exc``'s traceback (a frame in ``files`` when given, else one outside gan-eval, the standard
    library and the libraries gan-eval calls), or "" when there is none. A ``SyntaxError`` names
    the line it points at."""
    if isinstance(exc, SyntaxError) and exc.filename:
        text = (exc.text or "").strip()
        return f" (at {exc.filename}:{exc.lineno}{': ' + text if text else ''})"
    resolved = {str(Path(f).resolve()) for f in files}
    roots = _library_roots()
    frames = traceback.extract_tb(exc.__traceback__)
    found = [f for f in frames if _is_user_frame(f.filename, roots, resolved)]
    if not found and resolved:  # the failing line is in a module the user's file imported
        found = [f for f in frames if _is_user_frame(f.filename, roots, ())]
    if not found:
        return ""
    frame = found[-1]
    line = (frame.line or "").strip()
    return f" (at {frame.filename}:{frame.lineno}, in {frame.name}{': ' + line if line else ''})"


def one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line: the last non-empty line of a long message (a
    TorchScript interpreter error ends with the Python error it raised), at most
    :data:`MAX_MESSAGE` characters."""
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kind = type(exc).__name__
    if not lines:
        return kind
    last = lines[-1]
    if len(last) > MAX_MESSAGE:
        last = last[: MAX_MESSAGE - 1] + "…"
    head = last.split(":", 1)[0]
    if head.isidentifier() and (head.endswith("Error") or head.endswith("Exception")):
        return last  # already "RuntimeError: …"
    return f"{kind}: {last}"


def _exit_code(exc: SystemExit) -> str:
    return "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"


class _SigintWatch:
    """Records whether a SIGINT arrived while installed (main thread only; elsewhere no signal
    is ever delivered, so a ``KeyboardInterrupt`` there is always raised by code)."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: signal.Handlers | int | object | None = None
        self._installed = False

    def _handler(self, signum: int, frame: object) -> None:
        self.seen = True
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
        # SIG_IGN: the signal stays ignored

    def __enter__(self) -> _SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            self._previous = signal.getsignal(signal.SIGINT)
            if self._previous is None:  # a handler installed from C: leave it alone
                return self
            signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        except (ValueError, OSError):  # not the main interpreter
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _held_text(buffer: io.StringIO) -> str:
    text = " | ".join(line.strip() for line in buffer.getvalue().splitlines() if line.strip())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


class contained(contextlib.AbstractContextManager["contained"]):  # a `with` statement's name
    """``with contained(name, action): …`` runs the user's code in the body (see the module doc).

    ``name`` names the spec in errors (``GENERATOR`` as given, or ``--discriminator SPEC``);
    ``action`` says what was running: it comes before "raised …" / "called sys.exit(…)" (e.g.
    ``calling the factory make()``), or after when it starts with "while" (``while importing
    /abs/g.py``). ``files``: the user's own source
    files, preferred when pointing at the failing line. ``argv``: ``sys.argv`` becomes
    ``[argv]`` meanwhile (the module's own name, for an import or a factory); ``hold_output``:
    what the code prints is held back (an import).
    """

    def __init__(self, name: str, action: str, *, files: Collection[str] = (),
                 argv: str | None = None, hold_output: bool = False) -> None:
        self.name = name
        self.action = action
        self.files = tuple(files)
        self.argv = argv
        self.hold_output = hold_output
        self._watch = _SigintWatch()
        self._cwd: str | None = None
        self._argv: list[str] = []
        self._held: tuple[io.StringIO, io.StringIO] | None = None
        self._redirects = contextlib.ExitStack()

    def __enter__(self) -> contained:
        self._cwd = _getcwd()
        self._watch.__enter__()
        if self.argv is not None:
            self._argv = sys.argv
            sys.argv = [self.argv]
        if self.hold_output:
            self._held = (io.StringIO(), io.StringIO())
            self._redirects.enter_context(contextlib.redirect_stdout(self._held[0]))
            self._redirects.enter_context(contextlib.redirect_stderr(self._held[1]))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        self._redirects.close()
        self._watch.__exit__()
        if self.argv is not None:
            sys.argv = self._argv
        if self._cwd is not None and _getcwd() != self._cwd:
            with contextlib.suppress(OSError):
                os.chdir(self._cwd)
        if exc is None:
            if self._held is not None:  # a successful import: what it printed, now
                sys.stdout.write(self._held[0].getvalue())
                sys.stderr.write(self._held[1].getvalue())
            return False
        if self._watch.seen:  # a real Ctrl-C, whatever the code turned it into
            if isinstance(exc, KeyboardInterrupt):
                return False
            raise KeyboardInterrupt from exc
        if isinstance(exc, GanEvalError):
            return False
        raise self.error(exc) from exc

    def error(self, exc: BaseException) -> InputError:
        """The :class:`InputError` that reports ``exc``, raised by the user's code."""
        where = user_frame(exc, self.files)
        if isinstance(exc, SystemExit):
            what = f"called {_exit_code(exc)}"
            tail = "; user code may not end gan-eval"
        elif isinstance(exc, KeyboardInterrupt):
            what = "raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
            tail = ""
        elif not isinstance(exc, Exception):
            what = f"raised {one_line(exc)} (a BaseException)"
            tail = ""
        else:
            what = f"raised {one_line(exc)}"
            tail = ""
            if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
                tail = ("; it is called with --batch-size inputs at a time: a smaller "
                        "--batch-size needs less memory")
        printed = ""
        if self._held is not None:
            said = _held_text(self._held[1]) or _held_text(self._held[0])
            if said:
                printed = f"; it printed: {said}"
            if "usage:" in self._held[1].getvalue() + self._held[0].getvalue():
                printed += (" — the module parses command-line arguments when it is imported "
                            "(those are not gan-eval's): do that only under "
                            "`if __name__ == \"__main__\":`")
        detail = "".join(traceback.format_exception(exc))
        said = (f"{what} {self.action}" if self.action.startswith("while ")
                else f"{self.action} {what}")
        return InputError(f"{self.name}: {said}{where}{tail}{printed}", detail=detail)

