"""One live queue: a user's unfinished jobs across every page (images, grids, face swaps, sheets,
training), with status, phase, progress and elapsed time — read from the job store, so it is the same
after a reload, in another tab or after a console restart."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from lib.jobstate import UNFINISHED, JobState
from lib.store import JobRecord
from lib.training.runs import format_duration

KIND_LABELS = {"generate": "Image", "grid": "Grid cell", "rerun": "Re-run", "faceswap": "Face swap",
               "sheet_panel": "Sheet panel", "training": "LoRA training"}
STATUS_LABELS: dict[str, str] = {JobState.PENDING: "Sending", JobState.IN_QUEUE: "Queued", JobState.IN_PROGRESS: "Running"}


@dataclass(frozen=True)
class QueueEntry:
    local_id: str
    what: str               # "LoRA training · ava", "Image · ava"
    status: str             # words, never only a symbol
    phase: str
    progress: float | None  # 0..1 when the worker reports steps
    elapsed: str
    is_training: bool


def _steps(progress: object) -> tuple[int, int] | None:
    if not isinstance(progress, Mapping):
        return None
    step, total = progress.get("step"), progress.get("total_steps") or progress.get("total")
    if isinstance(step, int) and isinstance(total, int) and total > 0:
        return step, total
    return None


def _sample_rounds(progress: object) -> int:
    samples = progress.get("samples") if isinstance(progress, Mapping) else None
    if not isinstance(samples, list):
        return 0
    return len({s.get("step") for s in samples if isinstance(s, Mapping)})


def phase(record: JobRecord) -> str:
    if record.status == JobState.PENDING:
        return "sending to RunPod"
    if record.status == JobState.IN_QUEUE:
        return "waiting for a worker (a cold start can take up to ~2 min)"
    steps = _steps(record.progress)
    if steps is None:
        return "running" + (f" on worker {record.worker_id}" if record.worker_id else "")
    text = f"step {steps[0]:,} of {steps[1]:,}"
    rounds = _sample_rounds(record.progress)
    return text + (f", {rounds} sample round{'s' if rounds != 1 else ''}" if rounds else "")


def entry(record: JobRecord, now: datetime) -> QueueEntry:
    character = record.character
    what = KIND_LABELS.get(record.kind, record.kind.replace("_", " ").capitalize())
    steps = _steps(record.progress)
    return QueueEntry(local_id=record.local_id, what=f"{what} · {character}" if character else what,
                      status=STATUS_LABELS.get(record.status, record.status.title()), phase=phase(record),
                      progress=min(1.0, steps[0] / steps[1]) if steps else None,
                      elapsed=format_duration((now - record.created_at).total_seconds()),
                      is_training=record.kind == "training")


def unfinished(store, user_email: str, now: datetime | None = None, limit: int = 50) -> list[QueueEntry]:
    """The user's jobs not yet final, oldest first (the order RunPod serves a queue in)."""
    now = now or datetime.now(UTC)
    records = store.list(user=user_email, status=UNFINISHED, include_simulated=False, limit=limit)
    return [entry(r, now) for r in sorted(records, key=lambda r: r.created_at)]


def cancel_consequences(record: JobRecord) -> list[str]:
    """What a cancel loses and what it still costs, said before the user confirms it."""
    if record.is_final:
        return [f"This job already ended ({record.status.lower().replace('_', ' ')}): there is nothing to cancel."]
    if record.status in (JobState.PENDING, JobState.IN_QUEUE):
        return ["No worker has started it yet: nothing is lost and nothing more is billed."]
    lines = ["RunPod bills the worker time used so far; that is not refunded."]
    if record.kind != "training":
        return ["The result of this job is not made.", *lines]
    steps = _steps(record.progress)
    checkpoints = record.progress.get("checkpoints") if isinstance(record.progress, Mapping) else None
    saved: list[int] = [c["step"] for c in checkpoints or []
                        if isinstance(c, Mapping) and isinstance(c.get("step"), int)]
    if steps:
        lines.insert(0, f"Training stops at step {steps[0]:,} of {steps[1]:,}.")
    if saved:
        lines.insert(1, f"The {len(saved)} checkpoint(s) saved so far (last at step {max(saved):,}) stay on "
                        f"the volume and can still be compared and promoted"
                        + (f"; the {steps[0] - max(saved):,} steps after it are lost." if steps else "."))
    else:
        lines.insert(1, "No checkpoint has been saved yet: the run leaves no LoRA behind.")
    return lines
