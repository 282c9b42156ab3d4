"""The console's one vocabulary of job states: RunPod's six plus the four the console adds itself.

RunPod reports IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED and TIMED_OUT (the client parses
them into `lib.runpod.JobStatus`). Around them the console records:
PENDING (recorded, not yet confirmed by RunPod), SUBMIT_FAILED (RunPod surely did not take it),
UNKNOWN (the submit's outcome is unknown: never resent blindly) and EXPIRED (RunPod forgot the job
before it reached a final state we saw). The simulator keeps its own enum: it stands in for RunPod
and must not share the console's assumptions.
"""
from __future__ import annotations

import enum


class JobState(str, enum.Enum):  # noqa: UP042 (StrEnum would change what str() returns)
    PENDING = "PENDING"
    SUBMIT_FAILED = "SUBMIT_FAILED"
    UNKNOWN = "UNKNOWN"
    EXPIRED = "EXPIRED"
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def is_active(self) -> bool:
        return self in ACTIVE

    @property
    def is_failed(self) -> bool:
        return self in FAILED


# States only the console records; the rest are RunPod's own.
LOCAL = frozenset({JobState.PENDING, JobState.SUBMIT_FAILED, JobState.UNKNOWN, JobState.EXPIRED})
RUNPOD = frozenset(JobState) - LOCAL
# No further change will come (CANCELLED included).
FINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT,
                   JobState.SUBMIT_FAILED, JobState.EXPIRED})
# RunPod has the job and is working on it.
ACTIVE = frozenset({JobState.IN_QUEUE, JobState.IN_PROGRESS})
# The tracker follows these: sent or being sent, and not final (UNKNOWN is never resent blindly).
UNFINISHED = ACTIVE | {JobState.PENDING}
# Final without a result, not by the user's own choice: CANCELLED is the user's decision, not a
# failure, so it is not here (a sheet panel the user cancelled is "cancelled", not "failed").
FAILED = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.SUBMIT_FAILED, JobState.EXPIRED})
# A RunPod-side failure whose worker may have said why (its error and output are worth showing).
WORKER_FAILED = frozenset({JobState.FAILED, JobState.TIMED_OUT})
