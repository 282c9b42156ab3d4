"""The simulator's reading of console.toml: which endpoints and volume to simulate, at what prices.

The simulator is a double of RunPod, so it reads the file itself (DESIGN.md: it imports nothing
from the console). It needs far less than the console does — endpoint ids, names, scaling
settings, images and env; the volume; per-second prices; its own [simulator] timings — and is
lenient where the console is strict: anything it does not use is ignored.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The workloads a created endpoint can carry in its name (DESIGN.md: names contain the role).
ROLES = ("image", "training", "special")
COLD_START_S = {"image": 90.0, "training": 120.0, "special": 100.0}
SECRET_PREFIX = "secret:"


class PodConfigError(ValueError):
    """console.toml cannot be read or lacks what the simulator needs."""


@dataclass(frozen=True)
class EndpointSpec:
    """One [endpoints.<role>] table, as the simulator creates that endpoint."""

    role: str
    id: str | None                              # None: a worker under development, at `url`
    url: str | None
    name: str
    gpu_pools: tuple[str, ...]
    workers_min: int
    workers_max: int
    idle_timeout_s: int
    scaling_type: str
    scaling_value: float
    execution_timeout_ms: int
    flashboot: bool
    image: str
    env: Mapping[str, str]
    min_cuda_version: str | None = None         # gpu.minCudaVersion the endpoint was provisioned with
    allowed_cuda_versions: tuple[str, ...] = ()

    @property
    def is_dev_worker(self) -> bool:
        """A worker under development (`url = …`) is not on RunPod, so not simulated."""
        return bool(self.url) and not self.id

    def runpod_env(self) -> dict[str, str]:
        """The env as RunPod stores it: "secret:NAME" is RunPod's secret template, never a value."""
        return {key: (f"{{{{ RUNPOD_SECRET_{value[len(SECRET_PREFIX):].strip()} }}}}"
                      if value.startswith(SECRET_PREFIX) else value)
                for key, value in self.env.items()}


@dataclass(frozen=True)
class VolumeSpec:
    """[volume]: the network volume every simulated endpoint mounts at /runpod-volume."""

    id: str
    name: str
    datacenter: str
    size_gb: int


@dataclass(frozen=True)
class PodConfig:
    endpoints: Mapping[str, EndpointSpec]
    volume: VolumeSpec
    flex_per_s: Mapping[str, float]          # [prices.flex_per_s]: USD per worker-second by GPU pool
    active_per_s: Mapping[str, float]        # [prices.active_per_s]: the same for always-on workers
    volume_usd_per_gb_month: float = 0.07
    time_scale: float = 0.05                 # [simulator]: real seconds per simulated second
    flashboot_restart_s: float = 4.0
    cold_start_s: Mapping[str, float] = field(default_factory=lambda: dict(COLD_START_S))

    def price(self, pool: str, *, active: bool) -> float:
        """USD per worker-second; an always-on worker costs the flex price where none is given."""
        table = self.active_per_s if active and pool in self.active_per_s else self.flex_per_s
        if pool not in table:
            raise PodConfigError(f"no price for GPU pool {pool!r} in [prices.flex_per_s]")
        return float(table[pool])

    @classmethod
    def load(cls, path: str | os.PathLike) -> PodConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PodConfigError(f"configuration file {path} not found (--config or CONSOLE_CONFIG)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PodConfigError(f"cannot read {path}: {exc}") from None
        try:
            return cls.from_toml(tomllib.loads(text), str(path))
        except tomllib.TOMLDecodeError as exc:
            raise PodConfigError(f"{path} is not valid TOML: {exc}") from None

    @classmethod
    def of(cls, config: object) -> PodConfig:
        """A PodConfig from what a caller holds: one already, a path, or the parsed TOML table.

        An object carrying the parsed file as `.raw` (the console's own config object) is read
        through that table only, so the simulator never depends on how the console models it.
        """
        if isinstance(config, PodConfig):
            return config
        if isinstance(config, (str, os.PathLike)):
            return cls.load(config)
        table = config if isinstance(config, Mapping) else getattr(config, "raw", None)
        if not isinstance(table, Mapping):
            raise TypeError(f"expected a PodConfig, a console.toml path or its parsed table, "
                            f"not {type(config).__name__}")
        return cls.from_toml(table)

    @classmethod
    def from_toml(cls, data: Mapping, where: str = "console.toml") -> PodConfig:
        endpoints = {role: _endpoint(role, table, where)
                     for role, table in _table(data, "endpoints", where).items()}
        vol = _table(data, "volume", where)
        if not vol.get("id"):
            raise PodConfigError(f"{where}: [volume] needs an id (the network volume id)")
        volume = VolumeSpec(id=str(vol["id"]), name=str(vol.get("name", "")),
                            datacenter=str(vol.get("datacenter", "EU-RO-1")),
                            size_gb=int(vol.get("size_gb", 100)))
        p = _table(data, "prices", where)
        flex = _numbers(_table(p, "flex_per_s", where))
        for spec in endpoints.values():
            if not spec.is_dev_worker and spec.gpu_pools[0] not in flex:
                raise PodConfigError(f"{where}: [endpoints.{spec.role}] pool {spec.gpu_pools[0]!r} has no "
                                     "price in [prices.flex_per_s]")
        s = _table(data, "simulator", where)
        if float(s.get("time_scale", 0.05)) <= 0:
            raise PodConfigError(f"{where}: [simulator] time_scale must be > 0")
        return cls(endpoints=endpoints, volume=volume, flex_per_s=flex,
                   active_per_s=_numbers(_table(p, "active_per_s", where)),
                   volume_usd_per_gb_month=float(p.get("volume_usd_per_gb_month", 0.07)),
                   time_scale=float(s.get("time_scale", 0.05)),
                   flashboot_restart_s=float(s.get("flashboot_restart_s", 4.0)),
                   cold_start_s={**COLD_START_S, **_numbers(_table(s, "cold_start_s", where))})


def _table(parent: Mapping, key: str, where: str) -> Mapping:
    value = parent.get(key) or {}
    if not isinstance(value, Mapping):
        raise PodConfigError(f"{where}: [{key}] must be a table")
    return value


def _numbers(table: Mapping) -> dict[str, float]:
    return {key: float(value) for key, value in table.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _endpoint(role: str, table: object, where: str) -> EndpointSpec:
    if not isinstance(table, Mapping):
        raise PodConfigError(f"{where}: [endpoints.{role}] must be a table")
    pools = table.get("gpu_pools", ["ADA_24"])
    pools = [pools] if isinstance(pools, str) else list(pools)
    if not pools or not all(isinstance(p, str) for p in pools):
        raise PodConfigError(f"{where}: [endpoints.{role}] gpu_pools must be a list of pool ids")
    return EndpointSpec(
        role=role, id=str(table["id"]) if table.get("id") else None,
        url=str(table["url"]) if table.get("url") else None, name=str(table.get("name", "")),
        gpu_pools=tuple(pools), workers_min=int(table.get("workers_min", 0)),
        workers_max=int(table.get("workers_max", 3)), idle_timeout_s=int(table.get("idle_timeout_s", 5)),
        scaling_type=str(table.get("scaling_type", "QUEUE_DELAY")).upper(),
        scaling_value=float(table.get("scaling_value", 4)), flashboot=bool(table.get("flashboot", True)),
        execution_timeout_ms=int(table.get("execution_timeout_ms", 600_000)),
        image=str(table.get("image", "")),
        env={str(k): str(v) for k, v in _table(table, "env", where).items()},
        min_cuda_version=str(table["min_cuda_version"]) if table.get("min_cuda_version") else None,
        allowed_cuda_versions=tuple(str(v) for v in table.get("allowed_cuda_versions") or ()))
