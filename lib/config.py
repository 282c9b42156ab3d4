"""Settings (environment / secrets) and the console's TOML configuration.

The names are fixed by DESIGN.md: RUNPOD_API_KEY, RUNPOD_API_URL, RUNPOD_REST_URL,
RUNPOD_S3_ACCESS_KEY, RUNPOD_S3_SECRET_KEY, RUNPOD_S3_URL, CONSOLE_CONFIG, CONSOLE_DATA.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lib.errors import ConsoleError

DEFAULT_API_URL = "https://api.runpod.ai/v2"
DEFAULT_REST_URL = "https://api.runpod.io/v2"
ROLES = ("image", "training", "special")
SCALING_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")


class ConfigError(ConsoleError, ValueError):
    """console.toml (or a setting) is missing, unreadable or invalid; the message says where."""


class Secret:
    """A credential that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class Settings:
    api_key: Secret
    api_url: str = DEFAULT_API_URL
    rest_url: str = DEFAULT_REST_URL
    s3_access_key: Secret = field(default_factory=lambda: Secret(""))
    s3_secret_key: Secret = field(default_factory=lambda: Secret(""))
    s3_url: str | None = None
    config_path: Path = Path("console.toml")
    data_dir: Path = Path("data")

    @property
    def uses_simulator(self) -> bool:
        """No API key means: run everything on the local simulator."""
        return not self.api_key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None,
                 secrets: Mapping[str, object] | None = None) -> "Settings":
        """Environment first, then top-level keys of .streamlit/secrets.toml with the same names."""
        env = os.environ if env is None else env
        secrets = secrets or {}

        def get(name: str, default: str = "") -> str:
            value = env.get(name)
            if value is None or value == "":
                value = secrets.get(name, default)
            return str(value).strip() if value is not None else default

        return cls(
            api_key=Secret(get("RUNPOD_API_KEY")),
            api_url=get("RUNPOD_API_URL", DEFAULT_API_URL).rstrip("/"),
            rest_url=get("RUNPOD_REST_URL", DEFAULT_REST_URL).rstrip("/"),
            s3_access_key=Secret(get("RUNPOD_S3_ACCESS_KEY")),
            s3_secret_key=Secret(get("RUNPOD_S3_SECRET_KEY")),
            s3_url=get("RUNPOD_S3_URL") or None,
            config_path=Path(get("CONSOLE_CONFIG", "console.toml")),
            data_dir=Path(get("CONSOLE_DATA", "data")),
        )

    def s3_endpoint_for(self, datacenter: str) -> str:
        return self.s3_url or f"https://s3api-{datacenter.lower()}.runpod.io"


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint as declared in console.toml."""

    role: str
    id: str | None = None
    url: str | None = None  # a worker under development behind `handler.py --rp_serve_api`
    name: str = ""
    gpu_pools: tuple[str, ...] = ("ADA_24",)
    workers_min: int = 0
    workers_max: int = 3
    idle_timeout_s: int = 5
    scaling_type: str = "QUEUE_DELAY"
    scaling_value: int = 4
    flashboot: bool = True
    execution_timeout_ms: int = 600_000
    image: str = ""
    data_centers: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_dev_worker(self) -> bool:
        return bool(self.url) and not self.id

    @property
    def label(self) -> str:
        return self.name or self.id or self.url or self.role


@dataclass(frozen=True)
class VolumeSpec:
    id: str
    name: str = ""
    datacenter: str = "EU-RO-1"
    size_gb: int = 100


@dataclass(frozen=True)
class Prices:
    as_of: str
    flex_per_s: Mapping[str, float]
    active_per_s: Mapping[str, float]
    pod_hourly_usd: float = 0.69
    volume_usd_per_gb_month: float = 0.07

    def per_second(self, pool: str, active: bool = False) -> float:
        """Price of one worker-second in this pool; active falls back to flex when unknown."""
        if active and pool in self.active_per_s:
            return float(self.active_per_s[pool])
        if pool in self.flex_per_s:
            return float(self.flex_per_s[pool])
        raise ConfigError(f"no price for GPU pool {pool!r} in [prices.flex_per_s]")


@dataclass(frozen=True)
class SimulatorSpec:
    time_scale: float = 0.05
    flashboot_restart_s: float = 4.0
    cold_start_s: Mapping[str, float] = field(
        default_factory=lambda: {"image": 90.0, "training": 120.0, "special": 100.0})


@dataclass(frozen=True)
class ConsoleConfig:
    endpoints: Mapping[str, EndpointSpec]
    volume: VolumeSpec
    prices: Prices
    simulator: SimulatorSpec
    raw: Mapping[str, object] = field(default_factory=dict, repr=False)
    path: Path | None = None

    def endpoint(self, role: str) -> EndpointSpec:
        try:
            return self.endpoints[role]
        except KeyError:
            raise ConfigError(f"console.toml has no [endpoints.{role}]") from None

    def price_per_second(self, role: str, active: bool = False) -> float:
        spec = self.endpoint(role)
        return self.prices.per_second(spec.gpu_pools[0], active=active)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConsoleConfig":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text — save it as plain UTF-8 TOML") from None
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} not found (set CONSOLE_CONFIG)") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        return cls.parse(text, path=path)

    @classmethod
    def parse(cls, text: str, path: Path | None = None) -> "ConsoleConfig":
        where = str(path or "console.toml")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML: {exc}") from None
        endpoints = {}
        for role, table in (data.get("endpoints") or {}).items():
            endpoints[role] = _endpoint(role, table, where)
        missing = [r for r in ROLES if r not in endpoints]
        if missing:
            raise ConfigError(f"{where} must declare [endpoints.{missing[0]}] "
                              f"(the console drives the roles {', '.join(ROLES)})")
        vol = data.get("volume") or {}
        if not isinstance(vol, dict) or not vol.get("id"):
            raise ConfigError(f"{where}: [volume] needs an id (the network volume id)")
        volume = VolumeSpec(id=str(vol["id"]), name=str(vol.get("name", "")),
                            datacenter=str(vol.get("datacenter", "EU-RO-1")),
                            size_gb=_int(vol, "size_gb", 100, where, "volume"))
        p = _table(data, "prices", where, "prices")
        prices = Prices(
            as_of=str(p.get("as_of", "unknown")),
            flex_per_s=_prices(p, "flex_per_s", where),
            active_per_s=_prices(p, "active_per_s", where),
            pod_hourly_usd=_float(p, "pod_hourly_usd", 0.69, where, "prices"),
            volume_usd_per_gb_month=_float(p, "volume_usd_per_gb_month", 0.07, where, "prices"),
        )
        for spec in endpoints.values():
            if spec.gpu_pools[0] not in prices.flex_per_s:
                raise ConfigError(f"{where}: [endpoints.{spec.role}] pool {spec.gpu_pools[0]!r} "
                                  f"has no price in [prices.flex_per_s]")
        s = _table(data, "simulator", where, "simulator")
        cold = _table(s, "cold_start_s", where, "simulator.cold_start_s")
        sim = SimulatorSpec(
            time_scale=_float(s, "time_scale", 0.05, where, "simulator"),
            flashboot_restart_s=_float(s, "flashboot_restart_s", 4.0, where, "simulator"),
            cold_start_s={**SimulatorSpec().cold_start_s,
                          **{k: _float(cold, k, 0.0, where, "simulator.cold_start_s") for k in cold}},
        )
        if sim.time_scale <= 0:
            raise ConfigError(f"{where}: [simulator] time_scale must be > 0")
        return cls(endpoints=endpoints, volume=volume, prices=prices, simulator=sim,
                   raw=data, path=path)


def _table(parent: Mapping, key: str, where: str, section: str) -> Mapping:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{section}] must be a table (a [{section}] section), not {value!r}")
    return value


def _float(table: Mapping, key: str, default: float, where: str, section: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: [{section}] {key} must be a number, not {value!r}")
    return float(value)


def _prices(table: Mapping, key: str, where: str) -> dict[str, float]:
    prices = _table(table, key, where, f"prices.{key}")
    return {pool: _float(prices, pool, 0.0, where, f"prices.{key}") for pool in prices}


def _int(table: Mapping, key: str, default: int, where: str, section: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: [{section}] {key} must be a whole number, not {value!r}")
    return value


def _endpoint(role: str, table: object, where: str) -> EndpointSpec:
    section = f"endpoints.{role}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{section}] must be a table")
    if not table.get("id") and not table.get("url"):
        raise ConfigError(f"{where}: [{section}] needs an id (or url for a worker under development)")
    pools = table.get("gpu_pools", ["ADA_24"])
    if isinstance(pools, str):
        pools = [pools]
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
        raise ConfigError(f"{where}: [{section}] gpu_pools must be a list of pool ids like \"ADA_24\"")
    flashboot = table.get("flashboot", True)
    if not isinstance(flashboot, bool):
        raise ConfigError(f"{where}: [{section}] flashboot must be true or false, not {flashboot!r}")
    env = _table(table, "env", where, f"{section}.env")
    scaling_type = str(table.get("scaling_type", "QUEUE_DELAY")).upper()
    if scaling_type not in SCALING_TYPES:
        raise ConfigError(f"{where}: [{section}] scaling_type must be one of {', '.join(SCALING_TYPES)}")
    spec = EndpointSpec(
        role=role,
        id=str(table["id"]) if table.get("id") else None,
        url=str(table["url"]).rstrip("/") if table.get("url") else None,
        name=str(table.get("name", "")),
        gpu_pools=tuple(pools),
        workers_min=_int(table, "workers_min", 0, where, section),
        workers_max=_int(table, "workers_max", 3, where, section),
        idle_timeout_s=_int(table, "idle_timeout_s", 5, where, section),
        scaling_type=scaling_type,
        scaling_value=_int(table, "scaling_value", 4, where, section),
        flashboot=flashboot,
        execution_timeout_ms=_int(table, "execution_timeout_ms", 600_000, where, section),
        image=str(table.get("image", "")),
        data_centers=tuple(table.get("data_centers", ())),
        env=dict(env),
    )
    if spec.workers_min < 0 or spec.workers_max < spec.workers_min:
        raise ConfigError(f"{where}: [{section}] needs 0 <= workers_min <= workers_max")
    return spec
