"""The plan: console.toml's declaration against what RunPod reports (REST v2), resource by resource
and field by field, with what a change of min workers does to the monthly bill.

Live resources are matched by the id in console.toml, then by name (a resource created by hand,
or by an apply whose new id has not reached the file). Live resources that match nothing are
listed as "not in console.toml" and are never touched by apply.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict

from lib.config import ConfigError, Prices
from lib.ops import drift
from lib.provisioning.declaration import Declaration, EndpointDecl, VolumeDecl, shown_env
from lib.runpod.models import Endpoint, NetworkVolume

HOURS_PER_MONTH = 730
CREATE, CHANGE, UNCHANGED, BLOCKED = "create", "change", "unchanged", "blocked"


class _NewVolume:
    """Stands for the id of the network volume the same apply creates (unknown until then)."""

    def __repr__(self) -> str:
        return "NEW_VOLUME"

    def __str__(self) -> str:
        return "(the new volume)"


NEW_VOLUME = _NewVolume()


@dataclass(frozen=True)
class LiveState:
    endpoints: tuple[Endpoint, ...]
    volumes: tuple[NetworkVolume, ...]

    @classmethod
    def fetch(cls, rest) -> LiveState:
        """Every endpoint and network volume of the account (RestV2)."""
        return cls(endpoints=tuple(rest.endpoints()), volumes=tuple(rest.network_volumes()))

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    def volume(self, volume_id: str) -> NetworkVolume | None:
        return next((v for v in self.volumes if v.id == volume_id), None)


@dataclass(frozen=True)
class FieldChange:
    field: str          # the RestV2 keyword it is sent as
    label: str
    live: str
    declared: str


class _Identity(TypedDict):
    """The ResourcePlan fields that name the resource, shared by all of its possible plans."""

    kind: str
    role: str | None
    name: str
    declared_id: str


@dataclass(frozen=True)
class ResourcePlan:
    kind: str                       # "volume" | "endpoint"
    role: str | None                # the endpoint's role; None for the volume
    name: str
    action: str                     # create | change | unchanged | blocked
    declared_id: str
    live_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    # RestV2.update_endpoint / update_network_volume keywords; NEW_VOLUME where the new volume's id goes.
    patch: Mapping[str, object] = field(default_factory=dict)
    summary: str = ""               # what a create would make, in one line
    problems: tuple[str, ...] = ()  # why it is blocked
    notes: tuple[str, ...] = ()
    monthly_cost_delta_usd: float = 0.0

    @property
    def label(self) -> str:
        return f"network volume {self.name}" if self.kind == "volume" else f"endpoint {self.name} ({self.role})"

    @property
    def rebind(self) -> bool:
        """RunPod knows it under another id than console.toml: apply writes the live id into the file."""
        return self.live_id is not None and self.live_id != self.declared_id and self.action != BLOCKED


@dataclass(frozen=True)
class Unmanaged:
    kind: str
    id: str
    name: str
    detail: str


@dataclass(frozen=True)
class Plan:
    resources: tuple[ResourcePlan, ...]
    unmanaged: tuple[Unmanaged, ...] = ()
    notes: tuple[str, ...] = ()

    def _with(self, action: str) -> list[ResourcePlan]:
        return [r for r in self.resources if r.action == action]

    @property
    def to_create(self) -> list[ResourcePlan]:
        return self._with(CREATE)

    @property
    def to_change(self) -> list[ResourcePlan]:
        return self._with(CHANGE)

    @property
    def unchanged(self) -> list[ResourcePlan]:
        return self._with(UNCHANGED)

    @property
    def blocked(self) -> list[ResourcePlan]:
        return self._with(BLOCKED)

    @property
    def has_work(self) -> bool:
        return any(r.action in (CREATE, CHANGE) or r.rebind for r in self.resources)

    @property
    def monthly_cost_delta_usd(self) -> float:
        return sum(r.monthly_cost_delta_usd for r in self.resources if r.action != BLOCKED)

    def summary(self) -> str:
        parts = [f"{len(self.to_create)} to create", f"{len(self.to_change)} to change",
                 f"{len(self.unchanged)} unchanged"]
        if self.blocked:
            parts.append(f"{len(self.blocked)} blocked")
        return ", ".join(parts)

    def rows(self) -> list[dict]:
        """One row per thing apply would do (or cannot do); unchanged resources have none."""
        rows = []
        for r in self.resources:
            if r.action == CREATE:
                rows.append(_row(r, "create", "", "—", r.summary))
            for c in r.changes:
                rows.append(_row(r, "change", c.label, c.live, c.declared))
            if r.rebind:
                rows.append(_row(r, "write id", "id in console.toml", r.live_id, f"was {r.declared_id}"))
            for problem in r.problems:
                rows.append(_row(r, "blocked", "", "", problem))
        return rows


def usd_change(usd: float) -> str:
    """A monthly cost change as people read it: +$14.00, −$3.50."""
    return f"{'+' if usd >= 0 else '−'}${abs(usd):,.2f}"


def _row(r: ResourcePlan, action: str, setting: str, live: str | None, declared: str) -> dict[str, object]:
    return {"resource": r.label, "action": action, "setting": setting, "live": live, "console.toml": declared,
            "$/month": round(r.monthly_cost_delta_usd, 2) if action in ("create", "change") else None}


def make_plan(decl: Declaration, live: LiveState) -> Plan:
    volume_plan, volume_ref = _plan_volume(decl.volume, live, decl.prices)
    taken: set[str] = set()
    endpoints = []
    for endpoint in decl.endpoints:
        plan = _plan_endpoint(endpoint, live, volume_ref, decl.prices, taken)
        if plan.live_id:
            taken.add(plan.live_id)
        endpoints.append(plan)
    unmanaged = [Unmanaged("endpoint", e.id, e.name, f"workers {e.workers_min}–{e.workers_max}, "
                                                      f"{', '.join(e.gpu_pools) or 'no GPU pool'}")
                 for e in live.endpoints if e.id not in taken]
    unmanaged += [Unmanaged("network volume", v.id, v.name, f"{v.size_gb} GB in {v.datacenter}")
                  for v in live.volumes if v.id != volume_plan.live_id]
    return Plan(resources=(volume_plan, *endpoints), unmanaged=tuple(unmanaged), notes=decl.notes)


# --------------------------------------------------------------------------- volume


def _plan_volume(v: VolumeDecl, live: LiveState, prices: Prices) -> tuple[ResourcePlan, object]:
    """The volume's plan and what endpoints mount: its live id, NEW_VOLUME, or None when unsettled."""
    per_gb = prices.volume_usd_per_gb_month
    base = _Identity(kind="volume", role=None, name=v.name, declared_id=v.id)
    found = live.volume(v.id)
    if found is None:
        named = [x for x in live.volumes if x.name == v.name and x.datacenter == v.datacenter]
        if len(named) > 1:
            ids = ", ".join(x.id for x in named)
            return ResourcePlan(action=BLOCKED, **base, problems=(
                f"{len(named)} live network volumes in {v.datacenter} are named {v.name!r} ({ids}); put the "
                f"right one's id in [volume] id of console.toml",)), None
        found = named[0] if named else None
    if found is None:
        return ResourcePlan(action=CREATE, **base, summary=f"{v.size_gb} GB in {v.datacenter}",
                            monthly_cost_delta_usd=v.size_gb * per_gb), NEW_VOLUME
    if found.datacenter != v.datacenter:
        return ResourcePlan(action=BLOCKED, **base, live_id=found.id, problems=(
            f"the live volume is in {found.datacenter}, console.toml says {v.datacenter}; a volume's "
            f"datacenter cannot change — create a new volume by hand and move the files, or correct "
            f"[volume] datacenter",)), found.id
    if found.size_gb > v.size_gb:
        return ResourcePlan(action=BLOCKED, **base, live_id=found.id, problems=(
            f"the live volume has {found.size_gb} GB, console.toml says {v.size_gb} GB; a network volume "
            f"never shrinks — set [volume] size_gb = {found.size_gb}",)), found.id
    changes: list[FieldChange] = []
    patch: dict[str, object] = {}
    if found.name != v.name:
        changes.append(FieldChange("name", "Name", found.name, v.name))
        patch["name"] = v.name
    if found.size_gb < v.size_gb:
        changes.append(FieldChange("size_gb", "Size (GB)", str(found.size_gb), str(v.size_gb)))
        patch["size_gb"] = v.size_gb
    return ResourcePlan(action=CHANGE if changes else UNCHANGED, **base, live_id=found.id, changes=tuple(changes),
                        patch=patch, monthly_cost_delta_usd=(v.size_gb - found.size_gb) * per_gb), found.id


# --------------------------------------------------------------------------- endpoints


def _plan_endpoint(d: EndpointDecl, live: LiveState, volume_ref: object, prices: Prices,
                   taken: set[str]) -> ResourcePlan:
    s = d.spec
    declared_id = s.id or ""   # Declaration provisions only endpoints with an id (dev workers have a url)
    base = _Identity(kind="endpoint", role=s.role, name=s.name, declared_id=declared_id)
    found = live.endpoint(declared_id)
    if found is not None and found.id in taken:
        return ResourcePlan(action=BLOCKED, **base, problems=(
            f"another endpoint in console.toml has the id {declared_id}; give each endpoint its own id",))
    if found is None:
        named = [e for e in live.endpoints if e.name == s.name and e.id not in taken]
        if len(named) > 1:
            ids = ", ".join(e.id for e in named)
            return ResourcePlan(action=BLOCKED, **base, problems=(
                f"{len(named)} live endpoints are named {s.name!r} ({ids}); put the right one's id in "
                f"[endpoints.{s.role}] id",))
        found = named[0] if named else None
    if volume_ref is None:
        return ResourcePlan(action=BLOCKED, **base, live_id=found.id if found else None, problems=(
            "the network volume is blocked (see its row): settle it first, the endpoint mounts it",))
    declared_cost = _min_worker_cost(s.workers_min, s.gpu_pools[0], d.gpu_count, prices)
    if found is None:
        return ResourcePlan(action=CREATE, **base, summary=_summary(d), monthly_cost_delta_usd=declared_cost)
    changes, patch, notes = _endpoint_changes(d, found, volume_ref)
    try:
        live_cost = _min_worker_cost(found.workers_min, found.gpu_pools[0] if found.gpu_pools else "",
                                     found.gpu_count, prices)
    except ConfigError:
        live_cost = _min_worker_cost(found.workers_min, s.gpu_pools[0], found.gpu_count, prices)
        notes.append(f"the live pool {found.gpu_pools[0] if found.gpu_pools else '(none)'} has no price in "
                     f"console.toml; its min workers are costed at {s.gpu_pools[0]}'s price")
    return ResourcePlan(action=CHANGE if changes else UNCHANGED, **base, live_id=found.id,
                        changes=tuple(changes), patch=patch, notes=tuple(notes),
                        monthly_cost_delta_usd=declared_cost - live_cost)


def _min_worker_cost(workers: int, pool: str, gpu_count: int, prices: Prices) -> float:
    """Min (active) workers run 24/7 at the active price, per GPU (reference §5.1)."""
    if not workers:
        return 0.0
    return workers * gpu_count * prices.per_second(pool, active=True) * 3600 * HOURS_PER_MONTH


def _endpoint_changes(d: EndpointDecl, live: Endpoint, volume_ref: object) -> tuple[list, dict, list]:
    s = d.spec
    report = drift.compare(s, live)
    skip = set()
    if s.scaling_type == "REQUEST_COUNT":
        # REST v2 neither reports nor accepts an idle timeout for requestCount scaling.
        skip.add("idle_timeout_s")
    changes = [FieldChange(i.field, i.label, _show(i.live), _show(i.declared))
               for i in report.items if i.field not in skip]
    patch = {k: v for k, v in report.fix.items() if k not in skip}
    notes: list[str] = []

    def compare(key: str, label: str, live_value, declared_value, shown=_show) -> None:
        if live_value != declared_value:
            changes.append(FieldChange(key, label, shown(live_value), shown(declared_value)))
            patch[key] = declared_value

    compare("name", "Name", live.name, s.name)
    compare("image", "Container image", live.image, s.image)
    compare("gpu_count", "GPUs per worker", live.gpu_count, d.gpu_count)
    if sorted(live.data_center_ids) != sorted(s.data_center_ids):
        compare("data_center_ids", "Datacenters", list(live.data_center_ids), list(s.data_center_ids))
    if set(live.network_volume_ids) != {volume_ref} or len(live.network_volume_ids) != 1:
        compare("network_volume_ids", "Network volume", list(live.network_volume_ids), [volume_ref])
    if d.env is not None:
        compare("env", "Environment", dict(live.env), d.runpod_env, shown=shown_env)
    if d.disk_gb is not None:
        if live.disk_gb is None:
            notes.append("RunPod does not report this endpoint's container disk, so it is not compared")
        else:
            compare("disk_gb", "Container disk (GB)", live.disk_gb, d.disk_gb)
    return changes, patch, notes


def _summary(d: EndpointDecl) -> str:
    s = d.spec
    scaling = f"{s.scaling_type.lower().replace('_', ' ')} {_show(s.scaling_value)}"
    parts = [s.image, " › ".join(s.gpu_pools) + (f" ×{d.gpu_count}" if d.gpu_count > 1 else ""),
             f"workers {s.workers_min}–{s.workers_max}", scaling,
             f"FlashBoot {'on' if s.flashboot else 'off'}", f"timeout {s.timeout_ms // 1000} s",
             ", ".join(s.data_center_ids)]
    if s.min_cuda_version:
        parts.append(f"CUDA ≥ {s.min_cuda_version}")
    if s.allowed_cuda_versions:
        parts.append("CUDA " + ", ".join(s.allowed_cuda_versions))
    if d.secrets:
        parts.append("secrets " + ", ".join(d.secrets))
    return " · ".join(parts)


def _show(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)
