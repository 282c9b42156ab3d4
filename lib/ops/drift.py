"""Declared endpoint settings (console.toml) against the live endpoint (REST v2), and the PATCH that fixes it.

The one mapping between lib.config.EndpointSpec and lib.runpod.models.Endpoint, for the Endpoints page and
for provisioning alike. A setting has one name: the field of both dataclasses and RestV2's keyword, so
`DriftReport.fix` can be passed straight to RestV2.update_endpoint() and `declared()` to create_endpoint().
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lib.config import EndpointSpec

# (setting, label for people)
FIELDS = (
    ("workers_min", "Min (active) workers"),
    ("workers_max", "Max workers"),
    ("idle_timeout_s", "Idle timeout (s)"),
    ("scaling_type", "Scaling type"),
    ("scaling_value", "Scaling value"),
    ("flashboot", "FlashBoot"),
    ("timeout_ms", "Execution timeout (ms)"),
    ("gpu_pools", "GPU pools (in order)"),
    ("min_cuda_version", "Min CUDA version (host driver)"),
    ("allowed_cuda_versions", "Allowed CUDA versions"),
)
# Compared only when console.toml declares them; an endpoint without them is not managed there.
OPTIONAL = frozenset({"min_cuda_version", "allowed_cuda_versions"})
# Sent together: whether RunPod merges or replaces a partial `gpu` object on PATCH is not
# documented, so a change to any of them carries the declared others (could not confirm).
GPU_GROUP = ("gpu_pools", "min_cuda_version", "allowed_cuda_versions")


@dataclass(frozen=True)
class DriftItem:
    field: str        # the setting's name
    declared: object
    live: object
    label: str = ""


@dataclass(frozen=True)
class SettingRow:
    field: str
    label: str
    declared: object
    live: object
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    role: str
    endpoint_id: str
    items: tuple[DriftItem, ...]
    rows: tuple[SettingRow, ...]

    @property
    def in_sync(self) -> bool:
        return not self.items

    @property
    def fix(self) -> dict[str, object]:
        """Keyword arguments for RestV2.update_endpoint(endpoint_id, **fix) that restore the declared values."""
        fix = {item.field: item.declared for item in self.items}
        if "scaling_type" in fix or "scaling_value" in fix:
            # RunPod replaces the whole scaling setting, so type and value always travel together.
            declared = {row.field: row.declared for row in self.rows}
            fix["scaling_type"] = declared["scaling_type"]
            fix["scaling_value"] = _patch_value("scaling_value", declared["scaling_value"])
        if any(field in fix for field in GPU_GROUP):
            for row in self.rows:
                if row.field in GPU_GROUP:
                    fix[row.field] = _patch_value(row.field, row.declared)
        return fix


def _flashboot(value: object) -> bool:
    # REST v2 reports OFF | FLASHBOOT | PRIORITY_FLASHBOOT; both non-OFF modes mean "FlashBoot on".
    if isinstance(value, str):
        return value.upper() != "OFF"
    return bool(value)


def _normalise(field: str, value: Any) -> object:
    # `value` is one setting as console.toml or RunPod spells it; its type depends on `field`.
    if value is None:
        return None
    if field == "flashboot":
        return _flashboot(value)
    if field == "gpu_pools":
        return tuple(str(p) for p in (value if isinstance(value, (list, tuple)) else [value]))
    if field == "min_cuda_version":
        return str(value) or None
    if field == "allowed_cuda_versions":
        return tuple(sorted(str(v) for v in (value if isinstance(value, (list, tuple)) else [value])))
    if field == "scaling_type":
        return str(value).upper()
    if field == "scaling_value":
        # queueDelay may be fractional (>= 0.5 s) while console.toml holds whole numbers.
        return float(value)
    return int(value)


def declared(spec: EndpointSpec) -> dict[str, Any]:
    """`spec`'s settings as RestV2.create_endpoint() keywords; None where console.toml leaves one unmanaged."""
    return {field: getattr(spec, field) for field, _ in FIELDS}


def compare(spec: EndpointSpec, live) -> DriftReport:
    """Every declared setting beside the live one (a lib.runpod.models.Endpoint); `items` lists only
    the drifted ones."""
    items, rows = [], []
    wanted = declared(spec)
    for field, label in FIELDS:
        if field in OPTIONAL and wanted[field] is None:
            continue
        declared_value = _normalise(field, wanted[field])
        current = _normalise(field, getattr(live, field, None))
        drifted = declared_value != current
        rows.append(SettingRow(field, label, declared_value, current, drifted))
        if drifted:
            items.append(DriftItem(field, _patch_value(field, declared_value), current, label))
    return DriftReport(role=spec.role, endpoint_id=getattr(live, "id", None) or spec.id or "",
                       items=tuple(items), rows=tuple(rows))


def _patch_value(field: str, declared: Any) -> object:
    if field in ("gpu_pools", "allowed_cuda_versions"):
        return list(declared)
    if field == "scaling_value" and float(declared).is_integer():
        return int(declared)
    return declared


def with_changes(spec: EndpointSpec, changes: Mapping[str, Any]) -> EndpointSpec:
    """The spec with some settings replaced, keyed by setting (e.g. {"workers_max": 5}).

    The Endpoints page uses it when an operator edits a value before applying it.
    """
    known = [field for field, _ in FIELDS]
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ValueError(f"cannot change {', '.join(unknown)}; known settings: {', '.join(known)}")
    values: dict[str, Any] = {k: (tuple(v) if k in ("gpu_pools", "allowed_cuda_versions") else v)
                              for k, v in changes.items()}
    return replace(spec, **values)


def apply_fix(rest, spec: EndpointSpec, report: DriftReport) -> DriftReport:
    """PATCH the live endpoint to `spec`'s settings (only the drifted fields); returns the new comparison.

    `rest` is RestV2. Nothing is sent when there is no drift.
    """
    if report.in_sync:
        return report
    updated = rest.update_endpoint(report.endpoint_id, **report.fix)
    return compare(spec, updated)
