"""SQLite persistence of the simulator (DIR/localpod.sqlite, WAL).

The scheduler keeps the hot state in memory and writes every change through this store, so a
new process on the same data directory gets back every queued and finished job, each endpoint's
live settings and counters, and all billing records. Only the event-loop thread uses it while
the server runs.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lib.localpod.models import Endpoint, Job

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (id TEXT PRIMARY KEY, data TEXT NOT NULL);
-- Settings of an endpoint that its models.Endpoint does not carry (placement, GPU count, container
-- disk), and whether it was created through POST /rest/v2/serverless rather than from the config.
CREATE TABLE IF NOT EXISTS endpoint_extras (id TEXT PRIMARY KEY, data TEXT NOT NULL);
-- Network volumes created through POST /rest/v2/network-volumes (or the config's one once PATCHed).
CREATE TABLE IF NOT EXISTS volumes (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS billing (
    endpoint_id TEXT NOT NULL,
    hour_start INTEGER NOT NULL,          -- epoch seconds, UTC hour boundary
    flex_s REAL NOT NULL DEFAULT 0,       -- billed worker-seconds at the flex price
    active_s REAL NOT NULL DEFAULT 0,     -- billed worker-seconds at the active (min worker) price
    gpu_usd REAL NOT NULL DEFAULT 0,
    disk_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour_start)
);
"""


@dataclass(frozen=True)
class BillingHour:
    """Spend of one endpoint in one UTC hour."""

    endpoint_id: str
    hour_start: int
    flex_s: float
    active_s: float
    gpu_usd: float
    disk_usd: float


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: autocommit, each statement is its own transaction unless batched.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # meta
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # endpoints
    def load_endpoints(self) -> dict[str, dict]:
        return {row[0]: json.loads(row[1]) for row in self._db.execute("SELECT id, data FROM endpoints")}

    def save_endpoint(self, ep: Endpoint) -> None:
        self._db.execute("INSERT OR REPLACE INTO endpoints (id, data) VALUES (?, ?)",
                         (ep.id, json.dumps(ep.record())))

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint with its extras and jobs (billing history stays, as on RunPod)."""
        with self._db:
            self._db.execute("BEGIN")
            for table, column in (("endpoints", "id"), ("endpoint_extras", "id"), ("jobs", "endpoint_id")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (endpoint_id,))

    def load_extras(self) -> dict[str, dict]:
        return {row[0]: json.loads(row[1]) for row in self._db.execute("SELECT id, data FROM endpoint_extras")}

    def save_extras(self, endpoint_id: str, extras: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO endpoint_extras (id, data) VALUES (?, ?)",
                         (endpoint_id, json.dumps(extras)))

    # network volumes
    def load_volumes(self) -> dict[str, dict]:
        return {row[0]: json.loads(row[1]) for row in self._db.execute("SELECT id, data FROM volumes")}

    def save_volume(self, volume: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO volumes (id, data) VALUES (?, ?)",
                         (volume["id"], json.dumps(volume)))

    # jobs
    def load_jobs(self) -> list[Job]:
        return [Job.from_record(json.loads(row[0]))
                for row in self._db.execute("SELECT data FROM jobs")]

    def save_job(self, job: Job) -> None:
        self._db.execute("INSERT OR REPLACE INTO jobs (id, endpoint_id, data) VALUES (?, ?, ?)",
                         (job.id, job.endpoint_id, json.dumps(job.record())))

    def save_jobs(self, jobs: Iterable[Job]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO jobs (id, endpoint_id, data) VALUES (?, ?, ?)",
                [(j.id, j.endpoint_id, json.dumps(j.record())) for j in jobs])

    def delete_job(self, job_id: str) -> None:
        self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # billing
    def add_billing(self, rows: Iterable[BillingHour], meta: dict[str, str] | None = None) -> None:
        """Add spend to the hourly rows (creating them as needed), and set `meta` in the same
        transaction (so a one-time import is recorded exactly when its rows are)."""
        with self._db:
            self._db.execute("BEGIN")
            for key, value in (meta or {}).items():
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                 (key, value))
            self._db.executemany(
                """INSERT INTO billing (endpoint_id, hour_start, flex_s, active_s, gpu_usd, disk_usd)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (endpoint_id, hour_start) DO UPDATE SET
                     flex_s = flex_s + excluded.flex_s, active_s = active_s + excluded.active_s,
                     gpu_usd = gpu_usd + excluded.gpu_usd, disk_usd = disk_usd + excluded.disk_usd""",
                [(r.endpoint_id, r.hour_start, r.flex_s, r.active_s, r.gpu_usd, r.disk_usd)
                 for r in rows])

    def billing_hours(self, start: int, end: int, endpoint_id: str | None = None) -> list[BillingHour]:
        """Hourly rows with start <= hour_start < end, optionally for one endpoint."""
        sql = ("SELECT endpoint_id, hour_start, flex_s, active_s, gpu_usd, disk_usd FROM billing "
               "WHERE hour_start >= ? AND hour_start < ?")
        args: tuple = (start, end)
        if endpoint_id is not None:
            sql += " AND endpoint_id = ?"
            args += (endpoint_id,)
        return [BillingHour(*row) for row in self._db.execute(sql + " ORDER BY hour_start", args)]
