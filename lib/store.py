"""The console's own job store: SQLite in CONSOLE_DATA.

Every job is recorded here *before* it is sent to RunPod, so a rerun, a double click or a console
restart can never submit it twice, and results outlive RunPod's 30-minute retention.
"""
from __future__ import annotations

import builtins
import errno
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from lib.errors import ConsoleError
from lib.jobstate import ACTIVE, FINAL, LOCAL, UNFINISHED, JobState

log = logging.getLogger(__name__)

# Local states around RunPod's own: PENDING (recorded, not yet confirmed by RunPod), SUBMIT_FAILED
# (RunPod surely did not take it), UNKNOWN (the submit's outcome is unknown: never resent blindly),
# EXPIRED (RunPod forgot the job before it reached a terminal state we saw).

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    local_id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    role TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    runpod_id TEXT,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    grp TEXT,
    character TEXT,
    created_at REAL NOT NULL,
    submitted_at REAL,
    finished_at REAL,
    delay_ms INTEGER,
    execution_ms INTEGER,
    worker_id TEXT,
    retries INTEGER,
    payload_hash TEXT,
    input_json TEXT,
    meta_json TEXT,
    output_json TEXT,
    error TEXT,
    progress_json TEXT,
    est_cost_usd REAL,
    cost_usd REAL,
    images INTEGER NOT NULL DEFAULT 0,
    cold_start INTEGER NOT NULL DEFAULT 0,
    simulated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE INDEX IF NOT EXISTS jobs_runpod ON jobs(runpod_id);
CREATE INDEX IF NOT EXISTS jobs_grp ON jobs(grp);
-- A kind's newest finished jobs (Gallery, Jobs) without sorting every finished job of a year.
CREATE INDEX IF NOT EXISTS jobs_role_status_created ON jobs(role, status, created_at);
-- The Jobs page's "Who" choices: distinct users from the index, not a walk over a year of 4 KB rows (0.2 s).
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user);
CREATE TABLE IF NOT EXISTS status_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    local_id TEXT NOT NULL,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    delay_ms INTEGER,
    execution_ms INTEGER,
    worker_id TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS changes_job ON status_changes(local_id);
CREATE TABLE IF NOT EXISTS outputs (
    local_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    mime TEXT NOT NULL,
    meta_json TEXT,
    PRIMARY KEY (local_id, name)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail_json TEXT,
    est_cost_usd REAL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# meta keys also kept in a column of their own, with an index, for the Gallery's filter values: reading
# them from meta_json meant walking every job's 4 KB workflow (a year of jobs: 1 s per Gallery run).
_META_COLUMNS = ("character", "model")
_META_INDEXES = "".join(f"CREATE INDEX IF NOT EXISTS jobs_{c} ON jobs(role, kind, {c});" for c in _META_COLUMNS)
# Columns added after the first release, for stores created by older consoles.
_ADDED_COLUMNS = {
    # RunPod said COMPLETED, the outputs are being kept: the job turns final only with them.
    "outputs_pending": "INTEGER NOT NULL DEFAULT 0",
    "model": "TEXT",
}
# How long one store call waits out another program's lock (a backup tool, the sqlite3 shell)
# before it reports the store busy. Longer than a typical backup's write lock.
LOCK_WAIT_S = 10.0
_RETRY_PAUSE_S = 0.05


_T = TypeVar("_T")


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else _time(value)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _dumps(value: object) -> str | None:
    return None if value is None else _json(value)


def payload_hash(payload: Mapping[str, Any]) -> str:
    """A stable fingerprint of a job's input, so identical re-runs can be recognised."""
    return hashlib.sha256(_json(payload).encode()).hexdigest()


@dataclass(frozen=True)
class JobRecord:
    local_id: str
    role: str
    endpoint_id: str
    runpod_id: str | None
    status: str
    kind: str
    user: str
    group: str | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    delay_ms: int | None
    execution_ms: int | None
    worker_id: str | None
    retries: int | None
    payload_hash: str | None
    input: dict[str, Any] | None = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)
    output: object = field(default=None, repr=False)
    error: str | None = None
    progress: object = None
    est_cost_usd: float | None = None
    cost_usd: float | None = None
    images: int = 0
    cold_start: bool = False
    simulated: bool = False
    idempotency_key: str | None = None
    outputs_pending: bool = False

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def on_dev_worker(self) -> bool:
        """Sent to a worker under development (an endpoint given by url, not id)."""
        return self.endpoint_id.startswith(("http://", "https://"))

    @property
    def character(self) -> str | None:
        return self.meta.get("character")


@dataclass(frozen=True)
class JobSummary:
    """A job as a table lists it: its plain columns, without the JSON a JobRecord decodes (a workflow
    input is ~4 KB: reading 1,000 records for the Jobs table took 0.27 s)."""

    local_id: str
    role: str
    kind: str
    status: str
    user: str
    character: str | None
    created_at: datetime
    delay_ms: int | None
    execution_ms: int | None
    worker_id: str | None
    cost_usd: float | None
    simulated: bool


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    status: str
    delay_ms: int | None
    execution_ms: int | None
    worker_id: str | None
    note: str | None


@dataclass(frozen=True)
class OutputFile:
    name: str
    path: Path
    mime: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    user: str
    action: str
    target: str | None
    detail: dict[str, Any]
    est_cost_usd: float | None


class StoreUnavailable(ConsoleError):
    """The store cannot take a write right now; the message names the cause and what to do."""


class StoreBusy(StoreUnavailable):
    """Another program holds the SQLite file's lock for longer than LOCK_WAIT_S."""


class DiskFull(StoreUnavailable):
    """The disk holding CONSOLE_DATA is full."""


class ForeignStore(ConsoleError):
    """CONSOLE_DATA holds a console.sqlite that is not a console job store: never overwritten."""


class DamagedRecord(ValueError):
    """A job row whose stored JSON cannot be read; the rest of the store is fine."""

    def __init__(self, local_id: str, column: str):
        super().__init__(f"job {local_id}: the stored {column} is damaged (not valid JSON)")
        self.local_id = local_id
        self.column = column


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _unavailable(exc: BaseException, path: Path) -> StoreUnavailable | None:
    """The StoreUnavailable for an SQLite or file error that waiting (or freeing space) cures."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DiskFull(f"the disk holding {path.parent} is full ({exc.strerror}) — free some space; "
                        f"the console keeps the results and saves them when space returns")
    if isinstance(exc, sqlite3.OperationalError):
        if _is_busy(exc):
            return StoreBusy(f"the job store {path} is locked by another program (a backup tool or the "
                             f"sqlite3 shell?) — close it; the console keeps retrying")
        if "full" in str(exc).lower():
            return DiskFull(f"the disk holding {path} is full ({exc}) — free some space; the console "
                            f"keeps retrying")
    return None


def _write_file(target: Path, data: bytes) -> None:
    """Write through a temporary name and fsync, so a crash never leaves half a file under `target`."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DuplicateSubmission(Exception):
    """An idempotency key was reused: the caller gets the existing record instead."""

    def __init__(self, record: JobRecord):
        super().__init__(f"job {record.local_id} already recorded for this request")
        self.record = record


class JobStore:
    """Thread-safe SQLite store shared by the tracker thread and every Streamlit session."""

    def __init__(self, data_dir: Path, *, lock_wait_s: float = LOCK_WAIT_S):
        self.data_dir = Path(data_dir)
        self.outputs_dir = self.data_dir / "outputs"
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "console.sqlite"
        self.lock_wait_s = lock_wait_s
        # Job rows skipped because their JSON is damaged: local_id -> what is wrong.
        self.damaged: dict[str, str] = {}
        self._lock = threading.RLock()
        # timeout= is SQLite's busy_timeout: each statement waits that long for another's lock.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=lock_wait_s)
        self._db.row_factory = sqlite3.Row
        try:
            self._refuse_foreign_file()
            self._retrying(self._db.execute, "PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._retrying(self._db.executescript, _SCHEMA)
            self._add_missing_columns()
        except BaseException:
            self._db.close()
            raise
        # Reads have a connection of their own: in WAL mode they go on while a write waits out
        # another program's lock, so pages keep showing the history (and the reason) meanwhile.
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=lock_wait_s)
        self._reader.row_factory = sqlite3.Row

    def _refuse_foreign_file(self) -> None:
        """Never write into a file that is not ours: a garbage file or another program's database."""
        what_to_do = ("The console does not overwrite it: move the file away (or restore a backup of "
                      "the console's store), or set CONSOLE_DATA to another folder.")
        try:
            tables = {row[0] for row in self._retrying(
                self._db.execute, "SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            raise ForeignStore(f"{self.path} is not a console job store (SQLite: {exc}). {what_to_do}") from None
        if tables and "jobs" not in tables:
            raise ForeignStore(f"{self.path} is another program's SQLite database (tables: "
                               f"{', '.join(sorted(tables)[:5])}), not a console job store. {what_to_do}")

    def _add_missing_columns(self) -> None:
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, decl in _ADDED_COLUMNS.items():
            if column not in present:
                self._retrying(self._db.execute, f"ALTER TABLE jobs ADD COLUMN {column} {decl}")
                if column in _META_COLUMNS:  # jobs recorded before the column existed
                    self._retrying(self._db.execute, f"UPDATE jobs SET {column} = json_extract(meta_json, "
                                                     f"'$.{column}') WHERE meta_json IS NOT NULL")
        self._retrying(self._db.executescript, _META_INDEXES)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._read_lock:
            self._reader.close()

    def _retrying(self, call: Callable[..., _T], *args: object) -> _T:
        """`call(*args)`, waiting out another program's lock for up to lock_wait_s in all.

        busy_timeout covers most waits; SQLite still answers "locked" at once in a few cases (a
        stale WAL snapshot, a checkpoint), so those are retried here within the same budget.
        """
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise _unavailable(exc, self.path) or exc from exc
                time.sleep(_RETRY_PAUSE_S)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._retrying(self._db.execute, "BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                problem = _unavailable(exc, self.path)
                if problem is not None and not isinstance(exc, StoreUnavailable):
                    raise problem from exc
                raise

    def version(self) -> int:
        """Grows with every write through this store (all of them go through its one writer
        connection): equal versions mean equal contents, so readers can keep results keyed by it."""
        with self._lock:
            return int(self._db.total_changes)

    def meta_values(self, key: str, *, role: str, kinds: Iterable[str]) -> list[str]:
        """The distinct non-empty values of meta[key] among jobs of this role and kinds, sorted
        (for the keys kept in a column of their own: character, model)."""
        if key not in _META_COLUMNS:
            raise ValueError(f"meta[{key!r}] has no column of its own to read the values from")
        kinds = list(kinds)
        rows = self._query(f"SELECT DISTINCT {key} FROM jobs WHERE role=?"
                           f" AND kind IN ({','.join('?' * len(kinds))})", [role, *kinds])
        return sorted(str(r[0]) for r in rows if r[0] not in (None, ""))

    def _query(self, sql: str, args: Iterable[object] = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            return self._retrying(lambda: self._reader.execute(sql, tuple(args)).fetchall())

    def _records(self, rows: Iterable[sqlite3.Row]) -> list[JobRecord]:
        """Rows as records, skipping (and remembering) damaged ones so one bad row hides nothing else."""
        records = []
        for row in rows:
            try:
                records.append(_record(row))
            except DamagedRecord as exc:
                if exc.local_id not in self.damaged:
                    log.error("skipped a damaged job record: %s", exc)
                self.damaged[exc.local_id] = str(exc)
        return records

    # ---- jobs ---------------------------------------------------------------------------
    def create(self, *, role: str, endpoint_id: str, kind: str, user: str, input: dict[str, Any],
               idempotency_key: str, meta: Mapping[str, Any] | None = None, group: str | None = None,
               est_cost_usd: float | None = None) -> JobRecord:
        """Record a job before it is sent. Raises DuplicateSubmission if the key was used."""
        meta = dict(meta or {})
        local_id = uuid.uuid4().hex[:16]
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT local_id FROM jobs WHERE idempotency_key=?",
                             (idempotency_key,)).fetchone()
            if row is not None:
                existing = row["local_id"]
            else:
                existing = None
                db.execute(
                    "INSERT INTO jobs (local_id, idempotency_key, role, endpoint_id, status, kind, user,"
                    " grp, character, model, created_at, payload_hash, input_json, meta_json, est_cost_usd)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (local_id, idempotency_key, role, endpoint_id, JobState.PENDING.value, kind, user, group,
                     meta.get("character"), _text_or_none(meta.get("model")), now, payload_hash(input),
                     _dumps(input), _dumps(meta), est_cost_usd))
                db.execute("INSERT INTO status_changes (local_id, at, status, note) VALUES (?,?,?,?)",
                           (local_id, now, JobState.PENDING.value, "recorded before submit"))
        if existing is not None:
            raise DuplicateSubmission(self.get(existing))
        return self.get(local_id)

    def get(self, local_id: str) -> JobRecord:
        rows = self._query("SELECT * FROM jobs WHERE local_id=?", (local_id,))
        if not rows:
            raise KeyError(f"no job {local_id!r} in the console's history")
        try:
            return _record(rows[0])
        except DamagedRecord as exc:
            self.damaged[local_id] = str(exc)
            raise

    def find_by_key(self, idempotency_key: str) -> JobRecord | None:
        rows = self._query("SELECT * FROM jobs WHERE idempotency_key=?", (idempotency_key,))
        records = self._records(rows)
        return records[0] if records else None

    def list(self, *, role: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
             kind: str | Iterable[str] | None = None, user: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             group: str | None = None, character: str | None = None, model: str | None = None,
             include_simulated: bool = True, with_images: bool = False, limit: int = 500,
             offset: int = 0) -> builtins.list[JobRecord]:
        """Jobs matching every filter given (a list: any of its values), newest first; `with_images`:
        only jobs with an image kept."""
        found = _filters(role=role, status=status, kind=kind, user=user, grp=group, character=character,
                         model=model, since=since, until=until, include_simulated=include_simulated,
                         with_images=with_images)
        if found is None:
            return []
        where, args = found
        rows = self._query(f"SELECT * FROM jobs{where} ORDER BY created_at DESC LIMIT ? OFFSET ?",
                           [*args, int(limit), int(offset)])
        return self._records(rows)

    def summaries(self, *, role: str | None = None, status: str | Iterable[str] | None = None,
                  user: str | None = None, since: datetime | None = None, until: datetime | None = None,
                  limit: int = 500) -> builtins.list[JobSummary]:
        """What `list` returns, as JobSummary: newest first, filtered the same way."""
        found = _filters(role=role, status=status, user=user, since=since, until=until)
        if found is None:
            return []
        where, args = found
        rows = self._query("SELECT local_id, role, kind, status, user, character, created_at, delay_ms, execution_ms,"
                           f" worker_id, cost_usd, simulated FROM jobs{where} ORDER BY created_at DESC LIMIT ?",
                           [*args, int(limit)])
        return [JobSummary(r["local_id"], r["role"], r["kind"], r["status"], r["user"], r["character"],
                           _time(r["created_at"]), r["delay_ms"], r["execution_ms"], r["worker_id"], r["cost_usd"],
                           bool(r["simulated"])) for r in rows]

    def tally(self, *, role: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
              kind: str | Iterable[str] | None = None, character: str | None = None, model: str | None = None,
              since: datetime | None = None, until: datetime | None = None, include_simulated: bool = True,
              with_images: bool = False) -> tuple[int, int]:
        """(jobs, images kept by them) matching the filters, as `list` takes them: one query, no rows read."""
        found = _filters(role=role, status=status, kind=kind, character=character, model=model, since=since,
                         until=until, include_simulated=include_simulated, with_images=with_images)
        if found is None:
            return 0, 0
        where, args = found
        jobs, images = self._query(f"SELECT COUNT(*), COALESCE(SUM(images), 0) FROM jobs{where}", args)[0]
        return int(jobs), int(images)

    def spend(self, *, since: datetime | None = None, until: datetime | None = None) -> float:
        """The recorded cost in US dollars of the jobs created in [since, until): one sum, no rows read."""
        where, args = _filters(since=since, until=until) or ("", [])
        return float(self._query(f"SELECT COALESCE(SUM(cost_usd), 0) FROM jobs{where}", args)[0][0])

    def unfinished(self) -> builtins.list[JobRecord]:
        """Jobs the tracker must follow: sent to RunPod and not final, or not confirmed, or
        finished on RunPod with their outputs not kept yet. Damaged rows are skipped (see .damaged)."""
        rows = self._query(f"SELECT * FROM jobs WHERE status IN ({','.join('?' * len(UNFINISHED))})"
                           " AND simulated = 0 ORDER BY created_at", [s.value for s in UNFINISHED])
        return self._records(rows)

    def missing_outputs(self) -> builtins.list[JobRecord]:
        """COMPLETED jobs with images in their stored output but none kept and no loss recorded
        (a console before outputs_pending could die between the two)."""
        rows = self._query("SELECT * FROM jobs WHERE status=? AND simulated=0 AND images=0"
                           " AND output_json LIKE '%\"images\"%' AND error IS NULL"
                           " AND NOT EXISTS (SELECT 1 FROM outputs o WHERE o.local_id = jobs.local_id)",
                           [JobState.COMPLETED.value])
        return [r for r in self._records(rows) if _has_image_entries(r.output)]

    def users(self) -> builtins.list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT user FROM jobs ORDER BY user")]

    def mark_submitted(self, local_id: str, runpod_id: str, status: str) -> JobRecord:
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE jobs SET runpod_id=?, status=?, submitted_at=? WHERE local_id=?",
                       (runpod_id, status, now, local_id))
            db.execute("INSERT INTO status_changes (local_id, at, status, note) VALUES (?,?,?,?)",
                       (local_id, now, status, f"RunPod job {runpod_id}"))
        return self.get(local_id)

    def mark_local(self, local_id: str, status: str, error: str | None) -> JobRecord:
        """A local-only state: SUBMIT_FAILED, UNKNOWN or EXPIRED, with the reason."""
        if status not in LOCAL:
            raise ValueError(f"{status} is not a local state")
        status = JobState(status).value   # the plain string in SQL
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, error=?, finished_at=CASE WHEN ? THEN ? ELSE finished_at END"
                       " WHERE local_id=?",
                       (status, error, status in FINAL, now, local_id))
            db.execute("INSERT INTO status_changes (local_id, at, status, note) VALUES (?,?,?,?)",
                       (local_id, now, status, error))
        return self.get(local_id)

    def update_from_runpod(self, local_id: str, *, status: str, delay_ms: int | None,
                           execution_ms: int | None, worker_id: str | None, retries: int | None,
                           output: object, error: str | None, cold_start: bool | None = None,
                           cost_usd: float | None = None, outputs_pending: bool = False) -> tuple[JobRecord, bool]:
        """Apply one /status reply. Returns the record and whether the status changed.

        With outputs_pending, the reply is final (COMPLETED) but its outputs are not kept yet: the
        result is stored and the job stays unfinished until finish_outputs()."""
        status = JobState(status).value
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE local_id=?", (local_id,)).fetchone()
            if row is None:
                raise KeyError(local_id)
            keeps_output = status in FINAL
            if outputs_pending:
                status = row["status"]
            changed = row["status"] != status
            is_final = status in FINAL
            db.execute(
                "UPDATE jobs SET status=?, delay_ms=COALESCE(?, delay_ms),"
                " execution_ms=COALESCE(?, execution_ms), worker_id=COALESCE(?, worker_id),"
                " retries=COALESCE(?, retries), error=COALESCE(?, error),"
                " output_json=CASE WHEN ? THEN ? ELSE output_json END,"
                " progress_json=CASE WHEN ? THEN ? ELSE progress_json END,"
                " finished_at=CASE WHEN ? AND finished_at IS NULL THEN ? ELSE finished_at END,"
                " cold_start=COALESCE(?, cold_start), cost_usd=COALESCE(?, cost_usd),"
                " outputs_pending=?"
                " WHERE local_id=?",
                (status, delay_ms, execution_ms, worker_id, retries, error,
                 keeps_output, _dumps(output), status == JobState.IN_PROGRESS and output is not None,
                 _dumps(output), is_final, now,
                 None if cold_start is None else int(cold_start), cost_usd, int(outputs_pending), local_id))
            if changed:
                db.execute("INSERT INTO status_changes (local_id, at, status, delay_ms, execution_ms,"
                           " worker_id) VALUES (?,?,?,?,?,?)",
                           (local_id, now, status, delay_ms, execution_ms, worker_id))
        return self.get(local_id), changed

    def finish_outputs(self, local_id: str, problems: Iterable[str] = ()) -> tuple[JobRecord, bool]:
        """The outputs of a COMPLETED job are kept (or their loss is recorded): now it is final.
        Returns the record and whether the status changed (False for a repair of a final job)."""
        problems = list(problems)
        error = ("Some outputs could not be kept: " + "; ".join(problems)) if problems else None
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE local_id=?", (local_id,)).fetchone()
            if row is None:
                raise KeyError(local_id)
            changed = row["status"] != JobState.COMPLETED
            db.execute("UPDATE jobs SET status=?, outputs_pending=0, error=COALESCE(?, error),"
                       " finished_at=COALESCE(finished_at, ?) WHERE local_id=?",
                       (JobState.COMPLETED.value, error, now, local_id))
            db.execute("INSERT INTO status_changes (local_id, at, status, note) VALUES (?,?,?,?)",
                       (local_id, now, JobState.COMPLETED.value, error or "outputs kept"))
        return self.get(local_id), changed

    def reset_for_retry(self, local_id: str, status: str) -> JobRecord:
        """RunPod re-queued the job under the same id: clear the previous result."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, output_json=NULL, error=NULL, progress_json=NULL,"
                       " finished_at=NULL, cost_usd=NULL, outputs_pending=0 WHERE local_id=?", (status, local_id))
            db.execute("INSERT INTO status_changes (local_id, at, status, note) VALUES (?,?,?,?)",
                       (local_id, now, status, "retried"))
        return self.get(local_id)

    def history(self, local_id: str) -> builtins.list[StatusChange]:
        rows = self._query("SELECT * FROM status_changes WHERE local_id=? ORDER BY id", (local_id,))
        return [StatusChange(_time(r["at"]), r["status"], r["delay_ms"], r["execution_ms"],
                             r["worker_id"], r["note"]) for r in rows]

    # ---- outputs ------------------------------------------------------------------------
    def save_output(self, local_id: str, name: str, data: bytes, mime: str,
                    meta: Mapping[str, Any] | None = None) -> OutputFile:
        safe_name = Path(name).name or "output.bin"
        folder = self.outputs_dir / local_id
        target = folder / safe_name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_file(target, data)
        except OSError as exc:
            raise (_unavailable(exc, target) or exc) from exc
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO outputs (local_id, name, path, mime, meta_json)"
                       " VALUES (?,?,?,?,?)", (local_id, safe_name, str(target), mime, _dumps(dict(meta or {}))))
            count = db.execute("SELECT COUNT(*) FROM outputs WHERE local_id=? AND mime LIKE 'image/%'",
                               (local_id,)).fetchone()[0]
            db.execute("UPDATE jobs SET images=? WHERE local_id=?", (count, local_id))
        return OutputFile(safe_name, target, mime, dict(meta or {}))

    def outputs(self, local_id: str) -> builtins.list[OutputFile]:
        rows = self._query("SELECT * FROM outputs WHERE local_id=? ORDER BY name", (local_id,))
        return [OutputFile(r["name"], Path(r["path"]), r["mime"], _loads(r["meta_json"]) or {})
                for r in rows]

    # ---- audit --------------------------------------------------------------------------
    def audit(self, user: str, action: str, target: str | None = None,
              detail: Mapping[str, Any] | None = None, est_cost_usd: float | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit (at, user, action, target, detail_json, est_cost_usd)"
                       " VALUES (?,?,?,?,?,?)",
                       (time.time(), user, action, target, _dumps(dict(detail or {})), est_cost_usd))

    def audit_entries(self, *, user: str | None = None, action: str | None = None,
                      since: datetime | None = None, limit: int = 1000) -> builtins.list[AuditEntry]:
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        if user:
            where.append("user = ?")
            args.append(user)
        if action:
            where.append("action = ?")
            args.append(action)
        if since:
            where.append("at >= ?")
            args.append(since.timestamp())
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._query(sql, [*args, limit])
        return [AuditEntry(r["id"], _time(r["at"]), r["user"], r["action"], r["target"],
                           _loads(r["detail_json"]) or {}, r["est_cost_usd"]) for r in rows]

    def audit_actions(self) -> builtins.list[str]:
        """Every action name recorded so far, for the Audit page's filter."""
        return [r[0] for r in self._query("SELECT DISTINCT action FROM audit ORDER BY action")]

    # ---- key/value flags and bulk import --------------------------------------------------
    def flag(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM kv WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_flag(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?,?)", (key, value))

    def import_history(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Bulk-insert finished jobs (the simulator's seeded past traffic), marked simulated."""
        rows = [(
            r["local_id"], r["role"], r["endpoint_id"], r.get("runpod_id"), r["status"], r["kind"],
            r["user"], r.get("character"), _text_or_none((r.get("meta") or {}).get("model")), r["created_at"],
            r["created_at"], r.get("finished_at"), r.get("delay_ms"), r.get("execution_ms"), r.get("worker_id"),
            r.get("images", 0), int(bool(r.get("cold_start"))), r.get("cost_usd"), _dumps(r.get("meta") or {}),
        ) for r in records]
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO jobs (local_id, role, endpoint_id, runpod_id, status, kind, user,"
                " character, model, created_at, submitted_at, finished_at, delay_ms, execution_ms, worker_id,"
                " images, cold_start, cost_usd, meta_json, simulated)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1)", rows)
        return len(rows)

    def jobs_frame(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        """Every job as one row, the shape cost and endpoint analytics work on."""
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        _time_window(where, args, since, until)
        sql = ("SELECT local_id, role, endpoint_id, status, kind, user, character, grp AS 'group',"
               " created_at, delay_ms, execution_ms, images, cold_start, cost_usd, simulated, worker_id"
               " FROM jobs")
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read_lock:
            frame = pd.read_sql_query(sql, self._reader, params=args)
        frame["submitted_at"] = pd.to_datetime(frame.pop("created_at"), unit="s", utc=True).astype(
            "datetime64[ns, UTC]")
        for column in ("delay_ms", "execution_ms", "cost_usd"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        frame["images"] = frame["images"].fillna(0).astype("int64")
        frame["cold_start"] = frame["cold_start"].fillna(0).astype(bool)
        frame["simulated"] = frame["simulated"].fillna(0).astype(bool)
        return frame


def _filters(*, since: datetime | None = None, until: datetime | None = None, include_simulated: bool = True,
             with_images: bool = False, **columns: str | Iterable[str] | None) -> tuple[str, list[object]] | None:
    """The WHERE clause (with its leading space, or empty) and arguments for jobs whose `columns` have the
    value given (or one of the values of a list); None when an empty list means nothing can match."""
    where: list[str] = []
    args: list[object] = []
    for column, value in columns.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            return None
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        args += values
    _time_window(where, args, since, until)
    if not include_simulated:
        where.append("simulated = 0")
    if with_images:
        where.append("images > 0")
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _time_window(where: list[str], args: list[object], since: datetime | None, until: datetime | None) -> None:
    """Add the [since, until) condition on created_at to a WHERE clause being built."""
    if since is not None:
        where.append("created_at >= ?")
        args.append(since.timestamp())
    if until is not None:
        where.append("created_at < ?")
        args.append(until.timestamp())


def _has_image_entries(output: object) -> bool:
    return isinstance(output, dict) and any(isinstance(e, dict) for e in output.get("images") or [])


def _json_column(row: sqlite3.Row, column: str) -> Any:
    try:
        return _loads(row[column])
    except ValueError:
        raise DamagedRecord(row["local_id"], column) from None


def _text_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        local_id=row["local_id"], role=row["role"], endpoint_id=row["endpoint_id"],
        runpod_id=row["runpod_id"], status=row["status"], kind=row["kind"], user=row["user"],
        group=row["grp"], created_at=_time(row["created_at"]), submitted_at=_ts(row["submitted_at"]),
        finished_at=_ts(row["finished_at"]), delay_ms=row["delay_ms"],
        execution_ms=row["execution_ms"], worker_id=row["worker_id"], retries=row["retries"],
        payload_hash=row["payload_hash"], input=_json_column(row, "input_json"),
        meta=_json_column(row, "meta_json") or {}, output=_json_column(row, "output_json"),
        error=row["error"], progress=_json_column(row, "progress_json"),
        est_cost_usd=row["est_cost_usd"], cost_usd=row["cost_usd"], images=row["images"] or 0,
        cold_start=bool(row["cold_start"]), simulated=bool(row["simulated"]),
        idempotency_key=row["idempotency_key"], outputs_pending=bool(row["outputs_pending"]))
