"""The periodic operations tick run by the console's tracker: health log, alerts, warm-up restores.

One OpsMonitor per console process, built by lib.services with the sources it reads each round and
ticked by the tracker thread. `tick()` records each endpoint's /health answer, evaluates the alert
rules, stores state changes and hands them to the webhook (in a background thread, so a slow
receiver never holds up job tracking), and puts back min workers whose warm-up hold has ended.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lib.config import ConsoleConfig
from lib.ops.alert_history import HISTORY_FILE, AlertHistory
from lib.ops.alerts import AlertEvaluator, AlertEvent, Observations, parse_alert_rules
from lib.ops.health_log import HealthLog
from lib.ops.warmup import WarmHold, WarmupSchedule, restore_due
from lib.ops.webhook import WebhookNotifier, webhook_url
from lib.runpod import DevWorkerJobs, EndpointJobs, RestV2, RunPodError
from lib.runpod.models import Health
from lib.store import JobStore

log = logging.getLogger(__name__)

HEALTH_FILE = "health.sqlite"
JOBS_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class TickResult:
    events: list[AlertEvent]
    restored: list[WarmHold]
    health_errors: dict[str, str]   # role -> why its /health could not be read


def check_alert_config(config: ConsoleConfig) -> None:
    """Raise ConfigError for a bad [[alerts]] or [alerts_webhook] table: what an OpsMonitor reads.

    lib.services checks them before anything starts; the monitor itself can only be built once the
    RunPod client it reads exists."""
    parse_alert_rules(config)
    webhook_url(config)


class OpsMonitor:
    def __init__(self, config: ConsoleConfig, data_dir: Path, *,
                 jobs: Callable[[str], EndpointJobs | DevWorkerJobs], store: JobStore, rest: RestV2,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 notifier: WebhookNotifier | None = None):
        """`jobs` (role -> job API) answers /health, `store` holds the job history and the audit log,
        `rest` puts back the min workers of warm-up holds."""
        self.config = config
        self._jobs = jobs
        self._store = store
        self._rest = rest
        self.clock = clock
        self.history = AlertHistory(data_dir / HISTORY_FILE)
        self.health_log = HealthLog(data_dir / HEALTH_FILE)
        self.schedule = WarmupSchedule(data_dir)
        self.rules = parse_alert_rules(config)
        labels = {role: spec.label for role, spec in config.endpoints.items()}
        self.evaluator = AlertEvaluator(self.rules, clock=clock, firing=self.history.firing(), labels=labels)
        if notifier is None:
            url = webhook_url(config)
            notifier = WebhookNotifier(url) if url else None
        self.notifier = notifier
        self._tick_lock = threading.Lock()
        self._deliveries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-webhook")
        self._pending: list[Future] = []

    def tick(self, obs: Observations, *, rest=None) -> TickResult:
        """One evaluation round over observations gathered by the caller. `rest` (RestV2) restores holds."""
        with self._tick_lock:
            now = self.clock()
            for role, health in obs.health.items():
                if health is not None:
                    self.health_log.record(role, now, health)
            events = [self.history.record(e) for e in self.evaluator.evaluate(obs)]
            for event in events:
                log.warning("alert %s", event.text())
                if self.notifier is not None:
                    self._pending = [f for f in self._pending if not f.done()]
                    self._pending.append(self._deliveries.submit(self._deliver, event))
            restored = restore_due(rest, self.schedule, now) if rest is not None else []
            return TickResult(events, restored, {})

    def tick_live(self) -> TickResult:
        """Gather observations from the console's endpoints and job history and tick; per-endpoint
        errors are kept, not raised."""
        from lib.overview import spend_today  # the Overview's own definition of "spend today"

        health: dict[str, Health | None] = {}
        errors: dict[str, str] = {}
        for role, spec in self.config.endpoints.items():
            if not spec.id:
                continue  # a worker under development has no /health on RunPod's side
            try:
                health[role] = self._jobs(role).health()
            except RunPodError as exc:
                health[role] = None
                errors[role] = str(exc)
        now = self.clock()
        obs = Observations(health=health, jobs=self._store.jobs_frame(since=now - JOBS_WINDOW),
                           spend_today_usd=spend_today(self._store, now))
        result = self.tick(obs, rest=self._rest)
        for hold in result.restored:
            if hold.restored_at is not None:
                self._store.audit(hold.user, "endpoint.warm_restore", hold.endpoint_id,
                                  {"role": hold.role, "outcome": hold.outcome})
        return TickResult(result.events, result.restored, errors)

    def _deliver(self, event: AlertEvent) -> None:
        assert self.notifier is not None  # deliveries are queued only when there is a notifier
        result = self.notifier.deliver(event, on_attempt=self.history.log_delivery)
        if not result.ok:
            log.warning("alert webhook delivery failed after %d attempts: %s", len(result.attempts), result.error)

    def wait_for_deliveries(self, timeout_s: float = 30.0) -> bool:
        """True when every queued webhook delivery has finished (tests and shutdown)."""
        _, not_done = wait(list(self._pending), timeout=timeout_s)
        return not not_done

    def close(self) -> None:
        self._deliveries.shutdown(wait=True)
        if self.notifier is not None:
            self.notifier.close()
        self.history.close()
        self.health_log.close()
