"""Alert state changes and webhook deliveries, kept in SQLite in the console's data folder.

Overview lists the history; the evaluator reads back what is still firing after a restart.
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from lib.ops.alerts import FIRING, AlertEvent

HISTORY_FILE = "alerts.sqlite"


@dataclass(frozen=True)
class DeliveryAttempt:
    event_id: int | None
    attempt: int              # 1-based
    at: datetime
    ok: bool
    status_code: int | None   # HTTP status, None when no answer came
    error: str | None         # what went wrong, without the webhook URL


class AlertHistory:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL,
                name TEXT NOT NULL, rule TEXT NOT NULL, role TEXT, state TEXT NOT NULL, at REAL NOT NULL,
                value REAL, threshold REAL NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_alert ON events (alert_id, id);
            CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER,
                attempt INTEGER NOT NULL, at REAL NOT NULL, ok INTEGER NOT NULL, status_code INTEGER,
                error TEXT);
        """)

    def record(self, event: AlertEvent) -> AlertEvent:
        """Store a state change; returns it with its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO events (alert_id, name, rule, role, state, at, value, threshold, severity, message)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event.alert_id, event.name, event.rule, event.role, event.state, event.at.timestamp(),
                 event.value, event.threshold, event.severity, event.message))
        return replace(event, id=cur.lastrowid)

    def events(self, *, limit: int = 200, since: datetime | None = None,
               alert_id: str | None = None) -> list[AlertEvent]:
        """Newest first."""
        where: list[str] = ["at >= ?"]
        args: list[float | str] = [since.timestamp() if since else 0.0]
        if alert_id is not None:
            where.append("alert_id = ?")
            args.append(alert_id)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                [*args, limit]).fetchall()
        return [_event(r) for r in rows]

    def firing(self) -> list[AlertEvent]:
        """The alerts whose latest state change is "firing", oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events GROUP BY alert_id)"
                " AND state = ? ORDER BY at", (FIRING,)).fetchall()
        return [_event(r) for r in rows]

    def log_delivery(self, attempt: DeliveryAttempt) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO deliveries (event_id, attempt, at, ok, status_code, error) VALUES (?, ?, ?, ?, ?, ?)",
                (attempt.event_id, attempt.attempt, attempt.at.timestamp(), int(attempt.ok),
                 attempt.status_code, attempt.error))

    def deliveries(self, *, event_id: int | None = None, limit: int = 200) -> list[DeliveryAttempt]:
        """Newest first."""
        sql, args = "SELECT event_id, attempt, at, ok, status_code, error FROM deliveries", []
        if event_id is not None:
            sql += " WHERE event_id = ?"
            args.append(event_id)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [DeliveryAttempt(e, n, datetime.fromtimestamp(at, UTC), bool(ok), code, err)
                for e, n, at, ok, code, err in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _event(row) -> AlertEvent:
    ident, alert_id, name, rule, role, state, at, value, threshold, severity, message = row
    return AlertEvent(alert_id=alert_id, name=name, rule=rule, role=role, state=state,
                      at=datetime.fromtimestamp(at, UTC), value=value, threshold=threshold,
                      severity=severity, message=message, id=ident)
