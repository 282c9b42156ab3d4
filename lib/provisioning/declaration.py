"""What console.toml declares for RunPod: the network volume and every endpoint, checked before any
call is made.

lib/config.py parses the scaling settings; the provisioning-only keys (gpu_count,
container_disk_gb, and a validated env and data_centers) are read here from ConsoleConfig.raw:

    [endpoints.training]
    image = "serverless-console/lora-trainer:latest"
    gpu_count = 1
    container_disk_gb = 100
    data_centers = ["EU-RO-1"]
    env = { HF_TOKEN = "secret:HF_TOKEN" }
    min_cuda_version = "13.0"        # or allowed_cuda_versions = ["13.0"]: hosts whose driver runs the image

A secret is referenced by name only. It is sent to RunPod as `{{ RUNPOD_SECRET_<name> }}`, which
RunPod fills in from the account's secrets when a worker starts, so its value never passes through
the console or the file. A literal value that looks like a credential is refused.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import overload

from lib.config import SECRET_LIKE_PREFIXES, ConsoleConfig, EndpointSpec, Prices
from lib.config import SENSITIVE_NAME as _SENSITIVE_NAME
from lib.errors import ConsoleError

SECRET_PREFIX = "secret:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUNPOD_SECRET = re.compile(r"^\{\{\s*RUNPOD_SECRET_([A-Za-z0-9_-]+)\s*\}\}$")

# DESIGN.md: worker-comfyui >= 5.x for the image and special endpoints (the special one needs a
# derived image with its custom nodes baked in for production).
DEFAULT_IMAGES = {"image": "runpod/worker-comfyui:5.8.5-base", "special": "runpod/worker-comfyui:5.8.5-base"}
# Reference §3.2: pools of the serverless GPU classes.
KNOWN_POOLS = ("AMPERE_16", "AMPERE_24", "ADA_24", "ADA_32_PRO", "AMPERE_48", "ADA_48_PRO", "AMPERE_80",
               "ADA_80_PRO", "BLACKWELL_96", "HOPPER_141", "BLACKWELL_180")
MAX_POOLS = 3                      # reference §1.11: up to 3 GPU types in priority order
EXECUTION_TIMEOUT_MS = (5_000, 7 * 24 * 3600 * 1000)   # reference §1.11: 5 s to 7 days
VOLUME_SIZE_GB = (10, 4096)        # reference §3.2
CUDA_VERSIONS = ("13.0", "11.8")   # reference §3.2: allowedCudaVersions "13.0" … "11.8" (newest, oldest)
# Reference §4: datacenters with RunPod's S3 API (as of 2026-03); the console reaches the volume
# only through it.
S3_DATACENTERS = ("EU-CZ-1", "EU-RO-1", "EUR-IS-1", "EUR-NO-1", "US-CA-2", "US-GA-2", "US-IL-1", "US-KS-2",
                  "US-MD-1", "US-MO-1", "US-MO-2", "US-NC-1", "US-NC-2", "US-NE-1", "US-WA-1")


class DeclarationError(ConsoleError, ValueError):
    """console.toml cannot be provisioned as written; `problems` lists every fix needed."""



@dataclass(frozen=True)
class SecretRef:
    """An environment value taken from the RunPod account secret of this name."""

    name: str

    @property
    def runpod_value(self) -> str:
        return f"{{{{ RUNPOD_SECRET_{self.name} }}}}"

    def __str__(self) -> str:
        return f"secret {self.name}"


EnvValue = str | SecretRef


def runpod_env_value(value: str) -> str:
    """A console.toml env value as RunPod gets it: "secret:NAME" becomes RunPod's secret template."""
    if value.startswith(SECRET_PREFIX):
        return SecretRef(value[len(SECRET_PREFIX):].strip()).runpod_value
    return value


def is_secret_like(value: str) -> bool:
    return value.strip().startswith(SECRET_LIKE_PREFIXES)


def shown_env_value(key: str, value: str) -> str:
    """An environment value as it may be shown or written down: secrets never in clear."""
    match = _RUNPOD_SECRET.match(value.strip())
    if match:
        return f"secret {match.group(1)}"
    if is_secret_like(value) or (value and _SENSITIVE_NAME.search(key)):
        return "•••• (hidden)"
    return value


def shown_env(env: Mapping[str, str]) -> str:
    return "; ".join(f"{k}={shown_env_value(k, v)}" for k, v in sorted(env.items())) or "(none)"


@dataclass(frozen=True)
class VolumeDecl:
    id: str
    name: str
    size_gb: int
    datacenter: str


@dataclass(frozen=True)
class EndpointDecl:
    """An endpoint to provision: its console.toml settings, with name, image and datacenters completed
    by provisioning's defaults, and the keys only provisioning reads (validated here, see the top)."""

    spec: EndpointSpec
    gpu_count: int = 1
    env: Mapping[str, EnvValue] | None = None   # None: the file does not manage the environment
    disk_gb: int | None = None                  # container disk; None: RunPod's default, not compared

    @property
    def runpod_env(self) -> dict[str, str] | None:
        """The environment as RunPod gets it: secret references become RunPod secret templates."""
        if self.env is None:
            return None
        return {k: v.runpod_value if isinstance(v, SecretRef) else v for k, v in self.env.items()}

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(sorted(v.name for v in (self.env or {}).values() if isinstance(v, SecretRef)))


@dataclass(frozen=True)
class Declaration:
    volume: VolumeDecl
    endpoints: tuple[EndpointDecl, ...]
    prices: Prices
    path: Path | None = None
    notes: tuple[str, ...] = field(default=())   # not errors, but worth knowing before applying

    def endpoint(self, role: str) -> EndpointDecl:
        for decl in self.endpoints:
            if decl.spec.role == role:
                return decl
        raise KeyError(f"console.toml declares no provisioned endpoint {role!r}")

    @classmethod
    def from_config(cls, config: ConsoleConfig) -> Declaration:
        """The declaration, or DeclarationError listing every problem of the file at once."""
        problems: list[str] = []
        notes: list[str] = []
        volume = _volume(config, problems, notes)
        raw_endpoints = config.raw.get("endpoints")
        if not isinstance(raw_endpoints, Mapping):  # config.load checked it is a table when present
            raw_endpoints = {}
        endpoints = []
        for role, spec in config.endpoints.items():
            if spec.is_dev_worker:
                notes.append(f"[endpoints.{role}] drives a worker under development ({spec.url}); it is not "
                             f"provisioned on RunPod")
                continue
            endpoints.append(_endpoint(spec, raw_endpoints.get(role) or {}, volume, config, problems))
        names: dict[str, str] = {}
        for spec in (decl.spec for decl in endpoints):
            if spec.name in names:
                problems.append(f"[endpoints.{spec.role}] and [endpoints.{names[spec.name]}] are both named "
                                f"{spec.name!r}; give every endpoint its own name (the plan finds endpoints "
                                f"by name when their id is not known yet)")
            names.setdefault(spec.name, spec.role)
        if problems:
            raise DeclarationError(problems)
        return cls(volume=volume, endpoints=tuple(endpoints), prices=config.prices, path=config.path,
                   notes=tuple(notes))


def _volume(config: ConsoleConfig, problems: list[str], notes: list[str]) -> VolumeDecl:
    v = config.volume
    lo, hi = VOLUME_SIZE_GB
    if not lo <= v.size_gb <= hi:
        problems.append(f"[volume] size_gb must be between {lo} and {hi} GB (RunPod's limits), not {v.size_gb}")
    if v.datacenter not in S3_DATACENTERS:
        notes.append(f"[volume] datacenter {v.datacenter} is not among the datacenters with RunPod's S3 API "
                     f"({', '.join(S3_DATACENTERS)} as of 2026-03); the console reaches the volume only "
                     f"through that API")
    return VolumeDecl(id=v.id, name=v.name or v.id, size_gb=v.size_gb, datacenter=v.datacenter)


def _endpoint(spec: EndpointSpec, raw: Mapping, volume: VolumeDecl, config: ConsoleConfig,
              problems: list[str]) -> EndpointDecl:
    where = f"[endpoints.{spec.role}]"
    name = spec.name or f"console-{spec.role}"
    image = str(raw.get("image") or DEFAULT_IMAGES.get(spec.role, ""))
    if not image:
        problems.append(f"{where} needs image = \"<registry>/<image>:<tag>\": the container the endpoint runs "
                        f"(for training, the image built from workers/lora_trainer/Dockerfile)")
    if len(spec.gpu_pools) > MAX_POOLS:
        problems.append(f"{where} gpu_pools lists {len(spec.gpu_pools)} pools; RunPod takes at most {MAX_POOLS}, "
                        f"in order of preference")
    for pool in spec.gpu_pools:
        if pool not in KNOWN_POOLS and pool not in config.prices.flex_per_s:
            problems.append(f"{where} gpu_pools: {pool!r} is not a RunPod serverless pool "
                            f"({', '.join(KNOWN_POOLS)})")
    gpu_count = _positive_int(raw, "gpu_count", 1, where, problems)
    disk = _positive_int(raw, "container_disk_gb", None, where, problems)
    if not 1 <= spec.idle_timeout_s <= 3600:
        problems.append(f"{where} idle_timeout_s must be between 1 and 3600 seconds")
    if spec.scaling_value < 1:
        problems.append(f"{where} scaling_value must be at least 1 (seconds of queue delay, or jobs per worker)")
    lo, hi = EXECUTION_TIMEOUT_MS
    if not lo <= spec.timeout_ms <= hi:
        problems.append(f"{where} execution_timeout_ms must be between {lo} (5 s) and {hi} (7 days)")
    data_centers = raw.get("data_centers", [volume.datacenter])
    if isinstance(data_centers, str) or not isinstance(data_centers, list) \
            or not all(isinstance(d, str) and d for d in data_centers):
        problems.append(f"{where} data_centers must be a list of datacenter ids like [\"EU-RO-1\"]")
        data_centers = [volume.datacenter]
    elif volume.datacenter not in data_centers:
        problems.append(f"{where} data_centers {data_centers} leaves out {volume.datacenter}, the network "
                        f"volume's datacenter: workers elsewhere cannot mount the volume")
    env = _env(raw.get("env"), where, problems)
    _check_cuda(spec, where, problems)
    return EndpointDecl(spec=replace(spec, name=name, image=image, data_center_ids=tuple(data_centers)),
                        gpu_count=gpu_count, env=env, disk_gb=disk)


def _cuda(version: str) -> tuple[int, ...] | None:
    return tuple(int(x) for x in version.split(".")) if re.fullmatch(r"\d+\.\d+", version) else None


def _check_cuda(spec: EndpointSpec, where: str, problems: list[str]) -> None:
    """RunPod takes CUDA versions "13.0" … "11.8" (reference §3.2)."""
    lo, hi = _cuda(CUDA_VERSIONS[1]), _cuda(CUDA_VERSIONS[0])
    assert lo is not None and hi is not None  # the constants are well-formed versions
    named = ([("min_cuda_version", spec.min_cuda_version)] if spec.min_cuda_version is not None else []) + \
        [("allowed_cuda_versions", v) for v in spec.allowed_cuda_versions or ()]
    for key, version in named:
        parsed = _cuda(version)
        if parsed is None or not lo <= parsed <= hi:
            problems.append(f"{where} {key}: {version!r} is not a CUDA version RunPod offers "
                            f"({CUDA_VERSIONS[0]} … {CUDA_VERSIONS[1]}, e.g. \"13.0\")")
    floor = _cuda(spec.min_cuda_version) if spec.min_cuda_version else None
    if floor is not None and spec.allowed_cuda_versions:
        if not any((_cuda(v) or (0,)) >= floor for v in spec.allowed_cuda_versions):
            problems.append(f"{where} allowed_cuda_versions {list(spec.allowed_cuda_versions)} are all below "
                            f"min_cuda_version {spec.min_cuda_version}: no host could run a worker")


@overload
def _positive_int(raw: Mapping[str, object], key: str, default: int, where: str, problems: list[str]) -> int: ...


@overload
def _positive_int(raw: Mapping[str, object], key: str, default: None, where: str,
                  problems: list[str]) -> int | None: ...


def _positive_int(raw: Mapping[str, object], key: str, default: int | None, where: str,
                  problems: list[str]) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where} {key} must be a whole number of at least 1, not {value!r}")
        return default
    return value


def _env(raw: object, where: str, problems: list[str]) -> dict[str, EnvValue] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where} env must be a table, e.g. env = {{ COMFY_LOG_LEVEL = \"INFO\" }}")
        return None
    env: dict[str, EnvValue] = {}
    for key, value in raw.items():
        if not _ENV_NAME.match(key):
            problems.append(f"{where} env: {key!r} is not a valid environment variable name")
            continue
        if not isinstance(value, str):
            problems.append(f"{where} env.{key} must be a string (quote numbers and booleans)")
            continue
        if value.startswith(SECRET_PREFIX):
            name = value[len(SECRET_PREFIX):].strip()
            if not re.match(r"^[A-Za-z0-9_-]+$", name):
                problems.append(f"{where} env.{key}: write a secret as \"secret:NAME\", where NAME is the name of "
                                f"a secret in your RunPod account (Settings → Secrets)")
                continue
            env[key] = SecretRef(name)
        elif is_secret_like(value) or (value and _SENSITIVE_NAME.search(key)):
            # The message never repeats the value: it is probably a live credential.
            problems.append(f"{where} env.{key} holds what looks like a credential. Never write secrets in "
                            f"console.toml: create a RunPod secret (Settings → Secrets) and write "
                            f"{key} = \"secret:<its name>\" instead")
        else:
            env[key] = value
    return env
