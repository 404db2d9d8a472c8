"""Imports only point down: cli → studies/web → grid → core → attacks/models/data/report → shared.

Each module's imports (function-level ones included) are read with ``ast``; a module may
import its own group or any group of a lower rank, never one of its rank or above. The
``attacks/`` plugin (installed as ``robustdigits.attacks``) may use only ART, torch,
NumPy and our ``errors`` and ``checks``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# group → rank; a group may import groups of a lower rank (and itself).
RANKS = {
    "entry": 7,  # the console script starts the CLI
    "cli": 6, "api": 6,
    "studies": 5, "web": 5,
    "grid": 4,
    "core": 3,
    "attacks": 2, "models": 2, "data": 2, "report": 2,
    "shared": 1,
}
WINGS = {"cli", "data", "studies", "grid", "report", "web", "attacks"}
TOP = {
    "training": "core", "checkpoints": "core", "evaluation": "core", "variants": "core", "config": "core",
    "art_bridge": "core", "robust_training": "core",
    "models": "models", "api": "api", "entry": "entry", "__main__": "entry",
    "errors": "shared", "checks": "shared", "fileio": "shared", "scoring": "shared", "targets": "shared",
    "devices": "shared", "study_loop": "shared",
}
ATTACKS_MAY_USE = {"robustdigits.errors", "robustdigits.checks"}


def group_of(module: str) -> str | None:
    """``robustdigits.studies.bench`` → ``studies``; ``robustdigits.training`` → ``core``;
    None for the package itself and for anything not ours."""
    parts = module.split(".")
    if parts[0] != "robustdigits" or len(parts) == 1 or parts[1] == "__version__":
        return None
    if parts[1] in WINGS:
        return parts[1]
    if parts[1] not in TOP:
        raise AssertionError(f"{module} is in no layer: add it to TOP in tests/test_layering.py")
    return TOP[parts[1]]


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    """Absolute names of what ``module`` imports (``from . import x`` counts as ``pkg.x``)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if node.module is None or prefix == "robustdigits":  # from . import api: the submodules
                found.update(f"{prefix}.{alias.name}" for alias in node.names)
            else:
                found.add(prefix)
    return found


def our_modules() -> dict[str, tuple[str, bool]]:
    """Every module of the installed package: name → (source, is a package)."""
    modules = {}
    for path in sorted((ROOT / "robustdigits").rglob("*.py")) + sorted((ROOT / "attacks").glob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[0] == "attacks":
            parts = ["robustdigits", *parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path.read_text(), is_package)
    return modules


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    problems = []
    for module, (source, is_package) in modules.items():
        mine = group_of(module)
        if mine is None:
            continue
        for imported in sorted(imports_of(module, source, is_package)):
            if mine == "attacks":
                if imported.startswith("robustdigits") and group_of(imported) != "attacks" \
                        and imported not in ATTACKS_MAY_USE:
                    problems.append(f"{module} imports {imported}: attacks/ may use only errors and checks of ours")
                continue
            theirs = group_of(imported)
            if theirs is None or theirs == mine:
                continue
            if RANKS[theirs] >= RANKS[mine]:
                problems.append(f"{module} ({mine}) imports {imported} ({theirs}): imports must point down")
    return problems


def test_every_module_imports_only_downward():
    assert violations(our_modules()) == []


def test_every_module_has_a_layer():
    for module in our_modules():
        group_of(module)  # raises, naming the module, when it has none


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("robustdigits.grid.runner", "from ..studies.bench import x\n",
     "robustdigits.grid.runner (grid) imports robustdigits.studies.bench (studies): imports must point down"),
    ("robustdigits.data.loader", "def f():\n    from ..report import tables\n",
     "robustdigits.data.loader (data) imports robustdigits.report (report): imports must point down"),
    ("robustdigits.errors", "import robustdigits.training\n",
     "robustdigits.errors (shared) imports robustdigits.training (core): imports must point down"),
    ("robustdigits.attacks.regularized_gd", "from robustdigits.data.pixels import to_pixels\n",
     "robustdigits.attacks.regularized_gd imports robustdigits.data.pixels: attacks/ may use only errors and "
     "checks of ours"),
])
def test_an_upward_import_is_named(module, source, expected):
    assert violations({module: (source, False)}) == [expected]


def test_a_downward_import_passes():
    assert violations({"robustdigits.studies.bench": ("from ..grid.runner import run_grid\n"
                                                      "from ..errors import ConfigError\n", False)}) == []
