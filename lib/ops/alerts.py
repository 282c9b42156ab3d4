"""Alert rules from console.toml and their evaluation over time.

Rules are the `[[alerts]]` tables of console.toml (format in ALERTS_TOML_DOC, ready to paste). The
evaluator is fed observations (health per endpoint, recent jobs, spend today) with an injected clock
and returns only state changes: an alert that is still firing is never reported twice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from lib.config import ConfigError, ConsoleConfig
from lib.ops.endpoint_stats import DECIDED, FAILED
from lib.runpod.models import Health

ALERTS_TOML_DOC = """\
# Alerts, evaluated by the console's tracker every few seconds and listed on Overview.
# One [[alerts]] table per rule. Keys:
#   rule        queue_depth | failure_rate | cold_start_p90 | throttled_workers | spend_today
#   above       threshold in the rule's unit: jobs waiting (queue_depth), percent of failed jobs
#               (failure_rate), seconds (cold_start_p90), workers (throttled_workers, default 0),
#               US dollars since midnight UTC (spend_today)
#   endpoints   roles to watch, e.g. ["image"]; default: every endpoint (not used by spend_today)
#   for_minutes the condition must hold this long before the alert fires (default 0)
#   last_jobs   failure_rate / cold_start_p90: look at the endpoint's last K finished jobs
#               (defaults 20 / 50)
#   min_jobs    failure_rate: stay quiet until at least this many jobs finished (default 5)
#   name        shown in the alert and on Overview (default: derived from the rule)
#   severity    "warning" (default) or "critical"
#
# [[alerts]]
# rule = "queue_depth"
# endpoints = ["image"]
# above = 10
# for_minutes = 5
#
# [[alerts]]
# rule = "failure_rate"
# above = 20
# last_jobs = 20
#
# [[alerts]]
# rule = "cold_start_p90"
# above = 120
#
# [[alerts]]
# rule = "throttled_workers"
#
# [[alerts]]
# rule = "spend_today"
# above = 25
#
# Optional delivery of every state change to a Slack-compatible incoming webhook ({"text": ...}):
# [alerts_webhook]
# url = "https://hooks.slack.com/services/..."
"""

RULES = ("queue_depth", "failure_rate", "cold_start_p90", "throttled_workers", "spend_today")
SEVERITIES = ("warning", "critical")
_KEYS = {"rule", "above", "endpoints", "endpoint", "for_minutes", "last_jobs", "min_jobs", "name", "severity"}
_DEFAULT_LAST = {"failure_rate": 20, "cold_start_p90": 50}
_UNIT = {"queue_depth": "jobs waiting", "failure_rate": "percent of failed jobs", "cold_start_p90": "seconds",
         "throttled_workers": "workers", "spend_today": "US dollars"}
FIRING, RESOLVED = "firing", "resolved"


@dataclass(frozen=True)
class AlertRule:
    name: str
    rule: str
    above: float
    endpoints: tuple[str, ...] = ()      # roles; empty for spend_today
    for_minutes: float = 0.0
    last_jobs: int = 20
    min_jobs: int = 5
    severity: str = "warning"

    def alert_ids(self) -> list[tuple[str, str | None]]:
        """(alert id, role) for every instance of this rule: one per watched endpoint."""
        if self.rule == "spend_today":
            return [(self.name, None)]
        return [(f"{self.name} · {role}", role) for role in self.endpoints]


def parse_alert_rules(config: ConsoleConfig) -> list[AlertRule]:
    """The [[alerts]] tables of console.toml, validated; ConfigError names the table and the key."""
    raw = config.raw.get("alerts", [])
    where = str(config.path or "console.toml")
    if isinstance(raw, Mapping):
        raise ConfigError(f"{where}: write alerts as [[alerts]] tables (an array), not [alerts]")
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: alerts must be [[alerts]] tables")
    rules, names = [], set()
    for n, table in enumerate(raw, start=1):
        rule = _rule(table, n, where, config)
        if rule.name in names:
            raise ConfigError(f"{where}: alert #{n}: another alert is already named {rule.name!r}; "
                              f"give each [[alerts]] table its own name")
        names.add(rule.name)
        rules.append(rule)
    return rules


def _rule(table: object, n: int, where: str, config: ConsoleConfig) -> AlertRule:
    at = f"{where}: alert #{n}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{at} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{at}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    kind = table.get("rule")
    if kind not in RULES:
        raise ConfigError(f"{at}: rule must be one of {', '.join(RULES)}, not {kind!r}")
    at = f"{at} ({kind})"
    if "above" not in table and kind != "throttled_workers":
        raise ConfigError(f"{at} needs `above`, the threshold in {_UNIT[kind]}")
    above = _number(table.get("above", 0), at, "above")
    if kind == "failure_rate" and not 0 <= above < 100:
        raise ConfigError(f"{at}: above is a percentage of failed jobs, between 0 and 100")
    roles = table.get("endpoints", table.get("endpoint"))
    if roles is None:
        roles = [] if kind == "spend_today" else list(config.endpoints)
    elif isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ConfigError(f"{at}: endpoints must be a list of roles like [\"image\"]")
    missing = [r for r in roles if r not in config.endpoints]
    if missing:
        raise ConfigError(f"{at}: no endpoint {missing[0]!r} in [endpoints]; known: "
                          f"{', '.join(config.endpoints)}")
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(f"{at}: severity must be \"warning\" or \"critical\"")
    for_minutes = _number(table.get("for_minutes", 0), at, "for_minutes")
    last_jobs = _whole(table.get("last_jobs", _DEFAULT_LAST.get(kind, 20)), at, "last_jobs")
    min_jobs = _whole(table.get("min_jobs", min(5, last_jobs)), at, "min_jobs")
    name = str(table.get("name") or _default_name(kind, above))
    return AlertRule(name=name, rule=kind, above=above, endpoints=tuple(roles), for_minutes=for_minutes,
                     last_jobs=last_jobs, min_jobs=min_jobs, severity=severity)


def _number(value: object, at: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{at}: {key} must be a number >= 0, not {value!r}")
    return float(value)


def _whole(value: object, at: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{at}: {key} must be a whole number >= 1, not {value!r}")
    return value


def _default_name(kind: str, above: float) -> str:
    shown = f"{above:g}"
    return {"queue_depth": f"Queue above {shown} jobs", "failure_rate": f"Failure rate above {shown}%",
            "cold_start_p90": f"Cold-start p90 above {shown} s",
            "throttled_workers": f"Throttled workers above {shown}",
            "spend_today": f"Spend today above ${shown}"}[kind]


@dataclass(frozen=True)
class Observations:
    """What the evaluator looks at, gathered by the caller at one moment."""

    health: Mapping[str, Health | None] = field(default_factory=dict)  # role -> its /health, None if unknown
    jobs: pd.DataFrame | None = None                            # JobStore.jobs_frame() of recent days
    spend_today_usd: float | None = None


@dataclass(frozen=True)
class AlertEvent:
    alert_id: str
    name: str
    rule: str
    role: str | None
    state: str               # firing | resolved
    at: datetime
    value: float | None
    threshold: float
    severity: str
    message: str
    id: int | None = None    # set once stored in AlertHistory

    def text(self) -> str:
        """One line for Slack-compatible webhooks and the Overview list."""
        icon = {"firing": ":rotating_light:" if self.severity == "critical" else ":warning:",
                "resolved": ":white_check_mark:"}[self.state]
        return f"{icon} {self.state.upper()} — {self.name}: {self.message}"


class AlertEvaluator:
    """Holds which alerts fire and since when each condition has held; reports changes only."""

    def __init__(self, rules: Iterable[AlertRule], *, clock: Callable[[], datetime],
                 firing: Iterable[AlertEvent] = (), labels: Mapping[str, str] | None = None):
        self.rules = list(rules)
        self._clock = clock
        self._labels = dict(labels or {})
        # Alerts firing before a restart stay firing: a restart must not announce them again.
        self._firing: dict[str, AlertEvent] = {e.alert_id: e for e in firing if e.state == FIRING}
        self._since: dict[str, datetime] = {}

    @property
    def firing(self) -> list[AlertEvent]:
        return sorted(self._firing.values(), key=lambda e: e.at)

    def evaluate(self, obs: Observations) -> list[AlertEvent]:
        now = self._clock()
        events: list[AlertEvent] = []
        known = set()
        for rule in self.rules:
            for alert_id, role in rule.alert_ids():
                known.add(alert_id)
                value, detail = _measure(rule, role, obs)
                if value is None:
                    continue  # no reading: neither fire nor resolve on missing data
                if value > rule.above:
                    since = self._since.setdefault(alert_id, now)
                    held = now - since
                    if alert_id not in self._firing and held >= timedelta(minutes=rule.for_minutes):
                        message = self._message(rule, role, detail, held)
                        event = AlertEvent(alert_id, rule.name, rule.rule, role, FIRING, now, value,
                                           rule.above, rule.severity, message)
                        self._firing[alert_id] = event
                        events.append(event)
                else:
                    self._since.pop(alert_id, None)
                    if alert_id in self._firing:
                        del self._firing[alert_id]
                        events.append(AlertEvent(alert_id, rule.name, rule.rule, role, RESOLVED, now, value,
                                                 rule.above, rule.severity,
                                                 self._message(rule, role, detail, None, resolved=True)))
        for alert_id in [a for a in self._firing if a not in known]:
            gone = self._firing.pop(alert_id)
            events.append(replace(gone, state=RESOLVED, at=now, value=None, id=None,
                                  message="the rule was removed from console.toml"))
        return events

    def _message(self, rule: AlertRule, role: str | None, detail: str, held: timedelta | None,
                 resolved: bool = False) -> str:
        where = f"{self._labels.get(role, role)}: " if role else ""
        limit = _limit(rule)
        if resolved:
            return f"{where}{detail} (back at or under {limit})"
        duration = f" for {held.total_seconds() / 60:.0f} min" if held and rule.for_minutes else ""
        return f"{where}{detail}{duration} (alert above {limit})"


def _limit(rule: AlertRule) -> str:
    n = f"{rule.above:g}"
    return {"queue_depth": f"{n} jobs in queue", "failure_rate": f"{n}% failed",
            "cold_start_p90": f"{n} s", "throttled_workers": f"{n} throttled workers",
            "spend_today": f"${rule.above:,.2f}"}[rule.rule]


def _measure(rule: AlertRule, role: str | None, obs: Observations) -> tuple[float | None, str]:
    """(value in the rule's unit, plain-words reading) or (None, "") when it cannot be measured now."""
    if rule.rule == "spend_today":
        if obs.spend_today_usd is None:
            return None, ""
        return float(obs.spend_today_usd), f"${obs.spend_today_usd:,.2f} spent today"
    if rule.rule in ("queue_depth", "throttled_workers"):
        health = obs.health.get(role) if role is not None else None
        if health is None:
            return None, ""
        if rule.rule == "queue_depth":
            n = int(health.jobs.in_queue)
            return float(n), f"{n} job{'s' if n != 1 else ''} in queue"
        n = int(health.workers.throttled)
        return float(n), f"{n} throttled worker{'s' if n != 1 else ''}"
    if obs.jobs is None:
        return None, ""
    jobs = obs.jobs[obs.jobs["role"] == role].sort_values("submitted_at")
    if rule.rule == "failure_rate":
        decided = jobs[jobs["status"].isin(DECIDED)].tail(rule.last_jobs)
        if len(decided) < rule.min_jobs:
            return None, ""
        failed = int(decided["status"].isin(FAILED).sum())
        rate = 100.0 * failed / len(decided)
        return rate, f"{failed} of the last {len(decided)} jobs failed ({rate:.0f}%)"
    started = jobs[jobs["delay_ms"].notna()].tail(rule.last_jobs)
    cold = started.loc[started["cold_start"].astype(bool), "delay_ms"].astype("float64")
    if not len(started):
        return None, ""
    if not len(cold):
        return 0.0, f"no cold start in the last {len(started)} jobs"
    p90 = float(np.percentile(cold.to_numpy(), 90)) / 1000.0
    return p90, f"cold-start p90 {p90:.0f} s over {len(cold)} cold starts in the last {len(started)} jobs"
