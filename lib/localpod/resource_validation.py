"""Validation of REST v2 bodies for endpoints (create, PATCH): what RunPod accepts, and why not.

Each function raises ValueError naming the offending field; the routes turn it into a 400.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lib.localpod import hosts
from lib.localpod.config import ROLES, PodConfig
from lib.localpod.models import FLASHBOOT_TYPES, Endpoint

if TYPE_CHECKING:
    from lib.localpod.simulator import Simulator


def validated_settings(ep: Endpoint, changes: dict, config: PodConfig) -> dict:
    """REST v2 PATCH body -> Endpoint attribute values; ValueError names the offending field."""
    new: dict = {}
    if "name" in changes:
        if not isinstance(changes["name"], str) or not changes["name"].strip():
            raise ValueError("name must be a non-empty string")
        new["name"] = changes["name"].strip()
    if "workers" in changes:
        workers = _object(changes, "workers", {"min", "max", "idleTimeout"})
        lo = _whole(workers, "min", ep.workers_min, "workers.min", 0)
        hi = _whole(workers, "max", ep.workers_max, "workers.max", 0)
        if lo > hi:
            raise ValueError(f"workers.min ({lo}) must not exceed workers.max ({hi})")
        idle = _whole(workers, "idleTimeout", ep.idle_timeout_s, "workers.idleTimeout", 1)
        if idle > 3600:
            raise ValueError("workers.idleTimeout must be between 1 and 3600 seconds")
        new.update(workers_min=lo, workers_max=hi, idle_timeout_s=idle)
    if "scaling" in changes:
        scaling = _object(changes, "scaling", {"type", "queueDelay", "requestCount"})
        kind = scaling.get("type", ep.scaling_type)
        if kind not in ("QUEUE_DELAY", "REQUEST_COUNT"):
            raise ValueError("scaling.type must be QUEUE_DELAY or REQUEST_COUNT")
        key = "queueDelay" if kind == "QUEUE_DELAY" else "requestCount"
        if key not in scaling and kind != ep.scaling_type:
            raise ValueError(f"scaling.{key} is required with scaling.type {kind}")
        value = scaling.get(key, ep.scaling_value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"scaling.{key} must be a number")
        if kind == "QUEUE_DELAY" and value < 0.5:
            raise ValueError("scaling.queueDelay must be at least 0.5 seconds")
        if kind == "REQUEST_COUNT" and (value < 1 or value != int(value)):
            raise ValueError("scaling.requestCount must be a whole number >= 1")
        new.update(scaling_type=kind, scaling_value=float(value))
    if "timeout" in changes:
        new["execution_timeout_ms"] = _whole(changes, "timeout", 0, "timeout", 1)
    if "flashboot" in changes:
        if changes["flashboot"] not in FLASHBOOT_TYPES:
            raise ValueError(f"flashboot must be one of {', '.join(FLASHBOOT_TYPES)}")
        new["flashboot"] = changes["flashboot"]
    if "gpu" in changes:
        gpu = _object(changes, "gpu", {"pools", "count", "minCudaVersion", "allowedCudaVersions"})
        pools = gpu.get("pools", ep.gpu_pools)
        if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
            raise ValueError('gpu.pools must be a non-empty list of pool ids like "ADA_24"')
        if pools[0] not in config.flex_per_s:
            raise ValueError(f"gpu.pools: no price for {pools[0]!r} in console.toml [prices.flex_per_s]")
        new["gpu_pools"] = list(pools)
    if "image" in changes:
        if not isinstance(changes["image"], str) or not changes["image"]:
            raise ValueError("image must be a non-empty string")
        new["image"] = changes["image"]
    if "env" in changes:
        env = changes["env"]
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must be an object of string values")
        new["env"] = dict(env)
    return new


def _object(changes: dict, key: str, allowed: set[str]) -> dict:
    value = changes[key]
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"{key}.{sorted(unknown)[0]} is not a writable field "
                         f"(writable: {', '.join(sorted(allowed))})")
    return value


def _whole(table: dict, key: str, default: int, label: str, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{label} must be a whole number >= {minimum}, not {value!r}")
    return value


_CREATE_FIELDS = {"name", "type", "scaling", "gpu", "cpu", "workers", "timeout", "flashboot", "dataCenterIds",
                  "networkVolumes", "templateId", "image", "args", "disk", "env", "ports", "registry"}
_GPU_FIELDS = {"pools", "count", "excludedTypes", "allowedCudaVersions", "minCudaVersion"}


def role_of(name: str) -> str:
    """The workload of a created endpoint, from its name (DESIGN.md: names contain the role)."""
    lowered = name.lower()
    return next((role for role in ROLES if role in lowered), "basic")


def creation(body: dict, sim: Simulator) -> tuple[dict, dict]:
    """REST v2 CreateEndpointRequest -> (Endpoint attributes, extras); ValueError names the field.

    Defaults are the v2 create defaults (reference §3.2): workers 0/3, idleTimeout 10, timeout
    300000 ms, flashboot OFF.
    """
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise ValueError(f"{unknown[0]} is not a field of a serverless endpoint")
    for key in ("name", "type", "scaling"):
        if key not in body:
            raise ValueError(f"{key} is required")
    name = body["name"]
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    if body["type"] != "QUEUE":
        raise ValueError("type: the simulator runs queue-based endpoints only (type QUEUE)")
    if "templateId" in body:
        raise ValueError("templateId: the simulator keeps no templates; send image, env and disk in the body")
    if "cpu" in body or "gpu" not in body:
        raise ValueError("gpu is required: the simulator runs GPU endpoints only (gpu.pools)")
    if not isinstance(body.get("image"), str) or not body["image"].strip():
        raise ValueError("image is required: the container image, e.g. runpod/worker-comfyui:5.8.5-base")
    gpu = _object(body, "gpu", _GPU_FIELDS)
    pools = gpu.get("pools")
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
        raise ValueError('gpu.pools must be a non-empty list of pool ids like "ADA_24"')
    if pools[0] not in sim.config.flex_per_s:
        raise ValueError(f"gpu.pools: no price for {pools[0]!r} in console.toml [prices.flex_per_s]")
    count = _whole(gpu, "count", 1, "gpu.count", 1)
    scaling = _object(body, "scaling", {"type", "queueDelay", "requestCount"})
    kind = scaling.get("type")
    if kind not in ("QUEUE_DELAY", "REQUEST_COUNT"):
        raise ValueError("scaling.type must be QUEUE_DELAY or REQUEST_COUNT")
    key = "queueDelay" if kind == "QUEUE_DELAY" else "requestCount"
    value = scaling.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"scaling.{key} is required with scaling.type {kind}: a number")
    if kind == "QUEUE_DELAY" and value < 0.5:
        raise ValueError("scaling.queueDelay must be at least 0.5 seconds")
    if kind == "REQUEST_COUNT" and (value < 1 or value != int(value)):
        raise ValueError("scaling.requestCount must be a whole number >= 1")
    workers = _object(body, "workers", {"min", "max", "idleTimeout"}) if "workers" in body else {}
    if kind == "REQUEST_COUNT" and "idleTimeout" in workers:
        # The v2 spec: idleTimeout does not apply to queue endpoints scaling on requestCount.
        raise ValueError("workers.idleTimeout does not apply to REQUEST_COUNT scaling; leave it out")
    lo = _whole(workers, "min", 0, "workers.min", 0)
    hi = _whole(workers, "max", 3, "workers.max", 0)
    if lo > hi:
        raise ValueError(f"workers.min ({lo}) must not exceed workers.max ({hi})")
    idle = _whole(workers, "idleTimeout", 10, "workers.idleTimeout", 1)
    if idle > 3600:
        raise ValueError("workers.idleTimeout must be between 1 and 3600 seconds")
    flashboot = body.get("flashboot", "OFF")
    if flashboot not in FLASHBOOT_TYPES:
        raise ValueError(f"flashboot must be one of {', '.join(FLASHBOOT_TYPES)}")
    env = body.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env must be an object of string values")
    settings = {"name": name.strip(), "gpu_pools": list(pools), "workers_min": lo, "workers_max": hi,
                "idle_timeout_s": idle, "scaling_type": kind, "scaling_value": float(value),
                "execution_timeout_ms": _whole(body, "timeout", 300_000, "timeout", 1),
                "flashboot": flashboot, "image": body["image"].strip(), "env": dict(env)}
    extras = {"dataCenterIds": [], "networkVolumes": [], "gpuCount": count,
              **validated_extras(body, sim, creating=True)}
    return settings, extras


def validated_extras(changes: dict, sim: Simulator, *, creating: bool = False) -> dict:
    """The fields of a create or PATCH body kept beside the Endpoint (placement, GPU count, disk)."""
    extras: dict = {}
    for key in ("dataCenterIds", "networkVolumes"):
        if key in changes:
            value = changes[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{key} must be a list of ids")
            extras[key] = list(value)
    for volume_id in extras.get("networkVolumes", ()):
        if volume_id not in sim.volumes:
            raise ValueError(f"networkVolumes: network volume {volume_id} not found")
    if "disk" in changes:
        extras["disk"] = _whole(changes, "disk", 0, "disk", 1)
    if not creating and isinstance(changes.get("gpu"), dict) and "count" in changes["gpu"]:
        extras["gpuCount"] = _whole(changes["gpu"], "count", 1, "gpu.count", 1)
    if isinstance(changes.get("gpu"), dict):
        extras.update(hosts.validated(changes["gpu"]))
    return extras

