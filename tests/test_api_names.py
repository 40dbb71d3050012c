"""The package's public names are what their docstrings say, whatever was imported before them:
no API function shares its name with a submodule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gan_eval.audit  # imports the submodules gan_eval.evaluation and gan_eval.identity
import gan_eval
from gan_eval import EvaluateConfig, RecognitionConfig

first = gan_eval.evaluate("builtin:lfw-subset", "builtin:lfw-nonfaces",
                          EvaluateConfig(splits=4, use_cache=False, progress=False))
again = gan_eval.evaluate("builtin:lfw-subset", "builtin:lfw-nonfaces",
                          EvaluateConfig(splits=4, use_cache=False, progress=False))
assert first.metric("fid").value == again.metric("fid").value
faces = gan_eval.recognition("builtin:lfw-subset", "builtin:lfw-subset",
                             RecognitionConfig(birthday_trials=2, faceness_max=0,
                                               use_cache=False))
print("OK", first.metric("fid").value, faces.metric("leakage_rate").value)
"""


def test_evaluate_and_recognition_are_callable_after_their_modules_are_imported() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK")


def _packages() -> list[str]:
    import pkgutil

    import gan_eval

    return ["gan_eval"] + [f"gan_eval.{m.name}" for m in pkgutil.iter_modules(gan_eval.__path__)
                           if m.ispkg]


def _import_everything() -> None:
    """Import every module of gan_eval, so that any submodule that could shadow a public name
    of its package has been bound to it."""
    import importlib
    import pkgutil

    import gan_eval

    for info in pkgutil.walk_packages(gan_eval.__path__, "gan_eval."):
        if info.name != "gan_eval.__main__":
            importlib.import_module(info.name)


def test_no_public_name_is_also_a_submodule() -> None:
    import importlib
    import pkgutil

    clashes = []
    for name in _packages():
        package = importlib.import_module(name)
        submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        clashes += [f"{name}.{public}" for public in getattr(package, "__all__", ())
                    if public in submodules]
    assert clashes == []


def test_every_public_name_is_what_its_package_docstring_says() -> None:
    """Every name in each package's ``__all__`` resolves (after every module has been imported)
    to an object, never a module; a name the package docstring calls a :func: is a function,
    a :class: is a class; every public function and class has a docstring."""
    import importlib
    import inspect
    import re
    import types

    _import_everything()
    problems = []
    for name in _packages():
        package = importlib.import_module(name)
        doc = package.__doc__ or ""
        funcs = set(re.findall(r":func:`~?\.?(\w+)`", doc))
        classes = set(re.findall(r":class:`~?\.?(\w+)`", doc))
        for public in getattr(package, "__all__", ()):
            obj = getattr(package, public)
            where = f"{name}.{public}"
            if isinstance(obj, types.ModuleType):
                problems.append(f"{where} is a module")
                continue
            if public in funcs and not inspect.isfunction(obj):
                problems.append(f"{where}: documented as a function, is {type(obj).__name__}")
            if public in classes and not inspect.isclass(obj):
                problems.append(f"{where}: documented as a class, is {type(obj).__name__}")
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not obj.__doc__:
                problems.append(f"{where} has no docstring")
    assert problems == []
