"""What the Models and Endpoints pages call: one function per view or action over lib.services.Services.

Every change is checked on the server side (Services.authorize, by the signed-in e-mail) and written
to the audit log. The model-file index and the operations monitor are the console's own
(Services.model_files, Services.monitor), shared by every browser session.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from lib.ops.alerts import AlertEvent
from lib.ops.drift import DriftReport, apply_fix, compare, with_changes
from lib.ops.endpoint_stats import (
    EndpointStats,
    cold_starts_per_day,
    endpoint_stats,
    percentiles_per_day,
    worker_state_timeline,
)
from lib.ops.flags import Flag
from lib.ops.model_files import ModelFiles
from lib.ops.usage import UsageIndex
from lib.ops.volume_index import IndexedFile, VolumeIndex, first_files
from lib.ops.warmup import WARMUP_KIND, WarmHold, start_hold, warmup_input
from lib.runpod import RunPodError
from lib.severity import ERROR, INFO, RANK, WARNING
from lib.store_memo import memo

if TYPE_CHECKING:
    from lib.services import Services

USED_BY_DAYS = 30


def model_files(services: Services) -> ModelFiles:
    """The console's one ModelFiles (and so the one cached volume index)."""
    return services.model_files


def usage_index(services: Services, *, now: datetime | None = None) -> UsageIndex:
    """References from the workflow templates and the jobs of the last USED_BY_DAYS days."""
    from lib.inference import templates_dir
    from lib.workflows.templates import list_templates

    saved_dir = templates_dir(services.data_dir)

    def build() -> UsageIndex:
        templates = [{"name": t.title or t.name, "workflow": t.workflow, "builtin": t.builtin}
                     for t in list_templates(saved_dir)]
        since = (now or datetime.now(UTC)) - timedelta(days=USED_BY_DAYS)
        return UsageIndex(templates=templates, jobs=services.store.list(since=since, limit=5000))

    # Reading 5,000 jobs with their inputs took most of a Models page run: reuse the index until the
    # store or a saved workflow changes (templates are files, not store rows), or for a minute at most.
    saved = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in saved_dir.glob("*.json"))) if saved_dir.is_dir() else ()
    return build() if now is not None else memo(services.store, ("usage_index", saved), build)


# ---- Endpoints page --------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointOverview:
    role: str
    label: str
    endpoint_id: str
    drift: DriftReport | None        # None when the live settings could not be read
    live_error: str | None
    stats: EndpointStats
    firing: list[AlertEvent] = field(default_factory=list)
    holds: list[WarmHold] = field(default_factory=list)


def endpoint_overview(services: Services, role: str, *, days: int = 7, now: datetime | None = None) -> EndpointOverview:
    """What the Endpoints page shows beside the live health (its own refreshing part, `live_health`): one
    request to RunPod, for the live settings."""
    spec = services.config.endpoint(role)
    drift = live_error = None
    if spec.id:
        try:
            drift = compare(spec, services.client.rest.endpoint(spec.id))
        except RunPodError as exc:
            live_error = str(exc)
    else:
        live_error = "a worker under development (url in console.toml) has no RunPod settings to compare"
    monitor = services.monitor
    return EndpointOverview(
        role=role, label=spec.label, endpoint_id=spec.id or spec.url or role, drift=drift, live_error=live_error,
        stats=_endpoint_numbers(services, role, days, now).stats,
        firing=[e for e in monitor.evaluator.firing if e.role in (role, None)],
        holds=monitor.schedule.active(role))


@dataclass(frozen=True)
class EndpointSeries:
    cold_per_day: pd.DataFrame
    delay_per_day: pd.DataFrame
    execution_per_day: pd.DataFrame
    workers: pd.DataFrame


def endpoint_series(services: Services, role: str, *, days: int = 7, now: datetime | None = None) -> EndpointSeries:
    """The chart inputs: per-day cold starts and percentiles, and the recorded worker-state timeline."""
    numbers = _endpoint_numbers(services, role, days, now)
    snapshots = services.monitor.health_log.snapshots(role, since=(now or datetime.now(UTC)) - timedelta(hours=24))
    return EndpointSeries(cold_per_day=numbers.cold_per_day, delay_per_day=numbers.delay_per_day,
                          execution_per_day=numbers.execution_per_day, workers=worker_state_timeline(snapshots))


@dataclass(frozen=True)
class _EndpointNumbers:
    stats: EndpointStats
    cold_per_day: pd.DataFrame
    delay_per_day: pd.DataFrame
    execution_per_day: pd.DataFrame


def _endpoint_numbers(services: Services, role: str, days: int, now: datetime | None) -> _EndpointNumbers:
    """The endpoint's job statistics over the last `days`. Reading and summing a week of a busy year's jobs
    took 0.08 s of every Endpoints run: reused until the store changes, for a minute at most (the window
    moves with the clock), except for a given `now`."""
    def build() -> _EndpointNumbers:
        end = now or datetime.now(UTC)
        start = end - timedelta(days=days)
        frame = services.store.jobs_frame(since=start)
        return _EndpointNumbers(
            stats=endpoint_stats(frame, role=role),
            cold_per_day=cold_starts_per_day(frame, role=role, start=start, end=end),
            delay_per_day=percentiles_per_day(frame, "delay_ms", role=role, start=start, end=end),
            execution_per_day=percentiles_per_day(frame, "execution_ms", role=role, start=start, end=end))

    return build() if now is not None else memo(services.store, ("endpoint_numbers", role, days), build)


def apply_settings(services: Services, role: str, email: str,
                   changes: Mapping[str, object] | None = None) -> DriftReport:
    """PATCH the live endpoint to the declared settings (with `changes` edited on top)."""
    services.authorize(email, "apply")
    spec = services.config.endpoint(role)
    before = preview_settings(services, role, changes)
    after = apply_fix(services.client.rest, with_changes(spec, changes or {}), before)
    services.store.audit(email, "endpoint.apply", spec.id,
                         {"role": role, "changes": {i.field: {"from": _plain(i.live), "to": _plain(i.declared)}
                                                    for i in before.items}})
    return after


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def purge_queue(services: Services, role: str, email: str):
    """Drop every queued job of the endpoint (running jobs continue); returns lib.runpod.PurgeResult."""
    services.authorize(email, "purge")
    result = services.jobs(role).purge_queue()
    services.store.audit(email, "endpoint.purge_queue", services.config.endpoint(role).id or role,
                         {"role": role, "removed": result.removed})
    return result


def send_warmup(services: Services, role: str, email: str, *, idempotency_key: str):
    """Submit the minimal job that makes the endpoint start a worker; returns the JobRecord."""
    services.authorize(email, "scale")
    return services.tracker.submit(role, warmup_input(role), kind=WARMUP_KIND, user=email,
                                   idempotency_key=idempotency_key, meta={"warmup": True})


def hold_warm(services: Services, role: str, email: str, *, workers: int, minutes: float,
              now: datetime | None = None) -> WarmHold:
    """Raise min workers for `minutes`; the monitor puts the old value back afterwards."""
    services.authorize(email, "scale")
    spec = services.config.endpoint(role)
    if not spec.id:
        raise ValueError(f"the {role} endpoint has no RunPod id in console.toml; it cannot be scaled")
    hold = start_hold(services.client.rest, services.monitor.schedule, role=role, endpoint_id=spec.id, workers=workers,
                      minutes=minutes, user=email, now=now or datetime.now(UTC))
    services.store.audit(email, "endpoint.warm_hold", spec.id,
                         {"role": role, "workers": workers, "minutes": minutes,
                          "restore_min_to": hold.previous_min, "until": hold.until.isoformat()})
    return hold


# ---- Models page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeState:
    index: VolumeIndex | None        # None while the first listing still runs
    first: list[IndexedFile]         # meanwhile: the first files of the folder, from one listing page
    listing: bool                    # a (re)listing runs in the background
    error: str | None = None


def volume_state(services: Services, *, folder: str | None = None, wait_s: float = 1.5, limit: int = 50) -> VolumeState:
    """The index when there is one; otherwise start listing, wait a moment, and show a first page."""
    files = services.model_files
    files.catch_up(wait_s)
    if files.cache.peek() is None:
        files.cache.start_listing()
        files.cache.wait_listing(wait_s)
    if files.cache.peek() is None:
        if not files.cache.listing and files.cache.last_error:
            return VolumeState(None, [], False, files.cache.last_error)
        prefix = "" if not folder or folder == "(root)" else folder + "/"
        return VolumeState(None, first_files(services.volume, prefix, limit), True)
    index = files.index()  # serves a stale index while a fresh listing runs
    return VolumeState(index, [], files.cache.listing, files.cache.last_error)


def upload_model(services: Services, email: str, key: str, data, *, progress=None):
    user = services.authorize(email, "upload_model")
    return services.model_files.upload(key, data, user=user, progress=progress)


def move_model(services: Services, email: str, src: str, dst: str):
    user = services.authorize(email, "move")
    return services.model_files.move(src, dst, user=user)


def delete_model(services: Services, email: str, key: str) -> None:
    user = services.authorize(email, "delete")
    services.model_files.delete(key, user=user)


@dataclass(frozen=True)
class VolumeFlags:
    by_key: dict[str, list[Flag]]   # a file's flags
    view: FlagsView                 # the Flags tab


def volume_flags(services: Services, usage: UsageIndex) -> VolumeFlags:
    """The volume's flags grouped by file and as the Flags tab lists them, derived once per index and change
    like the flags themselves: regrouping a year's 39,000 flags took 0.05 s of every Models run."""
    files = model_files(services)
    referenced = frozenset(usage.referenced_names())   # what the flags are computed for (ModelFiles.flags)

    def group() -> VolumeFlags:
        flags = files.flags(usage)
        return VolumeFlags(flags_by_key(flags), flags_view(flags))

    return files.index().derived("volume_flags", referenced, group)


def flags_by_key(flags: list[Flag]) -> dict[str, list[Flag]]:
    out: dict[str, list[Flag]] = {}
    for flag in flags:
        out.setdefault(flag.key, []).append(flag)
    return out


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# Words, not emoji: tables are drawn on a canvas in the page's font, and Debian has no emoji font (boxes).
_SEVERITY_WORD = {ERROR: "error", WARNING: "warning", INFO: "note"}


def files_table(items: list[IndexedFile], flags: Mapping[str, list[Flag]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": f.name, "folder": f.folder, "size": format_bytes(f.size), "bytes": f.size,
        "modified": f.modified, "flags": ", ".join(f"{x.kind.replace('_', ' ')} ({_SEVERITY_WORD[x.severity]})"
                                                   for x in flags.get(f.key, [])),
        "path": f.key,
    } for f in items], columns=["name", "folder", "size", "bytes", "modified", "flags", "path"])


# More rows than anyone reads, and each costs the browser: a volume with years of training runs has
# tens of thousands of notes (9 MB sent for 39,000 rows of the year-of-history bench).
FLAGS_LISTED = 1000
_NOTE_LINES = {"lora_not_promoted": "{n:,} training checkpoint(s) under loras/ not promoted yet: promote the "
                                    "one you want to models/loras/ on the Training page to use it in image jobs."}


@dataclass(frozen=True)
class FlagsView:
    """The Flags tab: problems (errors, then warnings) row by row, notes (info) as one line per kind."""

    problems: list[Flag]
    problem_count: int
    problem_files: int
    notes: list[str]


def flags_view(flags: list[Flag], limit: int = FLAGS_LISTED) -> FlagsView:
    problems = sorted((f for f in flags if f.severity != INFO), key=lambda f: (RANK[f.severity], f.key))
    counts: dict[str, int] = {}
    listed_notes = []
    for flag in flags:
        if flag.severity != INFO:
            continue
        if flag.kind in _NOTE_LINES:
            counts[flag.kind] = counts.get(flag.kind, 0) + 1
        else:
            listed_notes.append(flag)
    notes = [_NOTE_LINES[kind].format(n=n) for kind, n in counts.items()]
    return FlagsView((problems + listed_notes)[:limit], len(problems) + len(listed_notes),
                     len({f.key for f in problems}), notes)


def flags_table(flags: list[Flag]) -> pd.DataFrame:
    return pd.DataFrame([{"severity": _SEVERITY_WORD[f.severity], "file": f.key, "problem": f.message,
                          "move to": f.move_to or ""} for f in flags],
                        columns=["severity", "file", "problem", "move to"])


def used_by_table(refs) -> pd.DataFrame:
    return pd.DataFrame([{"used by": r.label, "kind": r.kind, "where": r.where} for r in refs],
                        columns=["used by", "kind", "where"])


def settings_table(report: DriftReport) -> pd.DataFrame:
    def shown(value):
        if value is None:
            return "—"
        return ", ".join(value) if isinstance(value, (list, tuple)) else value
    return pd.DataFrame([{"setting": r.label, "console.toml": str(shown(r.declared)), "live": str(shown(r.live)),
                          "drift": "⚠️ differs" if r.drifted else ""} for r in report.rows],
                        columns=["setting", "console.toml", "live", "drift"])


def live_health(services: Services, role: str) -> tuple[object | None, str | None]:
    """(Health, None) or (None, why) — for the page's auto-refreshing part."""
    try:
        return services.jobs(role).health(), None
    except RunPodError as exc:
        return None, str(exc)


def preview_settings(services: Services, role: str, changes: Mapping[str, object] | None = None) -> DriftReport:
    """What apply_settings would PATCH: the declared settings with `changes` on top, against live."""
    spec = services.config.endpoint(role)
    if not spec.id:
        raise ValueError(f"the {role} endpoint has no RunPod id in console.toml; nothing to apply")
    wanted = with_changes(spec, changes or {})
    return compare(wanted, services.client.rest.endpoint(spec.id))


def health_metrics(health) -> list[tuple[str, int]]:
    """(label, value) for the live /health tiles."""
    return [("In queue", health.jobs.in_queue), ("Running jobs", health.jobs.in_progress),
            ("Workers running", health.workers.running), ("Idle", health.workers.idle),
            ("Initializing", health.workers.initializing), ("Throttled", health.workers.throttled)]


def stats_metrics(stats: EndpointStats) -> list[tuple[str, str, str | None]]:
    """(label, shown value, help) for the headline numbers of the job history."""
    def pct(value, digits):
        return "–" if value is None else f"{value:.{digits}%}"
    return [("Jobs", f"{stats.jobs:,}", None),
            ("Hit a cold start", pct(stats.cold_start_share, 0),
             f"{stats.cold_starts} cold starts among {stats.started} started jobs"),
            ("Failure rate", pct(stats.failure_rate, 1), "failed or timed out, among finished jobs (cancelled "
                                                         "jobs left out)"),
            ("Queue p90", "–" if stats.delay.p90_s is None else f"{stats.delay.p90_s:.1f} s",
             "delayTime: queue wait including any cold start")]


def percentiles_table(stats: EndpointStats) -> pd.DataFrame:
    rows = (("delayTime (queue + cold start)", stats.delay), ("executionTime", stats.execution),
            ("delayTime of cold starts", stats.cold_delay))
    return pd.DataFrame([{"": name, "p50 s": p.p50_s, "p90 s": p.p90_s, "p98 s": p.p98_s, "jobs": p.samples}
                         for name, p in rows], columns=["", "p50 s", "p90 s", "p98 s", "jobs"])


def changes_table(report: DriftReport) -> pd.DataFrame:
    return pd.DataFrame([{"setting": i.label, "now": str(i.live), "after": str(i.declared)} for i in report.items],
                        columns=["setting", "now", "after"])


# ---- Overview ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFeed:
    firing: list[AlertEvent]     # oldest first
    history: list[AlertEvent]    # newest first


def alert_feed(services: Services, *, limit: int = 50) -> AlertFeed:
    """What Overview lists: alerts firing now and the latest state changes."""
    monitor = services.monitor
    return AlertFeed(firing=monitor.evaluator.firing, history=monitor.history.events(limit=limit))


def alerts_table(events: list[AlertEvent]) -> pd.DataFrame:
    return pd.DataFrame([{"when": e.at, "state": e.state, "severity": e.severity, "alert": e.name,
                          "endpoint": e.role or "", "details": e.message} for e in events],
                        columns=["when", "state", "severity", "alert", "endpoint", "details"])
