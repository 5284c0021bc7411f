"""Kept audio: the annotated MP4 keeps the source's audio, cut to the processed span."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from detector.cli import main

pytestmark = pytest.mark.model


def make_clip(path: Path, acodec: str, seconds: int = 4) -> Path:
    import imageio_ffmpeg

    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", acodec, "-shortest", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def streams(path: Path) -> dict[str, tuple[str, float]]:
    with av.open(str(path)) as c:
        return {
            s.type: (s.codec_context.name, float(s.duration * s.time_base)) for s in c.streams if s.duration
        }


@pytest.fixture(scope="module")
def aac_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("audio") / "tone.mp4", "aac")


FRAME = 1 / 25


@pytest.mark.parametrize(
    ("extra", "video_s"), [([], 4.0), (["--max-frames", "50"], 2.0), (["--vid-stride", "2"], 4.0)]
)
def test_aac_audio_is_copied_and_cut_to_the_processed_span(aac_clip, model_path, tmp_path, extra, video_s):
    out = tmp_path / "out.mp4"
    assert main(["run", str(aac_clip), "--model", str(model_path), "-o", str(out), "-q", *extra]) == 0
    s = streams(out)
    assert s["video"] == ("h264", pytest.approx(video_s, abs=1e-3))
    codec, audio_s = s["audio"]
    assert codec == "aac"
    assert abs(audio_s - video_s) <= FRAME, f"audio {audio_s:.3f} s vs video {video_s:.3f} s"


def test_pcm_audio_is_transcoded_to_aac(model_path, tmp_path):
    clip = make_clip(tmp_path / "tone.mov", "pcm_s16le", seconds=2)
    out = tmp_path / "out.mp4"
    assert main(["run", str(clip), "--model", str(model_path), "-o", str(out), "-q"]) == 0
    s = streams(out)
    assert s["audio"][0] == "aac"
    assert abs(s["audio"][1] - s["video"][1]) <= FRAME


def test_no_audio_flag_drops_it(aac_clip, model_path, tmp_path):
    out = tmp_path / "out.mp4"
    assert main(["run", str(aac_clip), "--model", str(model_path), "-o", str(out), "-q", "--no-audio",
                 "--max-frames", "10"]) == 0  # fmt: skip
    assert set(streams(out)) == {"video"}
