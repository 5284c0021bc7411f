"""Frame times of a decoded file: FFmpeg's best-effort timestamp, made to rise strictly.

PyAV does not expose ``AVFrame.best_effort_timestamp``, and ``frame.pts`` alone is wrong for some
containers: AVI stores no presentation times (with B-frames the decoder hands back the packets'
made-up times in decode order, 1, 4, 3, 5, 2...), MPEG-PS leaves most frames without any, and two
clips joined as one MPEG-TS start again at 0 in the middle. ``FrameClock`` is what FFmpeg's own
tools do about each, written here because no library exposes it:

- AVI stores decode times only: the packets' presentation times are libavformat's guesses, so
  they are dropped before decoding (FFmpeg 9's demuxer leaves them unset there); a container
  without timestamps at all (a raw H.264 stream) drops both, as fftools' ``TS_UNRELIABLE`` does;
- libavcodec's ``guess_correct_pts``: take the frame's reordered ``pts`` unless it went backwards
  more often than the packet ``dts`` did, else the ``dts`` (AVI: the ``dts`` rise one per frame);
- a frame without either time: the previous one plus one frame (fftools' ``last_frame_pts + duration``);
- a time that does not rise, or one that jumps more than ``DISCONT_SECONDS`` ahead in a container
  whose timestamps may be discontinuous (MPEG-TS/PS): a new segment, continued one frame after the
  previous frame (fftools' ``ts_offset_discont``).

Times are seconds from the first frame. Variable frame rates keep their own gaps.
"""

from __future__ import annotations

from typing import Any

import av

DISCONT_SECONDS = 10.0  # FFmpeg's default -dts_delta_threshold


class FrameClock:
    """Turns each decoded frame's ``(pts, dts)`` (in ``time_base`` units, or None) into seconds from
    the first frame, rising strictly. ``step`` is one frame (s) at the declared rate; ``discontinuous``:
    the container may jump its timestamps (FFmpeg's ``AVFMT_TS_DISCONT``)."""

    def __init__(
        self,
        time_base: float,
        step: float,
        *,
        discontinuous: bool = False,
        packet_pts: bool = True,
        packet_dts: bool = True,
    ) -> None:
        self.time_base = time_base
        self.step = step
        self.discontinuous = discontinuous
        self.packet_pts = packet_pts  # False: the container's packet pts are guesses (dropped)
        self.packet_dts = packet_dts
        self.segments = 0  # timestamp resets (or jumps) stitched over
        self._faulty_pts = 0
        self._faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._origin: float | None = None  # the first frame's time (s)
        self._offset = 0.0  # added to every time after a reset
        self._last: float | None = None  # the previous frame's result

    @classmethod
    def for_container(cls, fmt: Any, time_base: float, step: float) -> FrameClock:
        """The clock for a file of this ``av.ContainerFormat``."""
        flags = av.format.Flags(fmt.flags)
        no_times = av.format.Flags.no_timestamps in flags
        return cls(
            time_base,
            step,
            discontinuous=av.format.Flags.ts_discont in flags,
            packet_pts=not no_times and fmt.name != "avi",
            packet_dts=not no_times,
        )

    def packet(self, packet: Any) -> Any:
        """``packet`` (an ``av.Packet``) with the times this container cannot be trusted with unset."""
        if not self.packet_pts:
            packet.pts = None
        if not self.packet_dts:
            packet.dts = None
        return packet

    def _best_effort(self, pts: int | None, dts: int | None) -> int | None:
        """libavcodec's ``guess_correct_pts`` (decode.c), line for line."""
        if dts is not None:
            self._faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        elif pts is not None:
            self._last_dts = pts
        if pts is not None:
            self._faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        elif dts is not None:
            self._last_pts = dts
        if pts is not None and (self._faulty_pts <= self._faulty_dts or dts is None):
            return pts
        return dts

    def time(self, pts: int | None, dts: int | None) -> float:
        """Seconds from the first frame of the frame with these (decoder output) times."""
        ticks = self._best_effort(pts, dts)
        last = self._last
        if ticks is None:
            t = 0.0 if last is None else last + self.step
        else:
            raw = ticks * self.time_base
            if self._origin is None:
                self._origin = raw
            t = raw - self._origin + self._offset
            if last is not None and (t <= last or (self.discontinuous and t - last > DISCONT_SECONDS)):
                self._offset += last + self.step - t
                t = last + self.step
                self.segments += 1
        self._last = t
        return t
