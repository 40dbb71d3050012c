"""Domain errors that the CLI maps to exit codes in one place (``gan_eval.cli``).

``InputError`` (exit 2): the user gave a file, folder or option that cannot be used. The message
names the file or option and says what was expected.

``MissingAssetError`` (exit 3): a required asset (weights file) is not installed; the message says
how to provide it.

``GanEvalWarning``: something that does not stop the run but may make its numbers wrong (e.g. a
generator whose output looks unlike its declared range); the command line shows it as
``warning: …``.
"""

from __future__ import annotations


class GanEvalError(Exception):
    """Base class of the errors gan-eval raises on purpose.

    The message is what the user reads (one line or a few); ``detail``, when given, is the
    longer text behind it (e.g. the traceback of the user's code that failed), shown with
    ``gan-eval --debug``.
    """

    exit_code = 1

    def __init__(self, *args: object, detail: str | None = None) -> None:
        super().__init__(*args)
        self.detail = detail


class InputError(GanEvalError, ValueError):
    """Bad user input: a path, file content or option value that cannot be used (exit code 2)."""

    exit_code = 2


class MissingAssetError(GanEvalError, FileNotFoundError):
    """A required asset (e.g. network weights) is not available offline (exit code 3)."""

    exit_code = 3


class GanEvalWarning(UserWarning):
    """A warning gan-eval gives on purpose, about the user's input (shown as ``warning: …``)."""
