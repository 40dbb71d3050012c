"""The package's layering (stated in ``gan_eval/__init__.py``) holds in the code: every import
points down, no two packages of one floor import each other, and there is no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import gan_eval

ROOT = Path(gan_eval.__file__).parent

FLOORS: list[set[str]] = [
    {"version", "errors"},
    {"seeding", "faces", "catalogue", "fileio", "devices", "estimates", "environment"},
    {"metrics", "results", "distributed", "weights"},
    {"gates"},
    {"data"},
    {"features", "gan"},
    {"generators"},
    {"preflight"},
    {"sources"},
    {"evaluation", "calibration", "identity", "robustness"},
    {"restoration"},
    {"report"},
    {"audit"},
    {"cli"},
    {"__main__"},
]
"""Units (top-level modules and packages of gan_eval) from the ground floor up."""

FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("gan_eval", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """gan_eval modules that ``name`` imports anywhere (module level, functions, TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.startswith("gan_eval")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if not base.startswith("gan_eval"):
                continue
            for alias in node.names:  # `from gan_eval import distributed` names a module
                full = f"{base}.{alias.name}"
                out.add(full if full in MODULES else base)
    return out


MODULES = _modules()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_floor() -> None:
    units = {_unit(m) for m in MODULES} - {"__init__"}
    assert units <= set(FLOOR), f"units without a floor: {sorted(units - set(FLOOR))}"


def test_imports_point_down() -> None:
    wrong = []
    for name, path in MODULES.items():
        unit = _unit(name)
        if unit == "__init__":  # the package's lazy public API sits above everything
            continue
        for target in _imports(name, path):
            other = _unit(target)
            if other == unit:
                continue
            if other == "__init__" or FLOOR[other] >= FLOOR[unit]:
                wrong.append(f"{name} (floor {FLOOR[unit]}) imports {target} "
                             f"(floor {FLOOR.get(other, '?')})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    graph = {name: {t for t in _imports(name, path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the design
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layering_is_stated_in_the_package_docstring() -> None:
    doc = gan_eval.__doc__ or ""
    for units in FLOORS:
        for unit in units - {"__main__"}:
            assert f"gan_eval.{unit}" in doc, f"{unit} missing from the layering in the docstring"
