"""The ``detector batch`` subcommand: arguments, settings, pool choice, exit code.

Exit codes: 0 every input done or skipped; 3 some failed (see the manifest); 2 usage errors
(no inputs, output folder not writable, ray missing...); 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from detector.argtypes import at_least, number
from detector.config import DEFAULT_MODEL, MODEL_ENV, EncoderSettings, Settings, load_settings
from detector.errors import UserError

log = logging.getLogger(__name__)

EXIT_SOME_FAILED = 3
INFERENCE_THREADS = 2  # threads one file's inference uses well; sizes the default worker count
D = Settings()


def add_batch_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "batch",
        help="process many videos in parallel (local processes or a Ray cluster), resumable",
        description="Detect objects in every INPUT: DIR/<name>.mp4 (annotated) and DIR/<name>.jsonl per "
        "input, and DIR/manifest.jsonl with one line per input per attempt. Files run in parallel, one "
        "file per worker; a rerun skips inputs already done with complete outputs.",
        epilog="Exit codes: 0 all done or skipped, 3 some failed (see the manifest), 2 usage error, "
        "130 interrupted.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (searched recursively for mp4 mkv avi mov webm m4v gif ts flv wmv "
        "mpg mpeg) or quoted globs ('clips/**/*.mp4')",
    )
    p.add_argument(
        "-d",
        "--output-dir",
        required=True,
        metavar="DIR",
        help="where outputs and manifest.jsonl go (created if missing); with Ray on several machines "
        "it must be a path every node can write (a shared filesystem)",
    )
    p.add_argument("--force", action="store_true", help="redo every input, even those already done")
    p.add_argument(
        "--report",
        dest="batch_report",
        action="store_true",
        help="also write DIR/<name>.report.json per input (the `detector run --report` JSON)",
    )
    run = p.add_argument_group("parallelism")
    run.add_argument(
        "--backend",
        dest="batch_backend",
        choices=["local", "ray"],
        default="local",
        help="local worker processes, or Ray tasks (default: local)",
    )
    run.add_argument(
        "-w",
        "--workers",
        type=at_least(1),
        help=f"files processed at once (default: cores // {INFERENCE_THREADS}, at least 1; with "
        f"--ray-address: cluster CPUs // --num-cpus)",
    )
    run.add_argument(
        "--num-cpus",
        type=at_least(1),
        help="CPUs (threads) per worker; with Ray, what each task reserves (default: cores // workers; "
        f"with --ray-address: {INFERENCE_THREADS})",
    )
    run.add_argument("--num-gpus", type=number, help="Ray only: GPUs each task reserves (default: 0)")
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray only: join this cluster (e.g. auto or ray://head:10001); default: start a local Ray "
        "runtime for this batch and stop it at the end",
    )
    m = p.add_argument_group("model (as for `detector run`)")
    m.add_argument(
        "-m",
        "--model",
        metavar="PATH",
        help=f"model (default: ${MODEL_ENV}, else config, else {DEFAULT_MODEL})",
    )
    m.add_argument(
        "--model-backend",
        choices=["auto", "torch", "openvino", "onnx"],
        help=f"inference backend (default: {D.backend})",
    )
    m.add_argument("--conf", type=number, help=f"confidence threshold (default: {D.conf})")
    m.add_argument("--iou", type=number, help=f"NMS IoU threshold (default: {D.iou})")
    m.add_argument("--imgsz", type=at_least(32), help=f"inference size (default: {D.imgsz})")
    m.add_argument("--classes", nargs="+", metavar="CLASS", help="keep only these classes (default: all)")
    m.add_argument("--device", help=f"cpu, cuda:0, ... (default: {D.device})")
    m.add_argument("--half", action="store_true", default=None, help="FP16 inference on GPU")
    m.add_argument("--max-det", type=at_least(1), help=f"max detections per frame (default: {D.max_det})")
    f = p.add_argument_group("frames and encoder")
    f.add_argument("--max-frames", type=at_least(1), help="stop each file after N frames (default: all)")
    f.add_argument("--vid-stride", type=at_least(1), help="process every Nth frame (default: 1)")
    f.add_argument("--preset", help=f"x264 preset (default: {EncoderSettings().preset})")
    f.add_argument("--crf", type=at_least(0), help=f"x264 quality, 0-51 (default: {EncoderSettings().crf})")
    f.add_argument("--no-panel", action="store_true", help="hide the FPS/count panel")
    g = p.add_argument_group("general")
    g.add_argument("-c", "--config", metavar="FILE.yaml", help="YAML settings, as for `detector run`")
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    g.add_argument("--debug", action="store_true", help="debug logging and tracebacks")


def _settings(args: argparse.Namespace) -> Settings:
    from detector.cli import overrides_from_args

    over = overrides_from_args(args)
    if args.model_backend:
        over["backend"] = args.model_backend
    return load_settings(args.config, over)


def _export_once(settings: Settings) -> Settings:
    """A .pt model is exported to OpenVINO here, once, so N workers do not race to export it."""
    from detector.detection import check_model_exists, openvino_export

    model = settings.resolved_model()
    check_model_exists(model)
    on_cpu = settings.device.lower() in ("cpu", "")
    auto = settings.backend == "openvino" or (settings.backend == "auto" and on_cpu)
    if model.endswith(".pt") and Path(model).is_file() and auto and not settings.tracker:
        return settings.model_copy(update={"model": openvino_export(model, settings.imgsz)})
    return settings


def cmd_batch(args: argparse.Namespace) -> int:
    from detector.batch import collect_inputs, prepare_output_dir, run_batch
    from detector.batch_workers import LocalPool, RayPool, default_cores, import_ray

    if args.batch_backend == "local" and (args.ray_address or args.num_gpus):
        raise UserError("--ray-address and --num-gpus need --backend ray")
    if args.batch_backend == "ray":
        import_ray()  # one line (exit 2) before any work if it is missing
    settings = _settings(args)
    inputs = collect_inputs(args.inputs, exclude=Path(args.output_dir).expanduser().resolve())
    out_dir = prepare_output_dir(args.output_dir)
    cluster = args.batch_backend == "ray" and bool(args.ray_address)
    if not cluster:
        settings = _export_once(settings)
    cores = default_cores()
    workers = args.workers or max(1, cores // INFERENCE_THREADS)
    if cluster:
        threads = args.num_cpus or INFERENCE_THREADS
        workers = args.workers or 1_000_000  # as many as the cluster holds (RayPool fits them)
    else:
        threads = args.num_cpus or max(1, cores // workers)
    if settings.encoder.threads == 0:
        settings = settings.model_copy(
            update={"encoder": settings.encoder.model_copy(update={"threads": threads})}
        )
    level = logging.getLogger("detector").getEffectiveLevel()
    pool: Any
    if args.batch_backend == "ray":
        pool = RayPool(
            settings, threads, level, address=args.ray_address, num_gpus=args.num_gpus, local_cpus=cores
        )
    else:
        pool = LocalPool(settings, threads, level)
    log.info(
        "batch: %d inputs, backend %s, up to %d workers x %d threads",
        len(inputs),
        args.batch_backend,
        min(workers, len(inputs)),
        threads,
    )
    summary = run_batch(
        inputs,
        out_dir,
        settings,
        pool,
        workers=workers,
        force=args.force,
        report=args.batch_report,
        log_interval=max(settings.log_interval, 5.0),
    )
    print(f"batch: {summary.line()}; manifest {out_dir / 'manifest.jsonl'}", file=sys.stderr)
    return EXIT_SOME_FAILED if summary.failed else 0
