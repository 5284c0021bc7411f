"""Every command the README shows works as written (issue 19, item 4).

Each fenced block of README.md is labelled: ``sh`` blocks are commands and run here, ``yaml`` blocks
are config fragments and must load as settings, ``text`` and ``json`` blocks are output and records
(with placeholders) and are only read. An unlabelled block fails the test, so nothing is skipped by
accident. Each command runs in a fresh temporary folder holding copies of ``videos/sample.mp4`` and
``configs/``, through this checkout's ``python -m detector``, with the model of the suite
($DETECTOR_MODEL). The stand-ins, the same for every command (a new README command needs no change
here unless it needs a new rule):

- a video file that does not exist (``door.mp4``, ``videos/door.mp4``): a copy of the sample clip;
- an image folder that does not exist (``path/to/images/``): Ultralytics' two pictures;
- a glob (``more/*.mkv``): one match, a copy of the sample clip;
- a stream URL (``rtsp://cam.local/stream``): a loopback stream of the sample clip in real time
  (GStreamer's RTSP server where installed, else ffmpeg's HTTP MPEG-TS), one per distinct URL;
- ``--serve PORT``: a free loopback port;
- ``--mqtt URL``: a loopback mosquitto with a password file (``tests/mosquitto.py``), the URL's topic
  prefix kept;
- ``--notify URL``: a loopback ``json://`` webhook (``tests/webhook.py``);
- an event store that does not exist (``detector events out/clips/events.db``): made by a run of the
  sample clip with ``--track --clip-on person --clips`` its folder;
- every ``detector run`` / ``detector batch`` gets ``--max-frames 30`` (the clip is 240 frames).

Declared skips (each shows its reason in the test report): the programs in ``SKIP_PROGRAMS``, a camera
index (no camera here), a web view bound beyond loopback (tests use loopback only), a Ray cluster, and
``detector serve`` (it serves until stopped; tests/test_history_live.py runs it).
A command passes when it exits 0, prints no traceback, and every output file it names exists.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from mosquitto import Broker
from rtsp import RtspServer, rtsp_missing
from streaming import StreamServer, free_port
from webhook import Webhook

from detector.cli import build_parser
from detector.settings import Settings
from detector.settings.flags import setting_overrides

README = ROOT / "README.md"
LABELS = {"sh", "yaml", "json", "text"}
SKIP_PROGRAMS = {
    "pip": "installs the package: the suite already runs in the installed tree",
    "pytest": "runs this suite",
    "ray": "starts a Ray cluster node",
    "ssh": "needs another machine",
}
POSITIONAL = {"run": "sources", "batch": "inputs", "bench": "source", "events": "file"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".gif", ".ts"}
MAX_FRAMES = "30"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)


@dataclass
class Block:
    line: int  # where its fence is in README.md
    label: str
    text: str


def blocks() -> list[Block]:
    readme = README.read_text()
    return [
        Block(readme.count("\n", 0, m.start()) + 1, m.group(2), textwrap.dedent(m.group(3)))
        for m in FENCE.finditer(readme)
    ]


def commands() -> list[tuple[int, str]]:
    """(README line, command) of every line of every ``sh`` block, continuation lines joined."""
    found = []
    for block in blocks():
        if block.label != "sh":
            continue
        pending, start = "", 0
        for k, line in enumerate(block.text.splitlines(), start=block.line + 1):
            if not pending:
                start = k
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = (pending + line).strip()
            pending = ""
            if command and not command.startswith("#"):
                found.append((start, command))
    return found


def test_every_block_is_labelled() -> None:
    unlabelled = [f"line {b.line}: ```{b.label}" for b in blocks() if b.label not in LABELS]
    assert not unlabelled, f"label each README block as one of {sorted(LABELS)}: {unlabelled}"
    assert len(commands()) >= 15, "the README's commands are found"


@pytest.mark.parametrize("block", [b for b in blocks() if b.label == "yaml"], ids=lambda b: f"line {b.line}")
def test_yaml_blocks_are_valid_settings(block: Block) -> None:
    Settings.model_validate(yaml.safe_load(block.text))


# -- the stand-ins -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pictures() -> list[Path]:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [assets / "bus.jpg", assets / "zidane.jpg"]


def skip_reason(argv: list[str]) -> str | None:
    """Why a command is not run here (a declared skip), or None."""
    if argv[0] in SKIP_PROGRAMS:
        return f"{argv[0]}: {SKIP_PROGRAMS[argv[0]]}"
    if argv[0] != "detector":
        return None  # an unknown program fails the test: add a rule for it
    if "--ray-address" in argv:
        return "needs a Ray cluster"
    if argv[1:2] == ["serve"]:
        return "detector serve serves until stopped (tests/test_history_live.py runs it)"
    serve = argv[argv.index("--serve") + 1] if "--serve" in argv else ""
    if ":" in serve and not serve.startswith(("127.", "localhost:", "[::1]:")):
        return "binds the web view beyond loopback (tests use loopback only)"
    args = build_parser().parse_args(argv[1:])
    given = getattr(args, POSITIONAL[args.command])
    if any(s.isdigit() for s in ([given] if isinstance(given, str) else given)):
        return "a camera index: no camera here (`detector cameras` lists them)"
    return None


class Workspace:
    """A fresh folder for one command, and the loopback streams standing in for its URLs."""

    def __init__(self, folder: Path, clip: Path, pictures: list[Path]) -> None:
        self.folder, self.clip, self.pictures = folder, clip, pictures
        (folder / "videos").mkdir()
        shutil.copy(clip, folder / "videos" / clip.name)
        shutil.copytree(ROOT / "configs", folder / "configs")
        self.servers: list[StreamServer] = []
        self.broker: Broker | None = None
        self.hook: Webhook | None = None

    def mqtt(self, url: str) -> str:
        """A loopback broker's URL in place of ``url``, its topic prefix kept."""
        if self.broker is None:
            (self.folder / "broker").mkdir()
            self.broker = Broker(self.folder / "broker")
        prefix = url.partition("://")[2].partition("/")[2]
        return f"{self.broker.url}/{prefix}" if prefix else self.broker.url

    def notify(self, url: str) -> str:
        if self.hook is None:
            self.hook = Webhook()
        return self.hook.url

    def stream(self, url: str) -> str:
        use_rtsp = url.startswith("rtsp://") and rtsp_missing() is None
        server = RtspServer(self.clip, mount=f"s{len(self.servers)}") if use_rtsp else StreamServer(self.clip)
        self.servers.append(server.start())
        return server.url

    def source(self, spec: str) -> str:
        """The spec as it runs here: a stream URL replaced, a missing file or folder made."""
        if "://" in spec:
            return self.stream(spec)
        path = self.folder / spec
        if any(c in spec for c in "*?["):
            path = self.folder / spec.replace("*", "clip").replace("?", "x")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.clip, path)
        elif not path.exists() and path.suffix.lower() in VIDEO_SUFFIXES:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.clip, path)
        elif not path.exists():
            path.mkdir(parents=True)
            for k, picture in enumerate(self.pictures):
                shutil.copy(picture, path / f"img{k + 1}{picture.suffix}")
        return spec

    def event_store(self, path: Path, env: dict[str, str]) -> None:
        """A store with the items of a short run of the sample clip, where a command reads one."""
        clips = self.folder / "videos" / self.clip.name
        cmd = [sys.executable, "-m", "detector", "run", str(clips), "--track", "--clip-on", "person",
               "--clips", str(path.parent), "--events-db", str(path), "--max-frames", "60", "-q"]  # fmt: skip
        subprocess.run(cmd, cwd=self.folder, env=env, check=True, timeout=240, stdin=subprocess.DEVNULL)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.hook is not None:
            self.hook.close()


@pytest.fixture
def workspace(tmp_path: Path, sample_clip: Path, pictures: list[Path]) -> Iterator[Workspace]:
    ws = Workspace(tmp_path, sample_clip, pictures)
    try:
        yield ws
    finally:
        ws.close()


def stand_ins(argv: list[str], ws: Workspace) -> list[str]:
    """``detector ...`` as this test runs it (the rules in the module's docstring)."""
    args = build_parser().parse_args(argv[1:])
    if args.command == "events":
        return [sys.executable, "-m", "detector", *argv[1:]]
    given = getattr(args, POSITIONAL[args.command])
    replaced = {spec: ws.source(spec) for spec in ([given] if isinstance(given, str) else given)}
    out = [replaced.get(word, word) for word in argv[1:]]
    if "--serve" in out:
        out[out.index("--serve") + 1] = str(free_port())
    for k, word in enumerate(out[:-1]):
        if word == "--mqtt":
            out[k + 1] = ws.mqtt(out[k + 1])
        elif word == "--notify":
            out[k + 1] = ws.notify(out[k + 1])
    if args.command in ("run", "batch"):
        out[1:1] = ["--max-frames", MAX_FRAMES]
    return [sys.executable, "-m", "detector", *out]


def named_outputs(cmd: list[str]) -> list[str]:
    """The output files a run (``python -m detector ...``) names (templates and stdout left out)."""
    args = build_parser().parse_args(cmd[3:])
    if args.command == "batch":
        return ["out/manifest.jsonl"] if args.output_dir == "out/" else []
    over = setting_overrides(args)
    paths = [over.get(k) for k in ("output", "json", "csv", "mot", "report", "heatmap", "clips")]
    return [p for p in paths if p and p != "-" and "{name}" not in p]


@pytest.mark.model
@pytest.mark.parametrize(("line", "command"), commands(), ids=[f"line {n}: {c[:60]}" for n, c in commands()])
def test_readme_command(line: int, command: str, workspace: Workspace, model_path: Path) -> None:
    argv = shlex.split(command, comments=True)
    reason = skip_reason(argv)
    if reason:
        pytest.skip(f"README line {line}: {reason}")
    assert argv[0] == "detector", (
        f"README line {line}: no rule for `{argv[0]}`; add one to tests/test_readme.py"
    )
    cmd = stand_ins(argv, workspace)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DETECTOR_MODEL": str(model_path), "YOLO_OFFLINE": "1"}
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(var, None)
    if argv[1] == "events" and not (workspace.folder / argv[2]).exists():
        workspace.event_store(workspace.folder / argv[2], env)
    done = subprocess.run(
        cmd,
        cwd=workspace.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    shown = f"README line {line}: {command}\nran: {shlex.join(cmd[2:])}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr, shown
    missing = [p for p in named_outputs(cmd) if not (workspace.folder / p).exists()]
    assert not missing, f"{shown}\nmissing outputs: {missing}"
