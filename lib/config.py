"""Settings (environment / secrets) and the console's TOML configuration.

The names are fixed by DESIGN.md: RUNPOD_API_KEY, RUNPOD_API_URL, RUNPOD_REST_URL,
RUNPOD_S3_ACCESS_KEY, RUNPOD_S3_SECRET_KEY, RUNPOD_S3_URL, CONSOLE_CONFIG, CONSOLE_DATA.
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lib.errors import ConsoleError

DEFAULT_API_URL = "https://api.runpod.ai/v2"
DEFAULT_REST_URL = "https://api.runpod.io/v2"
ROLES = ("image", "training", "special")
SCALING_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")
# The training image (AI Toolkit's) needs CUDA 13.0, an NVIDIA driver >= 580 (worker-contracts §3.4):
# the safe default when console.toml says nothing; min_cuda_version = "" leaves it unmanaged.
DEFAULT_MIN_CUDA = {"training": "13.0"}


class ConfigError(ConsoleError, ValueError):
    """console.toml (or a setting) is missing, unreadable or invalid; the message says where.

    `path` and `line` locate the mistake when it has a place in the file; `fix` is what to write
    instead (already part of the message, kept apart for the configuration-error page)."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 fix: str = ""):
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.line = line
        self.fix = fix


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
                 secrets: Mapping[str, object] | None = None) -> Settings:
        """Environment first, then top-level keys of .streamlit/secrets.toml with the same names."""
        env = os.environ if env is None else env
        secrets = secrets or {}

        def get(name: str, default: str = "") -> str:
            value: object = env.get(name)
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
    """One endpoint as declared in console.toml: the one declaration type, read by the console, the
    doctor, drift (lib/ops/drift.py) and provisioning alike.

    Settings RunPod reports carry the name of lib.runpod.models.Endpoint's field and of RestV2's keyword
    for it, whatever the file's key is (`execution_timeout_ms` → `timeout_ms`, `data_centers` →
    `data_center_ids`), so that comparing and patching needs no renaming.
    """

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
    timeout_ms: int = 600_000
    image: str = ""
    data_center_ids: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Hosts whose NVIDIA driver runs the image (REST v2 gpu.minCudaVersion / gpu.allowedCudaVersions);
    # None: not declared, so not managed.
    min_cuda_version: str | None = None
    allowed_cuda_versions: tuple[str, ...] | None = None
    # A dev worker's own ComfyUI models folder, which preflight checks instead of the network volume.
    models_dir: str | None = None

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


# RunPod's serverless price table (reference §5.1), the one the example console.toml carries, so
# that a console.toml without [prices] still prices every pool RunPod offers. A [prices] table in the
# file overrides single pools. ADA_32_PRO (RTX 5090) has no published serverless price.
DEFAULT_PRICES_AS_OF = "2026-05-13"
DEFAULT_FLEX_PER_S = {
    "AMPERE_16": 0.00016, "AMPERE_24": 0.00019, "ADA_24": 0.00031, "AMPERE_48": 0.00034,
    "ADA_48_PRO": 0.00053, "AMPERE_80": 0.00076, "ADA_80_PRO": 0.00116, "BLACKWELL_96": 0.00111,
    "HOPPER_141": 0.00155, "BLACKWELL_180": 0.00240,
}
# RunPod stopped publishing active prices on 2026-05-13 (reference: "could not confirm"); the last
# published ones are kept so an always-on worker is not understated by more than the old discount.
DEFAULT_ACTIVE_PER_S = {
    "AMPERE_16": 0.00011, "AMPERE_24": 0.00013, "ADA_24": 0.00021, "AMPERE_48": 0.00024,
    "ADA_48_PRO": 0.00037, "AMPERE_80": 0.00060, "ADA_80_PRO": 0.00093, "HOPPER_141": 0.00124,
    "BLACKWELL_180": 0.00190,
}


@dataclass(frozen=True)
class Prices:
    as_of: str
    flex_per_s: Mapping[str, float]
    active_per_s: Mapping[str, float]
    pod_hourly_usd: float = 0.69
    volume_usd_per_gb_month: float = 0.07

    def knows(self, pool: str) -> bool:
        return pool in self.flex_per_s

    def per_second(self, pool: str, active: bool = False) -> float:
        """Price of one worker-second in this pool; active falls back to flex when unknown."""
        if active and pool in self.active_per_s:
            return float(self.active_per_s[pool])
        if pool in self.flex_per_s:
            return float(self.flex_per_s[pool])
        raise ConfigError(f"no price for GPU pool {pool!r} in [prices.flex_per_s]",
                          fix=f"add {pool} = <USD per second> under [prices.flex_per_s]")


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

    def has(self, role: str) -> bool:
        return role in self.endpoints

    def endpoint(self, role: str) -> EndpointSpec:
        try:
            return self.endpoints[role]
        except KeyError:
            raise ConfigError(f"console.toml has no [endpoints.{role}]",
                              fix=how_to_add_endpoint(role)) from None

    def unpriced_pools(self) -> dict[str, str]:
        """role -> first GPU pool of endpoints whose price is unknown (their costs are not estimated)."""
        return {role: spec.gpu_pools[0] for role, spec in self.endpoints.items()
                if not self.prices.knows(spec.gpu_pools[0])}

    def price_warnings(self) -> list[str]:
        return [f"No price for pool {pool}: costs for the {role} endpoint are not estimated. Add {pool} = "
                f"<USD per second> under [prices.flex_per_s] in console.toml."
                for role, pool in self.unpriced_pools().items()]

    def price_per_second(self, role: str, active: bool = False) -> float:
        """0.0 for a pool without any known price: Costs warns that such an endpoint is not estimated."""
        spec = self.endpoint(role)
        if not self.prices.knows(spec.gpu_pools[0]):
            return 0.0
        return self.prices.per_second(spec.gpu_pools[0], active=active)

    @classmethod
    def load(cls, path: str | os.PathLike, *, any_role: bool = False) -> ConsoleConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text — save it as plain UTF-8 TOML", path=path,
                              fix="save the file as plain UTF-8 text") from None
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} not found (set CONSOLE_CONFIG)", path=path,
                              fix="create console.toml (the minimal file is in the README) or set "
                                  "CONSOLE_CONFIG to its path") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", path=path,
                              fix="set CONSOLE_CONFIG to a readable TOML file") from None
        return cls.parse(text, path=path, any_role=any_role)

    @classmethod
    def parse(cls, text: str, path: Path | None = None, *, any_role: bool = False) -> ConsoleConfig:
        """any_role: endpoints of roles the console does not drive are accepted (the simulator and the
        simulator's tests add a `basic` endpoint); the console itself refuses them as typos."""
        src = _Source(text, path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = _toml_error_line(str(exc))
            # The decoder's message names a position, never the file's content (it may hold a secret).
            raise ConfigError(f"{src.where} is not valid TOML: {exc}", path=src.where, line=line,
                              fix="fix the syntax at that line: strings in double quotes, one [table] "
                                  "header per section, key = value") from None
        _refuse_secrets(data, src)
        _refuse_unknown_keys(data, src, any_role)
        endpoints = {}
        raw_endpoints = _table(data, "endpoints", src, "endpoints")
        for role, table in raw_endpoints.items():
            endpoints[role] = _endpoint(role, table, src)
        if not endpoints:
            raise src.error(("endpoints",), None,
                            "must declare at least one endpoint, e.g. [endpoints.image] "
                            f"(the console drives the roles {', '.join(ROLES)})",
                            fix=how_to_add_endpoint("image"))
        vol = data.get("volume") or {}
        if not isinstance(vol, dict) or not vol.get("id"):
            raise src.error(("volume",), "id", "[volume] needs an id (the network volume id)",
                            fix='[volume]\nid = "<network volume id>"\ndatacenter = "EU-RO-1"')
        volume = VolumeSpec(id=str(vol["id"]), name=str(vol.get("name", "")),
                            datacenter=str(vol.get("datacenter", "EU-RO-1")),
                            size_gb=_int(vol, "size_gb", 100, src, "volume"))
        p = _table(data, "prices", src, "prices")
        flex = _prices(p, "flex_per_s", src)
        prices = Prices(
            as_of=str(p.get("as_of", DEFAULT_PRICES_AS_OF if not flex else "unknown")),
            flex_per_s={**DEFAULT_FLEX_PER_S, **flex},
            active_per_s={**DEFAULT_ACTIVE_PER_S, **_prices(p, "active_per_s", src)},
            pod_hourly_usd=_float(p, "pod_hourly_usd", 0.69, src, "prices"),
            volume_usd_per_gb_month=_float(p, "volume_usd_per_gb_month", 0.07, src, "prices"),
        )
        s = _table(data, "simulator", src, "simulator")
        cold = _table(s, "cold_start_s", src, "simulator.cold_start_s")
        sim = SimulatorSpec(
            time_scale=_float(s, "time_scale", 0.05, src, "simulator"),
            flashboot_restart_s=_float(s, "flashboot_restart_s", 4.0, src, "simulator"),
            cold_start_s={**SimulatorSpec().cold_start_s,
                          **{k: _float(cold, k, 0.0, src, "simulator.cold_start_s") for k in cold}},
        )
        if sim.time_scale <= 0:
            raise src.error(("simulator",), "time_scale", "[simulator] time_scale must be > 0",
                            fix="time_scale = 0.05  (real seconds per simulated second)")
        return cls(endpoints=endpoints, volume=volume, prices=prices, simulator=sim,
                   raw=data, path=path)


def endpoint_snippet(role: str) -> str:
    return f'[endpoints.{role}]\nid = "<your {role} endpoint id from RunPod>"'


def how_to_add_endpoint(role: str) -> str:
    return (f"add to console.toml:\n{endpoint_snippet(role)}\n"
            "then restart the console (or reload it on Admin → Provisioning)")


class _Source:
    """The file's text, to point a mistake at its line."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str, path: Path | None):
        self.where = str(path or "console.toml")
        self.path = path
        self.lines = text.splitlines()

    def _sections(self) -> Iterator[tuple[int, tuple[str, ...], str]]:
        section: tuple[str, ...] = ()
        for number, line in enumerate(self.lines, start=1):
            header = self._HEADER.match(line)
            if header:
                section = tuple(part.strip().strip('"\'') for part in header.group(1).split("."))
                yield number, section, ""
            else:
                yield number, section, line

    def line_of(self, section: tuple[str, ...], key: str | None) -> int | None:
        """The line that sets `key` in `section` (also inline: `image = {…}` under [endpoints]),
        else the section's header line; None when the file does not name it."""
        header_line = None
        for number, current, line in self._sections():
            if not line:
                if current == section and header_line is None:
                    header_line = number
                if key is not None and current == section + (key,):
                    return number
                continue
            if current == section and key is not None and _sets(line, key):
                return number
            if len(current) < len(section) and section[:len(current)] == current:
                rest = section[len(current):]
                if _sets(line, rest[0]) and (key is None or re.search(rf"\b{re.escape(key)}\b", line)):
                    return number
        return header_line

    def at(self, section: tuple[str, ...], key: str | None) -> tuple[str, int | None]:
        line = self.line_of(section, key)
        return (f"{self.where}:{line}" if line else self.where), line

    def error(self, section: tuple[str, ...], key: str | None, message: str, fix: str = "") -> ConfigError:
        where, line = self.at(section, key)
        return ConfigError(f"{where}: {message}", path=self.where, line=line, fix=fix)


def _sets(line: str, key: str) -> bool:
    return re.search(rf"(^|[\s{{,]){re.escape(key)}\s*=", line.split("#", 1)[0]) is not None


def _toml_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


# What console.toml may hold. Tables named here but read elsewhere: [access] (lib/access.py),
# [[alerts]] (lib/ops/alerts.py checks their keys), [alerts_webhook] (lib/ops/webhook.py),
# [training] calibration overrides (lib/training/config.py).
ENDPOINT_KEYS = ("id", "url", "name", "gpu_pools", "workers_min", "workers_max", "idle_timeout_s",
                 "scaling_type", "scaling_value", "flashboot", "execution_timeout_ms", "image", "gpu_count",
                 "container_disk_gb", "data_centers", "env", "models_dir",
                 "min_cuda_version", "allowed_cuda_versions")
SECTION_KEYS = {
    "volume": ("id", "name", "datacenter", "size_gb"),
    "prices": ("as_of", "pod_hourly_usd", "volume_usd_per_gb_month", "flex_per_s", "active_per_s"),
    "simulator": ("time_scale", "flashboot_restart_s", "cold_start_s"),
    "access": ("operators", "staff", "viewers"),
    "alerts_webhook": ("url",),
    "training": ("seconds_per_step", "startup_s"),
}
TOP_LEVEL = ("volume", "endpoints", "prices", "simulator", "access", "alerts", "alerts_webhook", "training")

# Prefixes of credentials: RunPod API keys (rpa_), RunPod S3 secrets (rps_), Hugging Face tokens
# (hf_), and the common cloud/Git ones.
SECRET_LIKE_PREFIXES = ("rpa_", "rps_", "hf_", "sk-", "sk_live_", "ghp_", "github_pat_", "xoxb-", "xoxp-",
                        "AKIA", "glpat-")
# Whole words of a key name (HF_TOKEN, api_key, S3_SECRET_KEY), not TOKENIZER_PARALLELISM.
SENSITIVE_NAME = re.compile(r"(^|_)(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_KEY|CREDENTIALS?)"
                            r"(_|$)", re.IGNORECASE)
SECRET_REFERENCE = "secret:"
_SECRET_FIX = ("remove that line: credentials never go in console.toml. Set RUNPOD_API_KEY, "
               "RUNPOD_S3_ACCESS_KEY and RUNPOD_S3_SECRET_KEY in the environment or in "
               ".streamlit/secrets.toml; a worker's secret goes in env by name only, e.g. "
               'env = { HF_TOKEN = "secret:HF_TOKEN" } (a RunPod account secret)')


def looks_like_secret(value: str) -> bool:
    return len(value) >= 12 and " " not in value and value.startswith(SECRET_LIKE_PREFIXES)


def _refuse_secrets(data: Mapping, src: _Source, section: tuple[str, ...] = ()) -> None:
    """A credential typed into the file is refused before anything reads it; the message names the
    line and the key, never the value."""
    for key, value in data.items():
        if isinstance(value, dict):
            _refuse_secrets(value, src, section + (key,))
            continue
        values = value if isinstance(value, list) else [value]
        for table in (v for v in values if isinstance(v, dict)):  # [[alerts]] and other arrays of tables
            _refuse_secrets(table, src, section + (key,))
        texts = [v for v in values if isinstance(v, str)]
        by_name = (SENSITIVE_NAME.search(str(key)) is not None
                   and any(t and not t.startswith(SECRET_REFERENCE) for t in texts))
        if by_name or any(looks_like_secret(t) for t in texts):
            name = ".".join(section + (key,))
            raise src.error(section, key, f"{name} holds what looks like a secret (an API key, token or "
                                          f"password) written into the file — {_SECRET_FIX}", fix=_SECRET_FIX)


def _unknown(src: _Source, section: tuple[str, ...], key: str, allowed: Iterable[str], what: str) -> ConfigError:
    allowed = tuple(allowed)
    place = f"[{'.'.join(section)}] " if section else ""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    if close:
        fix = f"replace {key} with {close[0]}"
        said = f"unknown {what} {key!r} — did you mean {close[0]!r}? {fix[0].upper()}{fix[1:]}"
    else:
        fix = f"remove {key}, or use one of: {', '.join(allowed)}"
        said = f"unknown {what} {key!r}: {fix}"
    return src.error(section, key, f"{place}{said} (allowed: {', '.join(allowed)})", fix=fix)


def _refuse_unknown_keys(data: Mapping, src: _Source, any_role: bool) -> None:
    """A misspelt key would otherwise be ignored and its default used without a word."""
    for key in data:
        if key not in TOP_LEVEL:
            raise _unknown(src, (), key, TOP_LEVEL, "section")
    for name, allowed in SECTION_KEYS.items():
        table = data.get(name)
        if isinstance(table, dict):
            for key in table:
                if key not in allowed:
                    raise _unknown(src, (name,), key, allowed, "key")
    endpoints = data.get("endpoints")
    if isinstance(endpoints, dict):
        for role, table in endpoints.items():
            if role not in ROLES and not any_role:
                raise _unknown(src, ("endpoints",), role, ROLES, "endpoint role")
            if isinstance(table, dict):
                for key in table:
                    if key not in ENDPOINT_KEYS:
                        raise _unknown(src, ("endpoints", role), key, ENDPOINT_KEYS, "key")
    cold = (data.get("simulator") or {}).get("cold_start_s") if isinstance(data.get("simulator"), dict) else None
    if isinstance(cold, dict):
        for role in cold:
            if role not in ROLES and not any_role:
                raise _unknown(src, ("simulator", "cold_start_s"), role, ROLES, "endpoint role")


def _table(parent: Mapping, key: str, src: _Source, section: str) -> Mapping:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise src.error(tuple(section.split(".")), None,
                        f"[{section}] must be a table (a [{section}] section), not {value!r}",
                        fix=f"write it as a [{section}] section with key = value lines under it")
    return value


def _float(table: Mapping, key: str, default: float, src: _Source, section: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise src.error(tuple(section.split(".")), key, f"[{section}] {key} must be a number, not {value!r}",
                        fix=f"{key} = 0.5  (a number, without quotes)")
    return float(value)


def _prices(table: Mapping, key: str, src: _Source) -> dict[str, float]:
    prices = _table(table, key, src, f"prices.{key}")
    return {pool: _float(prices, pool, 0.0, src, f"prices.{key}") for pool in prices}


def _int(table: Mapping, key: str, default: int, src: _Source, section: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise src.error(tuple(section.split(".")), key,
                        f"[{section}] {key} must be a whole number, not {value!r}",
                        fix=f"{key} = {default}  (a whole number, without quotes)")
    return value


def _strings(table: Mapping, key: str, src: _Source, section: str) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise src.error(tuple(section.split(".")), key, f"[{section}] {key} must be a list of strings",
                        fix=f'{key} = ["12.8", "13.0"]')
    return tuple(value)


def _endpoint(role: str, table: object, src: _Source) -> EndpointSpec:
    section = f"endpoints.{role}"
    at = ("endpoints", role)
    if not isinstance(table, dict):
        raise src.error(at, None, f"[{section}] must be a table", fix=how_to_add_endpoint(role))
    if not table.get("id") and not table.get("url"):
        raise src.error(at, None, f"[{section}] needs an id (or url for a worker under development)",
                        fix=f'id = "<your {role} endpoint id from RunPod>"  (or url = "http://localhost:8000" '
                            "for a worker started with --rp_serve_api)")
    pools = table.get("gpu_pools", ["ADA_24"])
    if isinstance(pools, str):
        pools = [pools]
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
        raise src.error(at, "gpu_pools", f"[{section}] gpu_pools must be a list of pool ids like \"ADA_24\"",
                        fix='gpu_pools = ["ADA_24"]')
    flashboot = table.get("flashboot", True)
    if not isinstance(flashboot, bool):
        raise src.error(at, "flashboot", f"[{section}] flashboot must be true or false, not {flashboot!r}",
                        fix="flashboot = true  (no quotes)")
    env = _table(table, "env", src, f"{section}.env")
    scaling_type = str(table.get("scaling_type", "QUEUE_DELAY")).upper()
    if scaling_type not in SCALING_TYPES:
        raise src.error(at, "scaling_type", f"[{section}] scaling_type must be one of {', '.join(SCALING_TYPES)}",
                        fix='scaling_type = "QUEUE_DELAY"')
    models_dir = table.get("models_dir")
    if models_dir is not None and not isinstance(models_dir, str):
        raise src.error(at, "models_dir", f"[{section}] models_dir must be a folder path in quotes",
                        fix='models_dir = "/path/to/ComfyUI/models"')
    spec = EndpointSpec(
        role=role,
        id=str(table["id"]) if table.get("id") else None,
        url=str(table["url"]).rstrip("/") if table.get("url") else None,
        name=str(table.get("name", "")),
        gpu_pools=tuple(pools),
        workers_min=_int(table, "workers_min", 0, src, section),
        workers_max=_int(table, "workers_max", 3, src, section),
        idle_timeout_s=_int(table, "idle_timeout_s", 5, src, section),
        scaling_type=scaling_type,
        scaling_value=_int(table, "scaling_value", 4, src, section),
        flashboot=flashboot,
        timeout_ms=_int(table, "execution_timeout_ms", 600_000, src, section),
        image=str(table.get("image", "")),
        data_center_ids=tuple(table.get("data_centers", ())),
        env=dict(env),
        min_cuda_version=str(table.get("min_cuda_version", DEFAULT_MIN_CUDA.get(role, ""))) or None,
        allowed_cuda_versions=_strings(table, "allowed_cuda_versions", src, section),
        models_dir=models_dir or None,
    )
    if spec.workers_min < 0 or spec.workers_max < spec.workers_min:
        raise src.error(at, "workers_min", f"[{section}] needs 0 <= workers_min <= workers_max",
                        fix="workers_min = 0\nworkers_max = 3")
    return spec
