"""A short history of /health snapshots per endpoint, for the worker-state timeline and queue charts.

RunPod's /health is a point-in-time answer; the timeline exists only if someone writes the answers
down. The ops monitor does that on each tick; the Endpoints page reads it back.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lib.ops.endpoint_stats import worker_states


class HealthLog:
    def __init__(self, path: Path, *, keep_days: float = 7.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.keep = timedelta(days=keep_days)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS health (role TEXT NOT NULL, at REAL NOT NULL,"
                         " in_queue INTEGER NOT NULL, in_progress INTEGER NOT NULL, workers_json TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS health_role_at ON health (role, at)")

    def record(self, role: str, at: datetime, health) -> None:
        """Store one /health answer (lib.runpod.Health); rows older than keep_days are dropped."""
        jobs = health.jobs
        with self._lock:
            self._db.execute("INSERT INTO health VALUES (?, ?, ?, ?, ?)",
                             (role, at.timestamp(), int(jobs.in_queue), int(jobs.in_progress),
                              json.dumps(worker_states(health))))
            self._db.execute("DELETE FROM health WHERE at < ?", ((at - self.keep).timestamp(),))

    def snapshots(self, role: str, since: datetime | None = None) -> list[tuple[datetime, dict[str, int]]]:
        """(time, {worker state: count}) in time order — the input of worker_state_timeline()."""
        return [(at, states) for at, _, _, states in self._rows(role, since)]

    def queue(self, role: str, since: datetime | None = None) -> list[tuple[datetime, int, int]]:
        """(time, jobs in queue, jobs in progress) in time order."""
        return [(at, q, p) for at, q, p, _ in self._rows(role, since)]

    def _rows(self, role: str, since: datetime | None):
        with self._lock:
            rows = self._db.execute(
                "SELECT at, in_queue, in_progress, workers_json FROM health WHERE role = ? AND at >= ?"
                " ORDER BY at", (role, since.timestamp() if since else 0.0)).fetchall()
        return [(datetime.fromtimestamp(at, UTC), q, p, json.loads(w)) for at, q, p, w in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
