"""The house rules of the code base, checked on the source itself: module size, private names, layer arrows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rmteach"
MODULES = sorted(p for p in SRC.rglob("*.py"))
# The layers, lowest first: a module may import from its own layer and the ones below, never from above.
# Within the commands' layer, a package imports no sibling: what two commands share lives in `core` or
# `backends`. A world builder (`toy`) composes commands' configs, so it sits above them, beside `study`.
LAYERS = [("core",), ("backends",), ("evaluate", "train", "theory", "rm", "serve"), ("toy", "study", "curate", "world"),
          ("demo", "cli", "__main__")]
COMMANDS = LAYERS[2] + LAYERS[3]  # packages that must not import a sibling of their own layer


def _dotted(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The layer of `rmteach.<top>...`; None for the package root."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return next(i for i, tops in enumerate(LAYERS) if parts[1] in tops)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every `from X import ...` in a module, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("rmteach"):
                found.append((module, [a.name for a in node.names]))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 350


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_crosses_a_module(path):
    crossing = [(m, n) for m, names in _imports(path) for n in names if n.startswith("_") and n != "__version__"]
    assert not crossing


def _upward(module: str, imports: list[tuple[str, list[str]]]) -> list[str]:
    """The imported modules of `module` that sit in a higher layer than it."""
    mine = _layer(module)
    return [m for m, _ in imports if mine is not None and (lay := _layer(m)) is not None and lay > mine]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path):
    assert not _upward(_dotted(path), _imports(path))


def _sideways(module: str, imports: list[tuple[str, list[str]]]) -> list[str]:
    """The imported modules of `module` that belong to another command package of the same layer."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in COMMANDS:
        return []
    mine = _layer(module)
    return [m for m, _ in imports
            if len(m.split(".")) > 1 and m.split(".")[1] in COMMANDS and m.split(".")[1] != parts[1]
            and _layer(m) == mine]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_command_imports_a_sibling_command(path):
    assert not _sideways(_dotted(path), _imports(path))


def test_the_sibling_check_sees_a_sideways_import():
    assert _sideways("rmteach.rm.trainer", [("rmteach.train.run_dir", ["MARKER"]), ("rmteach.core.trl", ["x"]),
                                            ("rmteach.rm.config", ["y"])]) == ["rmteach.train.run_dir"]
    assert _sideways("rmteach.study.run", [("rmteach.evaluate.run", ["x"]), ("rmteach.toy.build", ["y"])]) == [
        "rmteach.toy.build"]
    assert _sideways("rmteach.core.io", [("rmteach.core.errors", ["x"])]) == []


def test_rm_and_train_share_nothing_but_lower_layers():
    for a, b in (("rm", "train"), ("train", "rm")):
        for path in (SRC / a).rglob("*.py"):
            assert not [m for m, _ in _imports(path) if m.startswith(f"rmteach.{b}")], path


def test_the_layer_check_sees_an_upward_import():
    assert _upward("rmteach.core.config", [("rmteach.study.run", ["x"]), ("rmteach.core.io", ["y"])]) == [
        "rmteach.study.run"]
    assert _upward("rmteach.study.run", [("rmteach.core", ["io"]), ("rmteach.train.run", ["run_train"])]) == []
    assert _upward("rmteach", [("rmteach.study.run", ["x"])]) == []  # the root re-exports everything


def test_pure_modules_import_no_model_code():
    for name in ("core/metrics.py", "study/analysis.py", "study/outcomes.py", "study/claims.py", "theory/sim.py"):
        text = (SRC / name).read_text(encoding="utf-8")
        for heavy in ("torch", "transformers", "trl"):
            assert f"import {heavy}" not in text and f"from {heavy}" not in text, (name, heavy)
