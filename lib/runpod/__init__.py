"""The shared RunPod client: job API (per endpoint or dev worker), REST v2, typed results and errors."""
from lib.runpod.client import RunPod
from lib.runpod.devworker import DevWorkerJobs
from lib.runpod.errors import (
    AuthError,
    BadRequest,
    BadResponse,
    ConnectionFailed,
    JobWaitTimeout,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    RunPodError,
    ServerError,
    StatusError,
    Unsupported,
)
from lib.runpod.jobs import EndpointJobs, Policy, PollPolicy
from lib.runpod.models import (
    TERMINAL,
    BillingRecord,
    BillingReport,
    Endpoint,
    Health,
    Job,
    JobCounts,
    JobStatus,
    NetworkVolume,
    PurgeResult,
    StreamPage,
    VolumeBillingRecord,
    Worker,
    WorkerCounts,
    WorkersSummary,
)
from lib.runpod.rest import RestV2

__all__ = [
    "RunPod", "EndpointJobs", "DevWorkerJobs", "RestV2", "Policy", "PollPolicy",
    "JobStatus", "TERMINAL", "Job", "Health", "JobCounts", "WorkerCounts", "StreamPage", "PurgeResult",
    "Endpoint", "WorkersSummary", "Worker", "NetworkVolume", "BillingRecord", "BillingReport",
    "VolumeBillingRecord",
    "RunPodError", "ConnectionFailed", "RequestTimeout", "PayloadTooLarge", "BadResponse", "Unsupported",
    "JobWaitTimeout", "StatusError", "BadRequest", "AuthError", "NotFound", "RateLimited", "ServerError",
]
