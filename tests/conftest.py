"""Shared fixtures: the real model (bundled, or DETECTOR_TEST_MODEL), footage (DETECTOR_TEST_VIDEOS),
sample images, fakes, tiny clips."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from user_errors import Capture

from detector.backends.base import Done
from detector.settings import BUNDLED_MODEL
from detector.types import Detections

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set (CI sets it; point it at ../shared/videos)")
    path = Path(value)
    if not path.exists():
        pytest.fail(f"{var}={value} does not exist")
    return path


def default_model() -> Path:
    """``DETECTOR_TEST_MODEL`` when set, else the model the package ships (YOLO11n INT8, OpenVINO)."""
    value = os.environ.get("DETECTOR_TEST_MODEL")
    path = Path(value) if value else BUNDLED_MODEL
    if not path.exists():
        pytest.fail(f"model {path} does not exist")
    return path


# -- tests write only to temporary folders -----------------------------------------------------------
NOT_OURS = {  # caches of the tools (hypothesis keeps its examples in .hypothesis/) and build folders
    *(".git", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"),
    *(".venv", "build", "dist"),
}


def repo_files(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """Every file in the checkout (ignored ones too, such as videos/out/), with its mtime and size;
    caches and build folders left out."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in NOT_OURS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            with contextlib.suppress(OSError):  # gone meanwhile
                st = path.lstat()
                found[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return found


def tree_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """What a run of the suite did to the checkout: files it made, changed or removed."""
    made = [f"new {p}" for p in sorted(after.keys() - before.keys())]
    changed = [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return made + changed + [f"removed {p}" for p in sorted(before.keys() - after.keys())]


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched() -> Iterator[None]:
    """The suite leaves the checkout as it found it: a test that writes beside the repo's files
    (``videos/out/sample.mp4``, a report in the cwd) fails the run here, at its end."""
    before = repo_files()
    yield
    changes = tree_changes(before, repo_files())
    if changes:
        pytest.fail("tests wrote into the checkout (write to tmp_path instead): " + ", ".join(changes))


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model()


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    return _env_path("DETECTOR_TEST_VIDEOS")


@pytest.fixture(scope="session")
def footage(sample_clip: Path) -> Callable[[str], Path]:
    """A clip of the shared footage by name; without DETECTOR_TEST_VIDEOS, ``videos/sample.mp4`` stands
    in, so a test that needs a clip (not what is in that one) runs wherever its other parts exist."""
    folder = os.environ.get("DETECTOR_TEST_VIDEOS")

    def pick(name: str) -> Path:
        if not folder:
            return sample_clip
        path = Path(folder) / name
        if not path.exists():
            pytest.fail(f"DETECTOR_TEST_VIDEOS={folder} has no {name}")
        return path

    return pick


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    path = ROOT / "videos" / "sample.mp4"
    assert path.is_file(), "videos/sample.mp4 is committed; rebuild it with python videos/make_sample.py"
    return path


def write_clip(
    path: Path,
    frames: int = 30,
    size: tuple[int, int] = (320, 240),
    fps: Fraction = Fraction(30),
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """A small synthetic clip: a white square moving over a grey gradient."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        base = np.tile(np.linspace(40, 200, w, dtype=np.uint8), (h, 1))
        for i in range(frames):
            img = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
            x = int((w - 40) * i / max(frames - 1, 1))
            cv2.rectangle(img, (x, h // 2 - 20), (x + 40, h // 2 + 20), (255, 255, 255), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def tiny_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "tiny.mp4")


class FakeDetector:
    """Finds the brightest square (the moving white one in ``write_clip``) as class 0 'person'."""

    backend = "fake"
    model_path = "fake"
    max_in_flight = 1
    max_batch = 1

    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.names = {0: "person", 1: "car"}
        self.delay = delay
        self.fail_at = fail_at
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("fake detector failure")
        if self.delay:
            time.sleep(self.delay)
        mask = image.min(axis=2) > 245
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return Detections.empty(self.names)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return Detections(
            xyxy=box, confidence=np.array([0.9], np.float32), class_id=np.array([0]), names=self.names
        )

    def submit(self, image: np.ndarray, on_ready: Callable[[], None] | None = None) -> Done:
        return Done(self.detect(image))

    def submit_batch(self, images: list[np.ndarray]) -> list[Done]:
        return [self.submit(image) for image in images]


@pytest.fixture
def fake_detector() -> FakeDetector:
    return FakeDetector()


def decode(path: Path) -> tuple[av.video.stream.VideoStream, int, Fraction, tuple[int, int], str]:
    """Decode a written video back: (stream, frames, average_rate, (w, h), codec)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return (
            s,
            n,
            Fraction(s.average_rate),
            (s.codec_context.width, s.codec_context.height),
            s.codec_context.name,
        )


def frame_times(path: Path) -> list[float]:
    """Presentation time (s) of every decoded frame, relative to the first one."""
    with av.open(str(path)) as c:
        times = [float(f.time) for f in c.decode(c.streams.video[0])]
    return [t - times[0] for t in times]


# -- read-only places, also when the suite runs as root (CI) ---------------------------------------
def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"running as root, and mount {' '.join(args[:-1])} failed: {done.stderr.strip()}")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder this process cannot write into: mode 555 for a normal user; for root a tmpfs
    mounted read-only (root writes through any mode bits, but not onto a read-only mount)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    _mount("-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@pytest.fixture
def read_only_file(tmp_path: Path) -> Iterator[Path]:
    """``old.mp4`` holding "old", in a writable folder, that this process cannot write: mode 444 for a
    normal user; for root the file bind-mounted read-only onto itself."""
    path = tmp_path / "old.mp4"
    path.write_text("old")
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield path
        return
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


# -- the bad-input tests (test_bad_inputs, test_bad_models) ------------------------------------------
@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]) -> Capture:
    """``detector.cli.main`` in this process, held to the one-line user error contract."""
    return Capture(capfd)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", frames=12)


@pytest.fixture
def user_error_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in ``tmp_path`` (paths as a user types them): no exports in ~/.cache, no display, no
    $DETECTOR_MODEL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DETECTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DETECTOR_MODEL", raising=False)


@pytest.fixture
def no_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    yield


# -- small and full disks: real tmpfs mounts (CI runs as root) ---------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_disk("300k")`` mounts a tmpfs of that size at a new folder and returns it; every mount
    is undone after the test. Skips where mounting is not allowed (not root)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


# -- a real browser --------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
