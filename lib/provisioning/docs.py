"""The live configuration of the network volume and every endpoint as Markdown, for the team's records.

Values come from RunPod (REST v2); the plan marks each one that differs from console.toml.
Environment values that are secrets, or look like them, are never written out.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lib.provisioning.declaration import Declaration, shown_env
from lib.provisioning.plan import CREATE, HOURS_PER_MONTH, LiveState, Plan, ResourcePlan
from lib.runpod.models import Endpoint


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[tuple[str, object, str]]) -> list[str]:
    out = ["| setting | live value | differs from console.toml |", "|---|---|---|"]
    out += [f"| {label} | {_cell(value)} | {_cell(note)} |" for label, value, note in rows]
    return out


def _differs(plan: ResourcePlan | None, field: str) -> str:
    if plan is None:
        return ""
    change = next((c for c in plan.changes if c.field == field), None)
    return f"console.toml: {change.declared}" if change else ""


def _endpoint_rows(e: Endpoint, plan: ResourcePlan | None, decl: Declaration) -> list[tuple[str, object, str]]:
    def d(field: str) -> str:
        return _differs(plan, field)

    scaling = (f"{e.scaling_type} {e.scaling_value:g} "
               + ("s of queue delay" if e.scaling_type == "QUEUE_DELAY" else "jobs per worker"))
    try:
        active = decl.prices.per_second(e.gpu_pools[0], active=True) if e.gpu_pools else 0.0
        min_cost = f"${e.workers_min * e.gpu_count * active * 3600 * HOURS_PER_MONTH:,.2f}"
    except ValueError:
        min_cost = f"unknown (no price for {e.gpu_pools[0]} in console.toml)"
    return [
        ("Endpoint id", f"`{e.id}`", "" if plan is None or not plan.rebind else f"console.toml: {plan.declared_id}"),
        ("Container image", f"`{e.image}`" if e.image else "—", d("image")),
        ("GPU pools (in order of preference)", " › ".join(e.gpu_pools) or "—", d("gpu_pools")),
        ("GPUs per worker", e.gpu_count, d("gpu_count")),
        ("Workers min / max", f"{e.workers_min} / {e.workers_max}",
         " ".join(x for x in (d("workers_min"), d("workers_max")) if x)),
        ("Idle timeout", f"{e.idle_timeout_s} s", d("idle_timeout_s")),
        ("Scaling", scaling, " ".join(x for x in (d("scaling_type"), d("scaling_value")) if x)),
        ("FlashBoot", e.flashboot_mode, d("flashboot")),
        ("Execution timeout", f"{e.timeout_ms / 1000:g} s", d("timeout_ms")),
        ("Datacenters", ", ".join(e.data_center_ids) or "any", d("data_center_ids")),
        ("Network volume", ", ".join(e.network_volume_ids) or "none", d("network_volume_ids")),
        ("Container disk", f"{e.disk_gb} GB" if e.disk_gb is not None else "not reported", d("disk_gb")),
        ("Environment", shown_env(e.env), d("env")),
        ("Min workers, per month (active price)", min_cost, ""),
    ]


def render(decl: Declaration, live: LiveState, plan: Plan, *, backend: str, now: datetime) -> str:
    """Markdown describing what runs on RunPod now, resource by resource."""
    plans = {(r.kind, r.role): r for r in plan.resources}
    lines = [f"# Serverless configuration — {now:%Y-%m-%d %H:%M} UTC", "",
             f"Read from {backend} (REST v2) and compared with `{decl.path or 'console.toml'}`. "
             f"Plan: {plan.summary()}.", ""]
    vplan = plans[("volume", None)]
    volume = live.volume(vplan.live_id) if vplan.live_id else None
    lines += ["## Network volume", ""]
    if volume is None:
        lines += [f"**{decl.volume.name}** is not created yet (declared: {decl.volume.size_gb} GB in "
                  f"{decl.volume.datacenter}).", ""]
    else:
        rows = [("Volume id (= S3 bucket)", f"`{volume.id}`",
                 f"console.toml: {vplan.declared_id}" if vplan.rebind else ""),
                ("Name", volume.name, _differs(vplan, "name")),
                ("Size", f"{volume.size_gb} GB", _differs(vplan, "size_gb")),
                ("Datacenter (= S3 region)", volume.datacenter, ""),
                ("Tier", volume.type, ""),
                ("Storage, per month", f"${volume.size_gb * decl.prices.volume_usd_per_gb_month:,.2f}", ""),
                ("Mounted in workers at", "/runpod-volume", "")]
        lines += _table(rows) + [""]
    lines += ["## Endpoints", ""]
    for d in decl.endpoints:
        r = plans[("endpoint", d.spec.role)]
        lines += [f"### {d.spec.name} — {d.spec.role}", ""]
        endpoint = live.endpoint(r.live_id) if r.live_id else None
        if endpoint is None:
            state = "not created yet" if r.action == CREATE else "not settled: " + "; ".join(r.problems)
            lines += [f"{state.capitalize()}.", ""]
            continue
        lines += _table(_endpoint_rows(endpoint, r, decl))
        if d.secrets:
            lines += ["", "Secrets it reads from the RunPod account: " + ", ".join(d.secrets) + "."]
        lines += [""]
    if plan.unmanaged:
        lines += ["## On RunPod but not in console.toml", ""]
        lines += [f"- {u.kind} **{u.name}** (`{u.id}`): {u.detail}" for u in plan.unmanaged]
        lines += [""]
    return "\n".join(lines)
