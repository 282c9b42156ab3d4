"""Where a simulated worker lands, and whether its container can start there.

RunPod places a worker only on a host whose NVIDIA driver meets the endpoint's
gpu.minCudaVersion / gpu.allowedCudaVersions (reference runpod-api §3.2). Without them a worker
may land on any host; an image built for a newer CUDA then fails at start on an older driver, and
the worker never becomes ready: a cold start that never ends (worker-contracts §3.4: AI Toolkit's
image needs CUDA 13.0, NVIDIA driver >= 580).

Simplifications: every pool has hosts of each driver version below, and an unconstrained worker
lands on the oldest one (RunPod picks by availability), so a missing constraint shows on the
first worker rather than by chance. A constraint no simulated host meets leaves the worker
throttled (no capacity). Only the training image's need is simulated: the CUDA floor of
worker-comfyui's base image could not be confirmed, so image and special workers start anywhere.
"""
from __future__ import annotations

import re

from lib.localpod.models import INITIALIZING, THROTTLED

HOST_CUDA_VERSIONS = ("12.8", "13.0")          # oldest first
IMAGE_MIN_CUDA = {"training": "13.0"}           # per simulated workload (endpoint role)
CUDA_VERSION = re.compile(r"^\d+\.\d+$")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def validated(gpu: dict) -> dict:
    """The CUDA fields of a create/PATCH `gpu` object, as kept beside the endpoint; ValueError if bad."""
    out: dict = {}
    if "minCudaVersion" in gpu:
        value = gpu["minCudaVersion"]
        if not isinstance(value, str) or not CUDA_VERSION.match(value):
            raise ValueError('gpu.minCudaVersion must be a CUDA version like "13.0"')
        out["minCudaVersion"] = value
    if "allowedCudaVersions" in gpu:
        value = gpu["allowedCudaVersions"]
        if not isinstance(value, list) or not all(isinstance(v, str) and CUDA_VERSION.match(v) for v in value):
            raise ValueError('gpu.allowedCudaVersions must be a list of CUDA versions like ["13.0"]')
        out["allowedCudaVersions"] = list(value)
    return out


def host_for(extras: dict) -> str | None:
    """The CUDA version of the host a new worker lands on; None when no host meets the constraint."""
    floor = extras.get("minCudaVersion")
    allowed = extras.get("allowedCudaVersions") or None
    for version in HOST_CUDA_VERSIONS:
        if floor and _version(version) < _version(floor):
            continue
        if allowed and version not in allowed:
            continue
        return version
    return None


def container_starts(role: str, host_cuda: str | None) -> bool:
    need = IMAGE_MIN_CUDA.get(role)
    return need is None or (host_cuda is not None and _version(host_cuda) >= _version(need))


def declared(spec) -> dict:
    """The CUDA constraint of an endpoint as console.toml declares it (the simulator's seed)."""
    out: dict = {}
    if getattr(spec, "min_cuda_version", None):
        out["minCudaVersion"] = spec.min_cuda_version
    if getattr(spec, "allowed_cuda_versions", None):
        out["allowedCudaVersions"] = list(spec.allowed_cuda_versions)
    return out


def stranded(workers) -> list:
    """Workers that will never start under the old placement: stuck initializing, or throttled."""
    return [w for w in workers if w.status in (INITIALIZING, THROTTLED) and w.timer is None]
