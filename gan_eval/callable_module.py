"""Modules that can be called like the function they are named after.

``gan_eval.evaluate`` and ``gan_eval.recognition`` are API functions whose names are also
submodules (``gan_eval/evaluate.py``, ``gan_eval/recognition/``). Once such a submodule has been
imported, Python binds the package attribute to the module, so ``gan_eval.evaluate(...)`` would
call a module. :func:`make_callable` lets the module stand for its function: calling it calls
the function of the same name, and everything else about the module is unchanged.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class CallableModule(types.ModuleType):
    """A module whose call is its namesake function's (``gan_eval.evaluate(...)``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the (imported) module ``module_name`` callable as its namesake function."""
    sys.modules[module_name].__class__ = CallableModule
