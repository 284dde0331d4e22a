"""The package's architecture: sub-packages by stage, each importing only the stages below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[1] / "sim"
# Pipeline order: a sub-package may import itself and anything listed before it, never after.
LAYERS = ("stats", "scenario", "model", "analysis", "study", "report", "app", "cli")


def imported_layers(path: Path) -> set[str]:
    """Sub-packages of sim named by the import statements of one module (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sim" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def modules() -> list[Path]:
    return sorted(p for p in SIM.rglob("*.py") if p.parent != SIM)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SIM)))
def test_module_imports_only_its_own_and_lower_stages(path: Path) -> None:
    layer = path.relative_to(SIM).parts[0]
    assert layer in LAYERS, f"{layer} is not a known stage; add it to LAYERS in pipeline order"
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    upward = imported_layers(path) - allowed
    assert not upward, f"{path.relative_to(SIM)} imports upward: {upward}"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from sim.report.figures import power_figure\n")
    assert imported_layers(module) == {"report"}


def test_every_module_sits_in_a_stage_package() -> None:
    top_level = sorted(p.name for p in SIM.glob("*.py") if p.name != "__init__.py")
    assert top_level == []
