"""The layout keeps its promises: no import cycles (lazy imports included), small modules, ultralytics
only behind its backend, a lean start-up path, and docs generated from the one Settings declaration."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from detector.pipeline.engine import Pipeline
from detector.settings import docs

PACKAGE = ROOT / "detector"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every detector module ``path`` imports, at the top or inside functions."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycles_lazy_imports_included() -> None:
    modules = _modules()
    graph = {name: _imports(path, name, set(modules)) for name, path in modules.items()}
    # A package's __init__ that re-exports from its own modules is not a cycle with them.
    for name in graph:
        graph[name] = {
            t for t in graph[name] if not (name.startswith(t + ".") and modules[t].name == "__init__.py")
        }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_only_import_downwards() -> None:
    """Sinks never reach into stages: what a sink needs of a stage (the heatmap's picture) is handed to
    it; both take drawing primitives from ``detector.drawing``."""
    modules = _modules()
    known = set(modules)
    wrong = sorted(
        f"{name} -> {target}"
        for name, path in modules.items()
        if name.startswith("detector.sinks")
        for target in _imports(path, name, known)
        if target.startswith("detector.stages")
    )
    assert not wrong, "sinks import stages: " + ", ".join(wrong)


def test_modules_stay_small() -> None:
    big = {
        name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_only_the_ultralytics_backend_imports_ultralytics() -> None:
    importers = sorted(
        name
        for name, path in _modules().items()
        if any(
            (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "ultralytics" for a in n.names))
            or (
                isinstance(n, ast.ImportFrom)
                and not n.level
                and (n.module or "").split(".")[0] == "ultralytics"
            )
            for n in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert importers == ["detector.backends.ultralytics"]


def test_pipeline_takes_few_parameters() -> None:
    params = [p for p in inspect.signature(Pipeline.__init__).parameters if p != "self"]
    assert len(params) <= 8, params


def test_start_up_path_imports_no_heavy_libraries() -> None:
    """Neither the CLI nor --track (our ByteTrack, on NumPy and lap) brings torch in; paho-mqtt and
    Apprise come only with --mqtt and --notify."""
    code = (
        "import sys; from detector.cli import build_parser; build_parser(); import detector.compose.run; "
        "from detector.compose.outlets import Outlets; from detector.settings import Settings; "
        "Outlets.open(Settings()).close(); "
        "import numpy as np; from detector.stages.track import load_tracker; "
        "from detector.types import Detections; t = load_tracker('bytetrack', 10.0); "
        "t.update(Detections(np.array([[0, 0, 9, 9]]), [0.9], [0]), np.zeros((9, 9, 3), np.uint8)); "
        "heavy = ('torch', 'ultralytics', 'supervision', 'ray', 'starlette', 'uvicorn', "
        "'prometheus_client', 'paho', 'apprise'); "
        "print(type(t).__name__, sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "ByteTrack []"


def test_default_yaml_and_readme_tables_come_from_settings() -> None:
    assert (ROOT / "configs" / "default.yaml").read_text() == docs.render_default_yaml(), (
        "configs/default.yaml is out of date: run python -m detector.settings.docs"
    )
    readme = (ROOT / "README.md").read_text()
    for name in docs.BLOCKS:
        assert docs.BEGIN.format(name) in readme, f"README has no generated '{name}' table"
    assert readme == docs.render_readme(readme), (
        "README tables are out of date: run python -m detector.settings.docs"
    )
