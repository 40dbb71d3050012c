"""Domain errors that the CLI maps to exit codes in one place (``gan_eval.cli``).

``InputError`` (exit 2): the user gave a file, folder or option that cannot be used. The message
names the file or option and says what was expected.

``MissingAssetError`` (exit 3): a required asset (weights file) is not installed; the message says
how to provide it.
"""

from __future__ import annotations


class GanEvalError(Exception):
    """Base class of the errors gan-eval raises on purpose."""

    exit_code = 1


class InputError(GanEvalError, ValueError):
    """Bad user input: a path, file content or option value that cannot be used (exit code 2)."""

    exit_code = 2


class MissingAssetError(GanEvalError, FileNotFoundError):
    """A required asset (e.g. network weights) is not available offline (exit code 3)."""

    exit_code = 3
