"""The layout keeps its promises: the layers below, each importing only from its own layer and those
under it (lazy imports included), no import cycles, small modules (Python and the web view's scripts),
ultralytics only behind its backend, a lean start-up path, and docs generated from the one Settings
declaration."""

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

# The house, bottom to top: a module may import from its own layer and the layers below it, never from
# one above (a module belongs to the layer of the longest name that is it or a package above it). Within
# a layer, the cycle test keeps the order.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("detector.text", "detector.errors", "detector.machine", "detector.signals",
                    "detector.redact", "detector.files", "detector.progress")),
    ("core types", ("detector.events", "detector.types", "detector.review_items", "detector.catalog",
                    "detector")),
    ("settings", ("detector.settings",)),
    ("primitives", ("detector.media", "detector.drawing", "detector.stats", "detector.charts",
                    "detector.sources", "detector.tracking", "detector.backends")),
    ("stages", ("detector.stages", "detector.motion")),
    ("review items", ("detector.reviews",)),
    ("event store", ("detector.eventstore",)),
    ("sinks", ("detector.sinks",)),
    ("outlets", ("detector.storage", "detector.report", "detector.report_html", "detector.mqtt",
                 "detector.notify")),
    ("pipeline", ("detector.pipeline",)),
    ("web view", ("detector.web",)),
    ("composition", ("detector.compose",)),
    ("commands", ("detector.bench", "detector.batch", "detector.cli", "detector.__main__")),
]  # fmt: skip


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


def _layer_of(name: str) -> int | None:
    """The layer of the longest listed name that is ``name`` or a package above it (``detector`` itself
    is its ``__init__`` only: every other module must be listed)."""
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for level, (_, packages) in enumerate(LAYERS):
        for package in packages:
            inside = package != "detector" and name.startswith(package + ".")
            if (name == package or inside) and (best is None or len(package) > best[0]):
                best = (len(package), level)
    return None if best is None else best[1]


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Every import from a module to one in a higher layer, as 'module (layer) -> target (layer)'."""
    known = set(modules)
    wrong = []
    for name, path in sorted(modules.items()):
        level = _layer_of(name)
        assert level is not None, f"{name} is in no layer: add it to LAYERS in tests/test_architecture.py"
        for target in sorted(_imports(path, name, known)):
            higher = _layer_of(target)
            if higher is not None and higher > level:
                wrong.append(f"{name} ({LAYERS[level][0]}) -> {target} ({LAYERS[higher][0]})")
    return wrong


def test_layers_only_import_downwards() -> None:
    wrong = upward_imports(_modules())
    assert not wrong, "imports from a higher layer: " + ", ".join(wrong)


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The check sees a lazy import from a lower layer to a higher one (the event store asking the web
    view for something), as a module in the package would make it."""
    module = tmp_path / "store" / "upward.py"
    module.parent.mkdir()
    module.write_text("def f() -> None:\n    from detector.web.server import serve  # noqa\n")
    modules = {**_modules(), "detector.eventstore.upward": module}
    assert upward_imports(modules) == [
        "detector.eventstore.upward (event store) -> detector.web.server (web view)"
    ]


def test_sinks_never_reach_into_stages() -> None:
    """What a sink needs of a stage (the heatmap's picture) is handed to it; both take drawing
    primitives from ``detector.drawing``."""
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
    """Python modules and the web view's scripts alike (split where the concerns part)."""
    files = {**_modules(), **{p.name: p for p in (PACKAGE / "web" / "static").glob("*.js")}}
    big = {name: n for name, path in files.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"
    assert any(name.endswith(".js") for name in files), "the web view's scripts are checked too"


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
