"""Connection check ("doctor"): is this RunPod account usable with this console.toml?

One line per fact — ok / problem / skipped (cannot be checked) — each with what was found and what
to do. Runs against RunPod, the local simulator or any stand-in with the same API; it only reads.
`python -m lib.doctor` prints the lines and exits 1 when any is a problem.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lib.config import ConsoleConfig, EndpointSpec, Settings
from lib.provisioning import required
from lib.runpod import AuthError, NotFound, RunPod, RunPodError
from lib.runpod.models import Endpoint
from lib.volume import Volume, VolumeError

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"
# Reference §3.3: the serverless GPU pools.
SERVERLESS_POOLS = ("AMPERE_16", "AMPERE_24", "ADA_24", "ADA_32_PRO", "AMPERE_48", "ADA_48_PRO", "AMPERE_80",
                    "ADA_80_PRO", "BLACKWELL_96", "HOPPER_141", "BLACKWELL_180")
# worker-contracts §3.4: the trainer's base image (ostris/aitoolkit) is built on CUDA 13.0 and needs a
# host driver >= 580; worker-comfyui's "-base-cuda12.8.1" images need CUDA 12.8 hosts (RTX 5090/B200).
TRAINER_CUDA = "13.0"
COMFY_CUDA_TAG = ("cuda12.8", "12.8")
MODEL_PREFIXES = ("models/", required.HF_HUB)


@dataclass(frozen=True)
class Finding:
    topic: str
    status: str     # ok | problem | skipped
    found: str      # what the check saw, in plain words
    todo: str = ""  # what to do about it (empty when ok)

    @property
    def ok(self) -> bool:
        return self.status != PROBLEM


@dataclass(frozen=True)
class Report:
    backend: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]


def check(settings: Settings, config: ConsoleConfig, client: RunPod, volume: Volume | None,
          *, volume_problem: str = "", backend: str = "RunPod", simulated: bool = False) -> Report:
    """Every check, in the order a new user fixes things: key, endpoints, volume, S3, models."""
    return Report(backend, tuple(_all(settings, config, client, volume, volume_problem, simulated)))


def _all(settings, config, client, volume, volume_problem, simulated) -> Iterator[Finding]:
    key = _api_key(settings, client, simulated)
    yield key
    account_readable = key.status == OK
    for spec in config.endpoints.values():
        if spec.is_dev_worker:
            yield from _dev_worker(spec, client)
        elif account_readable:
            yield from _endpoint(spec, config, client, simulated)
        else:
            yield Finding(f"{spec.role} endpoint", SKIPPED, "not checked: the API key was not accepted",
                          "fix the API key first")
    yield _network_volume(config, client) if account_readable else Finding(
        "network volume", SKIPPED, "not checked: the API key was not accepted", "fix the API key first")
    files, s3 = _s3(config, volume, volume_problem)
    yield s3
    yield from _models(config, files)


def _api_key(settings: Settings, client: RunPod, simulated: bool) -> Finding:
    if not settings.api_key and not simulated:
        return Finding("API key", PROBLEM, "RUNPOD_API_KEY is not set", "create a key in the RunPod console "
                       "(Settings → API Keys) and set RUNPOD_API_KEY in the environment or .streamlit/secrets.toml")
    try:
        count = sum(1 for _ in client.rest.endpoints())
    except AuthError as exc:
        if exc.status == 403:
            return Finding("API key", PROBLEM, "RunPod accepts the key but it may not read endpoints (HTTP 403)",
                           "give the key Read/Write access to Serverless (RunPod console → Settings → API Keys)")
        return Finding("API key", PROBLEM, "RunPod rejected the API key (HTTP 401)",
                       "copy the key again from RunPod console → Settings → API Keys into RUNPOD_API_KEY")
    except RunPodError as exc:
        return Finding("API key", PROBLEM, f"RunPod's management API did not answer: {exc}",
                       "check the network and RUNPOD_REST_URL, then run the check again")
    # Reference §1.1: keys are All / Restricted / Read Only, but the API does not report which.
    return Finding("API key", OK, f"accepted; the account has {count} serverless endpoint(s). RunPod does not "
                   "report a key's scopes: a read-only key shows up when scaling or purging is refused")


def _endpoint(spec: EndpointSpec, config: ConsoleConfig, client: RunPod, simulated: bool) -> Iterator[Finding]:
    topic = f"{spec.role} endpoint"
    assert spec.id  # config.load gives every endpoint that is not a dev worker its id
    try:
        live = client.rest.endpoint(spec.id)
    except NotFound:
        names = ", ".join(f"{e.name or '(no name)'} = {e.id}" for e in _safe_list(client)) or "none"
        yield Finding(topic, PROBLEM, f"no endpoint with id {spec.id} in this account (it has: {names})",
                      f"copy the id from RunPod console → Serverless into [endpoints.{spec.role}] id, or create "
                      "it on Admin → Provisioning")
        return
    except RunPodError as exc:
        yield Finding(topic, PROBLEM, f"could not read endpoint {spec.id}: {exc}", "run the check again")
        return
    yield Finding(topic, OK, f"{live.name or spec.id} exists ({spec.id})")
    yield _queue(spec, live.id, client)
    yield _image(spec, live)
    yield _mount(spec, live, config)
    yield _pools(spec, live, config, client)
    yield Finding(f"{spec.role} CUDA", SKIPPED, "the simulator has no GPU hosts, so no CUDA driver to match",
                  "") if simulated else _cuda(spec, live)


def _safe_list(client: RunPod) -> list[Endpoint]:
    try:
        return list(client.rest.endpoints())
    except RunPodError:
        return []


def _queue(spec: EndpointSpec, endpoint_id: str, client: RunPod) -> Finding:
    topic = f"{spec.role} job queue"
    try:
        health = client.endpoint(endpoint_id).health()
    except RunPodError as exc:
        return Finding(topic, PROBLEM, f"the job API refused /health: {exc}",
                       "check RUNPOD_API_KEY's access to this endpoint and RUNPOD_API_URL")
    return Finding(topic, OK, f"job API answers: {health.jobs.in_queue} in queue, {health.jobs.in_progress} "
                   f"running, {health.workers.total} worker(s)")


def _image(spec: EndpointSpec, live: Endpoint) -> Finding:
    topic = f"{spec.role} image"
    if not spec.image:
        return Finding(topic, OK, f"runs {live.image or 'an image RunPod does not report'} (console.toml "
                       "declares none to compare)")
    if live.image != spec.image:
        return Finding(topic, PROBLEM, f"runs {live.image or '(unknown)'}, console.toml declares {spec.image}",
                       f"deploy {spec.image} on the endpoint (Admin → Provisioning), or write the running image "
                       f"into [endpoints.{spec.role}] image")
    return Finding(topic, OK, f"runs {live.image}, as declared")


def _mount(spec: EndpointSpec, live: Endpoint, config: ConsoleConfig) -> Finding:
    topic = f"{spec.role} volume mount"
    if config.volume.id in live.network_volume_ids:
        return Finding(topic, OK, f"mounts network volume {config.volume.id} at /runpod-volume")
    attached = ", ".join(live.network_volume_ids) or "no network volume"
    return Finding(topic, PROBLEM, f"mounts {attached}, not {config.volume.id}: its workers cannot see the models",
                   f"attach volume {config.volume.id} to the endpoint (RunPod console → endpoint → Edit, or Admin "
                   "→ Provisioning)")


def _pools(spec: EndpointSpec, live: Endpoint, config: ConsoleConfig, client: RunPod) -> Finding:
    topic = f"{spec.role} GPU pools"
    pools = live.gpu_pools or spec.gpu_pools
    unknown = [p for p in pools if p not in SERVERLESS_POOLS]
    if unknown:
        return Finding(topic, PROBLEM, f"{', '.join(unknown)} is not a serverless GPU pool",
                       f"choose pools from {', '.join(SERVERLESS_POOLS)}")
    dc = config.volume.datacenter
    if live.data_center_ids and dc not in live.data_center_ids:
        return Finding(topic, PROBLEM, f"workers may start in {', '.join(live.data_center_ids)}, not in {dc} "
                       "where the volume is", f"add {dc} to the endpoint's datacenters")
    # RunPod's API does not publish per-datacenter stock of a pool (reference §3.2 catalog has none):
    # what can be checked is that workers are placed where the volume is, and whether they are throttled
    # (reference §1.10: "host lacks resources").
    try:
        throttled = client.rest.workers(live.id).throttled
    except RunPodError:
        throttled = 0  # the queue line reports an unreachable API already
    if throttled:
        return Finding(topic, PROBLEM, f"{throttled} worker(s) throttled: no free {', '.join(pools)} GPU in {dc} "
                       "right now", "add another pool to gpu_pools (in order of preference) or wait; RunPod "
                       "starts them when GPUs free up")
    return Finding(topic, OK, f"{', '.join(pools)} in {dc}" + ("" if live.data_center_ids else
                   " (no datacenter limit set: RunPod places workers near the attached volume)"))


def required_cuda(spec: EndpointSpec, live: Endpoint) -> str | None:
    image = live.image or spec.image
    if spec.role == "training":
        return TRAINER_CUDA
    if any(tag in image for tag in COMFY_CUDA_TAG):
        return "12.8"
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _cuda(spec: EndpointSpec, live: Endpoint) -> Finding:
    topic = f"{spec.role} CUDA"
    need = required_cuda(spec, live)
    if need is None:
        return Finding(topic, OK, "the image needs no CUDA constraint")
    reported = live.raw.get("gpu")
    gpu = reported if isinstance(reported, dict) else {}
    minimum = str(gpu.get("minCudaVersion") or "")
    allowed = [str(v) for v in gpu.get("allowedCudaVersions") or []]
    if (minimum and _version(minimum) >= _version(need)) or (
            allowed and all(_version(v) >= _version(need) for v in allowed)):
        return Finding(topic, OK, f"hosts limited to CUDA {minimum or ', '.join(allowed)} (needs {need})")
    return Finding(topic, PROBLEM, f"the image needs CUDA {need}, but the endpoint allows older hosts "
                   f"(minCudaVersion {minimum or 'not set'})",
                   f"set the endpoint's minimum CUDA version to {need} (RunPod console → endpoint → Edit → "
                   "Advanced), or workers on older hosts fail at start")


def _dev_worker(spec: EndpointSpec, client: RunPod) -> Iterator[Finding]:
    topic = f"{spec.role} dev worker"
    assert spec.url  # a dev worker is one with a url
    try:
        client.dev_worker(spec.url).reachable()
        yield Finding(topic, OK, f"answers at {spec.url}")
    except RunPodError as exc:
        yield Finding(topic, PROBLEM, f"does not answer at {spec.url}: {exc}",
                      "start it with `python handler.py --rp_serve_api` (port 8000) or fix url in console.toml")
    if not spec.models_dir:
        yield Finding(f"{spec.role} dev worker models", SKIPPED, "cannot check the models a dev worker loads",
                      f'name its ComfyUI models folder: models_dir = "/path/to/ComfyUI/models" under '
                      f"[endpoints.{spec.role}]")
    elif not Path(spec.models_dir).is_dir():
        yield Finding(f"{spec.role} dev worker models", PROBLEM, f"models_dir {spec.models_dir} is not a folder",
                      "point models_dir at the worker's ComfyUI models folder")
    else:
        yield Finding(f"{spec.role} dev worker models", OK, f"checked against {spec.models_dir}")


def _network_volume(config: ConsoleConfig, client: RunPod) -> Finding:
    declared = config.volume
    try:
        live = client.rest.network_volume(declared.id)
    except NotFound:
        try:
            others = ", ".join(f"{v.id} in {v.datacenter}" for v in client.rest.network_volumes()) or "none"
        except RunPodError:
            others = "unknown"
        return Finding("network volume", PROBLEM, f"no network volume {declared.id} in this account (it has: "
                       f"{others})", "copy the volume id from RunPod console → Storage into [volume] id")
    except RunPodError as exc:
        return Finding("network volume", PROBLEM, f"could not read volume {declared.id}: {exc}",
                       "run the check again")
    if live.datacenter and live.datacenter != declared.datacenter:
        return Finding("network volume", PROBLEM, f"{declared.id} is in {live.datacenter}, but console.toml says "
                       f"datacenter = {declared.datacenter}", f'write datacenter = "{live.datacenter}" under '
                       "[volume] (it is also the S3 region)")
    return Finding("network volume", OK, f"{declared.id} ({live.size_gb} GB) in {live.datacenter or declared.datacenter}")


def _s3(config: ConsoleConfig, volume: Volume | None, volume_problem: str) -> tuple[dict[str, int] | None, Finding]:
    if volume is None:
        return None, Finding("S3 access to the volume", PROBLEM, volume_problem or "no S3 access configured",
                             "set RUNPOD_S3_ACCESS_KEY and RUNPOD_S3_SECRET_KEY (RunPod console → Settings → "
                             "S3 API Keys)")
    try:
        files = {o.key: o.size for prefix in MODEL_PREFIXES for o in volume.list(prefix)}
    except VolumeError as exc:
        return None, Finding("S3 access to the volume", PROBLEM, f"listing failed: {exc}",
                             "check RUNPOD_S3_ACCESS_KEY / RUNPOD_S3_SECRET_KEY and the [volume] datacenter")
    return files, Finding("S3 access to the volume", OK, f"the S3 key lists bucket {config.volume.id} "
                          f"({len(files)} model file(s))")


def _models(config: ConsoleConfig, files: dict[str, int] | None) -> Iterator[Finding]:
    states = required.check(required.requirements(), files or {})
    for spec in config.endpoints.values():
        topic = f"{spec.role} models"
        if spec.is_dev_worker:
            continue  # a dev worker loads its own folder (see its models line)
        if files is None:
            yield Finding(topic, SKIPPED, "not checked: the volume cannot be listed", "fix S3 access first")
            continue
        mine = required.for_role(states, spec.role)
        _, missing_files = required.missing(mine)
        misplaced = [s.requirement.path for s in mine if s.status == required.MISPLACED]
        if missing_files or misplaced:
            names = ", ".join((missing_files + misplaced)[:4]) + (" …" if len(missing_files + misplaced) > 4 else "")
            yield Finding(topic, PROBLEM, f"{len(missing_files)} missing and {len(misplaced)} misplaced of "
                          f"{len(mine)} required: {names}", "upload or move them on Admin → Provisioning "
                          "(Models on the volume)")
        else:
            yield Finding(topic, OK, f"all {len(mine)} required model files are on the volume")


def rows(report: Report) -> list[dict]:
    """One row per finding for a table: status, check, what was found, what to do."""
    marks = {OK: "✅ ok", PROBLEM: "❌ problem", SKIPPED: "➖ not checked"}
    return [{"status": marks[f.status], "check": f.topic, "found": f.found,
             "what to do": f.todo if f.status != OK else ""} for f in report.findings]
