"""A live MPEG-TS stream joined between keyframes, with and without timestamps (issue 29).

FFmpeg probes a stream for half a second (or 500 kB when its packets carry no timestamps, so time
cannot bound the probe); a camera with a long keyframe interval, joined mid-way, sends no picture
size in that time. That run used to end with "uses a video codec this FFmpeg cannot decode"; it now
reads on to the next keyframe, and says what is wrong when none comes.

The stream is served from memory by a loopback HTTP server (one client, then EOF, like a camera's
HTTP stream); its packets' timestamps are taken out of the PES headers (turned into stuffing bytes),
which FFmpeg's muxer refuses to write itself.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from user_errors import Capture

FRAMES, KEYINT = 45, 30  # keyframes at frames 0 and 30 (1 s apart at 30 fps)
JOIN = 0.25  # the client joins a quarter of the way in: mid-GOP, 0.7 s before the next keyframe


def noisy_ts() -> bytes:
    """45 frames of lossless 320x240 noise (about 200 kB a frame) as MPEG-TS, a keyframe each second."""
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=Fraction(30), options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = KEYINT
        stream.codec_context.options = {"qp": "0", "preset": "ultrafast", "keyint_min": str(KEYINT),
                                        "sc_threshold": "0"}  # fmt: skip
        for _ in range(FRAMES):
            img = rng.integers(0, 256, (240, 320, 3), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode())
    return buf.getvalue()


def without_timestamps(ts: bytes) -> bytes:
    """``ts`` with the PTS and DTS of every video PES header turned into stuffing bytes."""
    out = bytearray(ts)
    for off in range(0, len(out) - 187, 188):
        if out[off] != 0x47 or not out[off + 1] & 0x40:  # a packet that starts a PES
            continue
        i = off + 4 + (1 + out[off + 4] if out[off + 3] & 0x20 else 0)  # past any adaptation field
        if out[i : i + 3] != b"\x00\x00\x01" or not 0xE0 <= out[i + 3] <= 0xEF:
            continue
        size = {2: 5, 3: 10}.get(out[i + 7] >> 6, 0)
        out[i + 7] &= 0x3F  # PTS_DTS_flags = 00
        out[i + 9 : i + 9 + size] = b"\xff" * size
    return bytes(out)


def serve(data: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hung up (it had what it needed)
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/camera.ts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def stream() -> bytes:
    ts = noisy_ts()
    assert len(ts) > 3_000_000  # past FFmpeg's 500 kB probe before the next keyframe
    return ts


def joined(ts: bytes, until: float = 1.0) -> bytes:
    return ts[int(len(ts) * JOIN) // 188 * 188 : int(len(ts) * until) // 188 * 188]


@pytest.mark.parametrize("stamps", ["timestamps", "no timestamps"])
def test_a_stream_joined_between_keyframes_runs_from_the_next_one(
    cli: Capture, model_path: Path, tmp_path: Path, stream: bytes, stamps: str
) -> None:
    data = joined(stream if stamps == "timestamps" else without_timestamps(stream))
    if stamps == "no timestamps":
        with av.open(io.BytesIO(data)) as c:
            assert all(p.pts is None for p in c.demux(c.streams.video[0]) if p.size)
    out = tmp_path / "out.jsonl"
    for url in serve(data):
        code, lines, _ = cli.run("run", url, "--model", model_path, "--json", out, "-q", "--max-frames", "10")
        assert code == 0, lines
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert len([r for r in records if "event" not in r]) == 10  # each connection from its next keyframe


def test_a_stream_that_never_sends_a_keyframe_says_so(
    cli: Capture, model_path: Path, tmp_path: Path, stream: bytes
) -> None:
    data = joined(without_timestamps(stream), until=0.6)  # ends before the keyframe at frame 30
    for url in serve(data):
        message = cli.error(
            "run", url, "--model", model_path, "--json", tmp_path / "o.jsonl", "--reconnect-max", "0"
        )
    assert "no keyframe" in message and "no timestamps" in message, message
    assert "codec" not in message
