"""``detector batch INPUT... -d DIR``: many videos in parallel (local processes or Ray), resumable.

Exit codes: 0 every input done or skipped; 3 some failed (see the manifest); 2 usage errors
(no inputs, output folder not writable, ray missing...); 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from detector.cli.common import add_general_flags, positive
from detector.settings.base import BATCH
from detector.settings.flags import ORDER_HELP, add_setting_flags, setting_overrides

log = logging.getLogger(__name__)

EXIT_SOME_FAILED = 3
INFERENCE_THREADS = 2  # threads one file's inference uses well; sizes the default worker count


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="process many videos in parallel (local processes or a Ray cluster), resumable",
        description="Detect objects in every INPUT: DIR/<name>.mp4 (annotated) and DIR/<name>.jsonl per "
        "input, and DIR/manifest.jsonl with one line per input per attempt. Files run in parallel, one "
        "file per worker; a rerun skips inputs already done with complete outputs.",
        epilog=f"{ORDER_HELP} Exit codes: 0 all done or skipped, 3 some failed (see the manifest), "
        "2 usage error, 130 interrupted.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, folders (searched recursively for video files) or quoted globs ('clips/**/*.mp4')",
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
        help="local worker processes, or Ray actors (default: local)",
    )
    run.add_argument(
        "-w",
        "--workers",
        type=positive,
        help=f"files processed at once (default: cores // {INFERENCE_THREADS}, at least 1; with "
        "--ray-address: as many as the cluster holds)",
    )
    run.add_argument(
        "--num-cpus",
        type=positive,
        help="CPUs (threads) per worker; with Ray, what each actor reserves (default: cores // workers; "
        f"with --ray-address: {INFERENCE_THREADS})",
    )
    run.add_argument("--num-gpus", type=float, help="Ray only: GPUs each actor reserves (default: 0)")
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray only: join this cluster (e.g. auto or ray://head:10001); default: start a local Ray "
        "runtime for this batch and stop it at the end",
    )
    add_setting_flags(p, BATCH)
    add_general_flags(p)
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, started_at: float) -> int:
    from detector.backends.loading import check_model, exported
    from detector.batch.dispatch import run_batch
    from detector.batch.inputs import collect_inputs, prepare_output_dir
    from detector.batch.pools import LocalPool, Pool, RayPool, import_ray
    from detector.errors import UserError
    from detector.machine import cpu_count
    from detector.settings import load_settings

    if args.batch_backend == "local" and (args.ray_address or args.num_gpus):
        raise UserError("--ray-address and --num-gpus need --backend ray")
    if args.batch_backend == "ray":
        import_ray()  # one line (exit 2) before any work if it is missing
    settings = load_settings(args.config, setting_overrides(args), command=BATCH)
    inputs = collect_inputs(args.inputs, exclude=Path(args.output_dir).expanduser().resolve())
    out_dir = prepare_output_dir(args.output_dir)
    cluster = args.batch_backend == "ray" and bool(args.ray_address)
    check_model(settings.resolved_model())
    if not cluster:
        settings = exported(settings)  # a .pt is exported here, once, so N workers do not race to do it
    cores = cpu_count()
    workers: int | None = args.workers
    if cluster:
        threads = args.num_cpus or INFERENCE_THREADS
    else:
        workers = workers or max(1, cores // INFERENCE_THREADS)
        threads = args.num_cpus or max(1, cores // workers)
    if settings.encoder.threads == 0:
        settings = settings.model_copy(
            update={"encoder": settings.encoder.model_copy(update={"threads": threads})}
        )
    level = logging.getLogger("detector").getEffectiveLevel()
    pool: Pool
    if args.batch_backend == "ray":
        pool = RayPool(
            settings, threads, level, address=args.ray_address, num_gpus=args.num_gpus, local_cpus=cores
        )
    else:
        pool = LocalPool(settings, threads, level)
    log.info(
        "batch: %d inputs, backend %s, %s workers x %d threads",
        *(len(inputs), args.batch_backend, workers or "cluster-sized", threads),
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
