"""``Settings``: every option of ``detector run`` / ``batch`` / ``bench``, declared once.

Each field says its type, default, range and help, and (through ``option``) which flag each
command offers for it. The flags (``settings.flags``), ``configs/default.yaml`` and the README's
tables (``settings.docs``) are all made from these declarations.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from detector.settings.analytics import IgnoreSpec, LineSpec, PrivacyMaskSpec, TrailSettings, ZoneSpec
from detector.settings.base import BATCH, BENCH, RUN, SERVE, StrictModel, option, split_list
from detector.settings.motion import MotionSettings, StationarySettings
from detector.settings.mqtt import MqttSettings
from detector.settings.notify import NotifySettings
from detector.settings.review import ReviewSettings, SnapshotSettings
from detector.settings.serve import ServeSettings
from detector.settings.sources import SourceSpec
from detector.settings.storage import RecordSettings, RetainSettings

log = logging.getLogger(__name__)

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "models" / "yolo11n_int8_openvino_model"
DEFAULT_MODEL = str(BUNDLED_MODEL)
MODEL_ENV = "DETECTOR_MODEL"
ALL = (RUN, BATCH, BENCH)
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class EncoderSettings(StrictModel):
    """H.264 encoder settings for the annotated video."""

    preset: Preset = option(
        "ultrafast",
        "x264 preset; ultrafast keeps up on 2 cores (1080p: ~9 ms a frame; superfast ~15 ms, 27% smaller)",
        flag="--preset",
        commands=ALL,
    )
    crf: int = option(
        23, "x264 quality 0-51, lower = better and bigger", flag="--crf", commands=ALL, ge=0, le=51
    )
    threads: int = option(0, "encoder threads; 0 = sized to the machine", flag=False, ge=0, le=64)
    fragment_seconds: float = option(
        1.0,
        "keyframe / MP4 fragment interval: a killed run keeps all but the last one",
        flag=False,
        gt=0,
        le=10,
    )


class OverlaySettings(StrictModel):
    """What the overlay draws."""

    panel: bool = option(
        True, "processing rate (proc fps) + per-class counts in the top-left corner", flag="--panel"
    )
    labels: bool = option(True, '"person 0.87" above each box', flag=False)
    confidence: bool = option(True, "include the score in labels", flag=False)
    line_width: int | None = option(
        None, "box line width; null = scaled to the frame", flag=False, ge=1, le=32
    )
    heatmap: bool = option(False, "draw the heatmap of the run so far under the boxes", flag=False)
    motion: bool = option(False, "draw where the motion check saw change (thin orange boxes)", flag=False)


class Settings(StrictModel):
    """Everything a run needs. Precedence: defaults < ``--config`` file < $DETECTOR_MODEL (model) < flags."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    # -- model ------------------------------------------------------------------------------------------
    model: str | None = option(
        None,
        "model: an OpenVINO folder, .pt, .yaml (random weights) or .onnx",
        short="-m",
        commands=ALL,
        metavar="PATH",
        default_text=f"${MODEL_ENV}, else config, else the bundled YOLO11n INT8",
    )
    backend: Literal["auto", "torch", "openvino", "onnx"] = option(
        "auto", "inference backend; auto runs OpenVINO folders without torch", commands=ALL,
        renamed={BATCH: "--model-backend"},
    )  # fmt: skip
    conf: float = option(0.25, "confidence threshold, (0, 1]", commands=ALL, gt=0, le=1)
    iou: float = option(0.7, "NMS IoU threshold, (0, 1]", commands=ALL, gt=0, le=1)
    imgsz: int = option(640, "inference size; rounded up to a multiple of 32", commands=ALL, gt=0, le=8192)
    classes: list[int | str] | None = option(
        None,
        "keep only these classes, by name or id: person car, or 0,2",
        metavar="CLASS",
        default_text="all",
    )
    device: str = option("cpu", "cpu, cuda:0, ...", commands=ALL)
    half: bool = option(False, "FP16 inference (GPU)", commands=ALL)
    max_det: int = option(300, "max detections per frame", commands=ALL, ge=1, le=10000)
    tracker: Literal["bytetrack", "botsort"] | None = option(
        None,
        "track objects: ids in labels and JSONL; bytetrack when given alone, and when lines, zones or "
        "trails are set (they need the ids)",
        flag="--track",
        const="bytetrack",
        default_text="off",
    )
    # -- outputs ----------------------------------------------------------------------------------------
    output: str | None = option(None, "annotated H.264 MP4", short="-o", commands=(RUN,), metavar="FILE.mp4")
    json_path: str | None = option(
        None, "one JSON line per frame; '-' for stdout", flag="--json", commands=(RUN,), metavar="FILE.jsonl",
        alias="json",
    )  # fmt: skip
    csv: str | None = option(None, "one CSV row per detection", commands=(RUN,), metavar="FILE.csv")
    mot: str | None = option(
        None, "MOTChallenge text file, 1-based frames", commands=(RUN,), metavar="FILE.txt"
    )
    report: str | None = option(
        None, "run report: source, speed, counts, lines, zones; .json, or .html for a page with charts",
        commands=(RUN,), metavar="FILE.json|.html",
    )  # fmt: skip
    clips: str | None = option(
        None, "folder for an MP4 clip per review item, a JPEG snapshot per event, events.jsonl and the "
        "event store events.db", commands=(RUN,),
        metavar="DIR",
    )  # fmt: skip
    events_db: str | None = option(
        None, "SQLite event store of every event, review item, clip and snapshot, for /history and "
        "`detector events`; off: none; a batch's inputs share one", commands=(RUN, BATCH, SERVE),
        metavar="FILE",
        default_text="DIR/events.db with --clips DIR",
    )  # fmt: skip
    clip_before: float = option(
        3.0, "seconds of video before each review item in its clip", commands=(RUN,), ge=0, le=60
    )
    clip_after: float = option(
        3.0,
        "seconds of video after each review item (its last activity) in its clip",
        commands=(RUN,),
        ge=0,
        le=600,
    )
    clip_on: list[int | str] | None = option(
        None, "each new track of these classes is an event too: it opens or joins a review item (and its "
        "clip); needs --track", commands=(RUN,), metavar="CLASS",
        default_text="line crossings and zone entries only",
    )  # fmt: skip
    heatmap: str | None = option(
        None, "PNG of where the detections were, over a frame of the video", commands=(RUN,),
        metavar="FILE.png",
    )  # fmt: skip
    heatmap_classes: list[int | str] | None = option(
        None, "classes the heatmap counts", commands=(RUN,), metavar="CLASS", default_text="all kept classes"
    )
    overwrite: bool = option(False, "replace existing outputs instead of refusing", commands=(RUN,))
    audio: bool = option(True, "keep a file's audio track in the output video, cut to the processed span")
    show: bool | None = option(
        None, "window (keys: q quit, space pause, s snapshot, f panel)", commands=(RUN,),
        default_text="on for cameras when a display exists",
    )  # fmt: skip
    # -- privacy ----------------------------------------------------------------------------------------
    blur: list[int | str] | None = option(
        None, "blur these classes in every output: video, clips, snapshots, window, web view, heatmap",
        metavar="CLASS", default_text="none",
    )  # fmt: skip
    pixelate: list[int | str] | None = option(
        None, "pixelate these classes in every output", metavar="CLASS", default_text="none"
    )
    # -- frames -----------------------------------------------------------------------------------------
    max_frames: int | None = option(
        None, "stop after N processed frames", ge=1, metavar="N", default_text="all"
    )
    vid_stride: int = option(1, "process every Nth frame; the output fps is divided by N", ge=1, le=1000)
    image_fps: float = option(30.0, "frame rate written for image folders", commands=(RUN,), gt=0, le=1000)
    detect_fps: float | None = option(
        None, "run the model at most N times a second per source; the tracker predicts the boxes in "
        "between (without tracking, the last detections stand)", gt=0, le=1000, metavar="N",
        default_text="every frame",
    )  # fmt: skip
    queue_size: int = option(
        4,
        "frames buffered between stages (files; live keeps only the newest, a gated live one the newest two)",
        flag=False,
        ge=1,
        le=256,
    )
    # -- live sources -----------------------------------------------------------------------------------
    stall_timeout: float = option(
        5.0, "network streams: seconds without data before reconnecting", commands=(RUN,), gt=0, le=600
    )
    connect_timeout: float = option(
        10.0, "live: seconds to wait when opening a URL", flag=False, gt=0, le=600
    )
    reconnect_max: int = option(
        5, "live: reconnect attempts (exponential backoff) before giving up; 0 = none", commands=(RUN,),
        ge=0, le=1000,
    )  # fmt: skip
    camera_size: str | None = option(
        None, "camera resolution, e.g. 1280x720", commands=(RUN,), metavar="WxH", pattern=r"^\d+x\d+$",
        default_text="camera's",
    )  # fmt: skip
    camera_fps: float | None = option(
        None, "camera frame rate", commands=(RUN,), gt=0, le=1000, default_text="camera's"
    )
    log_interval: float = option(
        5.0, "seconds between progress lines when stderr is not a terminal", flag=False, gt=0
    )
    # -- beyond boxes (config only) ---------------------------------------------------------------------
    lines: list[LineSpec] = option(
        help="counting lines: [{name, start: [x, y], end: [x, y], classes, anchor, hysteresis}]",
        flag=False, default_factory=list,
    )  # fmt: skip
    zones: list[ZoneSpec] = option(
        help="zones: [{name, polygon: [[x, y], ...], classes, anchor, hysteresis}]",
        flag=False, default_factory=list,
    )  # fmt: skip
    trails: TrailSettings | None = option(
        None, "{length: 30}: a fading trail of the last N centre points per track", flag=False
    )
    sources: list[SourceSpec] = option(
        help="several sources in one run: [{source, name, lines, zones, motion, detect_fps}]; SOURCE "
        "arguments replace them",
        flag=False,
        default_factory=list,
    )
    ignore: list[IgnoreSpec] = option(
        help="polygons whose detections are dropped before tracking, counting and every output: "
        "[{name, polygon: [[x, y], ...], classes, anchor}]",
        flag=False, default_factory=list,
    )  # fmt: skip
    privacy_masks: list[PrivacyMaskSpec] = option(
        help="polygons covered in every output, detected or not: [{name, polygon, cover}], "
        "cover: blur, pixelate or fill",
        flag=False, default_factory=list,
    )  # fmt: skip
    motion: MotionSettings = Field(default_factory=MotionSettings, description="motion-gated detection")
    stationary: StationarySettings = Field(default_factory=StationarySettings, description="still objects")
    encoder: EncoderSettings = Field(default_factory=EncoderSettings, description="H.264 encoder")
    overlay: OverlaySettings = Field(default_factory=OverlaySettings, description="what is drawn")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="the live web view")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT and Home Assistant")
    notify: NotifySettings = Field(default_factory=NotifySettings, description="push notifications")
    review: ReviewSettings = Field(default_factory=ReviewSettings, description="review items")
    snapshots: SnapshotSettings = Field(default_factory=SnapshotSettings, description="event snapshots")
    record: RecordSettings = Field(default_factory=RecordSettings, description="continuous recording")
    retain: RetainSettings = Field(default_factory=RetainSettings, description="what is kept on disk")

    @model_validator(mode="before")
    @classmethod
    def _track_for_ids(cls, data: Any) -> Any:
        """Lines, zone events and trails need track ids: without a tracker they get ByteTrack."""
        if isinstance(data, dict) and not data.get("tracker") and needs_track_ids(data):
            return {**data, "tracker": "bytetrack"}
        return data

    @field_validator("imgsz")
    @classmethod
    def _round_imgsz(cls, v: int) -> int:
        if v % 32:
            rounded = int(math.ceil(v / 32) * 32)
            log.warning("imgsz %d is not a multiple of 32; using %d", v, rounded)
            return rounded
        return v

    _split_classes = field_validator(
        "classes", "clip_on", "heatmap_classes", "blur", "pixelate", mode="before"
    )(split_list)

    @field_validator("clip_on")
    @classmethod
    def _clip_on_needs(cls, v: list[int | str] | None, info: ValidationInfo) -> list[int | str] | None:
        store = info.data.get("events_db") not in (None, STORE_OFF)
        if v is not None and not info.data.get("clips") and not store:
            raise ValueError("needs --clips DIR or --events-db FILE")
        if v is not None and not info.data.get("tracker"):
            raise ValueError("needs track ids; add --track")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        groups: list[tuple[str, list[Any]]] = [("line", self.lines), ("zone", self.zones)]
        for src in self.sources:
            groups += [("line", src.lines or []), ("zone", src.zones or [])]
        groups.append(("source", [s for s in self.sources if s.name]))
        for kind, items in groups:
            names = [x.name for x in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind} names must be unique; '{dup[0]}' is used twice")
        return self

    def resolved_model(self) -> str:
        """``--model`` / $DETECTOR_MODEL / config (merged into ``model``), else the bundled model."""
        return self.model or DEFAULT_MODEL

    def html_report(self) -> bool:
        """``--report`` names an HTML page (``.html`` / ``.htm``), not JSON."""
        return bool(self.report) and Path(str(self.report)).suffix.lower() in (".html", ".htm")

    def output_paths(self) -> dict[str, str]:
        """The per-run output files that are set, by field name (``--events-db off`` is none)."""
        paths = {k: v for k in PER_RUN_OUTPUTS if isinstance(v := getattr(self, k), str) and v}
        if paths.get("events_db") == STORE_OFF:
            del paths["events_db"]
        return paths

    def store_off(self) -> bool:
        """``--events-db off``: no event store, not even the default one beside ``--clips``."""
        return self.events_db == STORE_OFF


def needs_track_ids(data: dict[str, Any]) -> list[str]:
    """What in raw settings (a config's mapping) counts by track id: "lines", "zones", "trails"."""
    listed = data.get("sources")  # anything but a list is the validators' to refuse, not ours to read
    sources = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    stationary = data.get("stationary")
    return [
        key
        for key in ("lines", "zones", "trails")
        if data.get(key) or (key != "trails" and any(s.get(key) for s in sources))
    ] + (["stationary objects"] if isinstance(stationary, dict) and stationary.get("seconds") else [])


PER_RUN_OUTPUTS = (
    "output",
    "json_path",
    "csv",
    "mot",
    "report",
    "clips",
    "events_db",
    "heatmap",
)  # fields naming one run's files
STORE_OFF = "off"


def with_updates(settings: Settings, **updates: Any) -> Settings:
    """A validated copy with ``updates`` applied (``model_copy`` skips validation)."""
    return Settings.model_validate({**settings.model_dump(by_alias=True), **updates})
