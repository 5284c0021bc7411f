"""``detector batch``: many videos -> one annotated MP4 + one JSONL each, files in parallel, resumable.

``inputs``: what to read and where to write; ``jobs``: the plan, results and manifest; ``worker``:
one model, one ``Run`` per input; ``pools``: local processes or Ray actors; ``dispatch``: the loop.
"""

from detector.batch.inputs import collect_inputs, prepare_output_dir
from detector.batch.jobs import Job, JobResult, check_outputs, count_video_frames, plan_jobs

__all__ = [
    "Job",
    "JobResult",
    "check_outputs",
    "collect_inputs",
    "count_video_frames",
    "plan_jobs",
    "prepare_output_dir",
]
