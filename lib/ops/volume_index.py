"""A searchable index of the network volume, built once from one paginated listing.

RunPod's S3 API lists slowly (and the first listing of a big folder may even fail, reference §4), so
the Models page never lists per rerun: it asks a `VolumeIndexCache` for the current `VolumeIndex`,
an in-memory SQLite table that answers prefix/substring search, sort and pagination in milliseconds
at 50,000 objects. Any change made through the console invalidates the cache explicitly.
"""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from lib.volume import VolumeObject

SORTS = ("name", "path", "size", "modified")
_ORDER = {"name": "name_lc", "path": "key", "size": "size", "modified": "modified"}
T = TypeVar("T")

# Hidden staging area of unfinished multipart uploads on RunPod's S3 API (reference §4): not files.
_HIDDEN_PREFIXES = (".s3compat_uploads/",)


def folder_of(key: str) -> str:
    """The folder a key is totalled under: models/<folder>, or the first path segment, or "(root)"."""
    parts = key.split("/")
    if parts[0] == "models" and len(parts) >= 3:
        return f"models/{parts[1]}"
    if len(parts) >= 2:
        return parts[0]
    return "(root)"


@dataclass(frozen=True)
class IndexedFile(VolumeObject):
    """A volume object as the index keeps it, with the top folder it is totalled under."""

    @property
    def folder(self) -> str:
        return folder_of(self.key)


@dataclass(frozen=True)
class FolderTotal:
    folder: str
    files: int
    bytes: int


@dataclass(frozen=True)
class ResultPage:
    items: list[IndexedFile]
    total: int          # matches over all pages
    page: int           # 0-based
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def _is_listed_file(key: str) -> bool:
    # S3 listings include empty directories as "dir/" markers (reference §4); they are not files.
    if key.endswith("/"):
        return False
    return not key.startswith(_HIDDEN_PREFIXES)


class VolumeIndex:
    """The volume's files at one listing, patched in place by the console's own changes; thread-safe."""

    def __init__(self, objects: Iterable, *, built_at: datetime | None = None):
        self.built_at = built_at or datetime.now(UTC)
        self._lock = threading.Lock()
        # One connection shared by Streamlit's session threads, serialised by the lock.
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE files (key TEXT PRIMARY KEY, name_lc TEXT NOT NULL, key_lc TEXT NOT NULL,"
            " folder TEXT NOT NULL, size INTEGER NOT NULL, modified REAL NOT NULL, etag TEXT)")
        self._db.executemany(_UPSERT, (_row(obj) for obj in objects if _is_listed_file(obj.key)))
        # Indexes after the bulk insert: building them once is cheaper than maintaining them per row.
        for column in ("name_lc", "folder", "size", "modified"):
            self._db.execute(f"CREATE INDEX files_{column} ON files ({column})")
        # Values computed from every file (totals, flags, readiness): by name, with the arguments they were
        # computed for; forgotten at each change the console makes (upsert, remove), counted by _generation.
        self._derived: dict[str, tuple[Hashable, object]] = {}
        self._generation = 0

    @classmethod
    def build(cls, volume, prefix: str = "") -> VolumeIndex:
        """List the volume once (paginated generator) and index what it returns."""
        return cls(volume.list(prefix), built_at=datetime.now(UTC))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.totals())

    def totals(self) -> list[FolderTotal]:
        def read() -> list[FolderTotal]:
            with self._lock:
                return [FolderTotal(folder, files, total) for folder, files, total in self._db.execute(
                    "SELECT folder, COUNT(*), SUM(size) FROM files GROUP BY folder ORDER BY folder")]

        return list(self.derived("totals", None, read))

    def derived(self, name: str, args: Hashable, compute: Callable[[], T]) -> T:
        """compute() for the files as they are now, once per name and args: later calls reuse it until the
        console changes a file (a moved file is unflagged at once) or asks with other args. Whole-volume
        walks (readiness, flags) took 0.1–0.3 s of every page run at 50,000 files."""
        with self._lock:
            generation = self._generation
            kept = self._derived.get(name)
        if kept is not None and kept[0] == args:
            return kept[1]  # type: ignore[return-value]
        value = compute()
        with self._lock:
            if self._generation == generation:   # not computed from files changed meanwhile
                self._derived[name] = (args, value)
        return value

    def _changed(self) -> None:
        self._generation += 1
        self._derived.clear()

    def folders(self) -> list[str]:
        return [t.folder for t in self.totals()]

    def upsert(self, obj) -> None:
        """Record a file the console just wrote (no new listing needed)."""
        if not _is_listed_file(obj.key):
            return
        with self._lock:
            self._db.execute(_UPSERT, _row(obj))
            self._changed()

    def remove(self, key: str) -> None:
        """Forget a file the console just deleted or moved away."""
        with self._lock:
            self._db.execute("DELETE FROM files WHERE key = ?", (key,))
            self._changed()

    def get(self, key: str) -> IndexedFile | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, size, modified, etag FROM files WHERE key = ?", (key,)).fetchone()
        return _file(row) if row else None

    def files(self, prefix: str = "") -> Iterator[IndexedFile]:
        """Every indexed file under prefix, in key order (materialised so no lock is held while iterating)."""
        where, params = _prefix_clause(prefix)
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, size, modified, etag FROM files WHERE {where} ORDER BY key", params).fetchall()
        return (_file(r) for r in rows)

    def search(self, query: str = "", *, prefix: str = "", folder: str | None = None,
               sort: str = "name", descending: bool = False, page: int = 0,
               page_size: int = 50) -> ResultPage:
        """Files whose path contains `query` (case-insensitive), under `prefix`, in `folder`, sorted, one page."""
        if sort not in SORTS:
            raise ValueError(f"cannot sort by {sort!r}; choose one of {', '.join(SORTS)}")
        if page_size < 1 or page < 0:
            raise ValueError("page must be >= 0 and page_size >= 1")
        clauses, params = [], []
        if prefix:
            clause, p = _prefix_clause(prefix)
            clauses.append(clause)
            params.extend(p)
        if folder:
            clauses.append("folder = ?")
            params.append(folder)
        if query.strip():
            clauses.append("instr(key_lc, ?) > 0")
            params.append(query.strip().lower())
        where = " AND ".join(clauses) or "1"
        direction = "DESC" if descending else "ASC"
        # key as a tie-breaker keeps pages stable when many files share a size or a name.
        order = f"{_ORDER[sort]} {direction}, key {direction}"
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM files WHERE {where}", params).fetchone()[0]
            last_page = max(0, math.ceil(total / page_size) - 1)
            page = min(page, last_page)
            rows = self._db.execute(
                f"SELECT key, size, modified, etag FROM files WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, page_size, page * page_size]).fetchall()
        return ResultPage(items=[_file(r) for r in rows], total=total, page=page, page_size=page_size)

    def same_size_groups(self, min_size: int = 1) -> list[list[IndexedFile]]:
        """Groups of two or more files with identical size (the only candidates for duplicates)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, size, modified, etag FROM files WHERE size >= ? AND size IN "
                "(SELECT size FROM files WHERE size >= ? GROUP BY size HAVING COUNT(*) > 1) "
                "ORDER BY size DESC, key", (min_size, min_size)).fetchall()
        groups: dict[int, list[IndexedFile]] = {}
        for row in rows:
            groups.setdefault(row[1], []).append(_file(row))
        return list(groups.values())


class VolumeIndexCache:
    """The current VolumeIndex for one volume, shared by every session of the console process.

    The first get() lists the volume. After `ttl_s` the old index keeps being served while a fresh
    listing runs in a background thread (a 50,000-object listing takes many S3 round trips).
    The console's own changes patch the index in place (apply); invalidate() forces a new listing.
    """

    def __init__(self, volume, *, ttl_s: float = 300.0, prefix: str = "",
                 clock: Callable[[], float] = time.monotonic):
        self.volume = volume
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()          # guards the fields below
        self._listing = threading.Lock()       # one listing at a time against a slow S3 API
        self._index: VolumeIndex | None = None
        self._built: float = 0.0
        self._generation = 0                   # bumped by every change, so an older listing is not installed
        self._refresher: threading.Thread | None = None
        self.last_error: str | None = None     # why the last background listing failed

    def get(self) -> VolumeIndex:
        with self._lock:
            index = self._index
            if index is not None:
                if self._clock() - self._built >= self.ttl_s:
                    self._refresh_in_background()
                return index
        return self._list_now()

    def peek(self) -> VolumeIndex | None:
        """The cached index if any, without listing."""
        return self._index

    def start_listing(self) -> None:
        """List in the background now (the page shows first_files() meanwhile)."""
        with self._lock:
            self._refresh_in_background()

    def wait_listing(self, timeout_s: float | None = None) -> bool:
        """Block until a background listing is done; True when none is running any more."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout_s)
        return not self.listing

    @property
    def listing(self) -> bool:
        return self._refresher is not None and self._refresher.is_alive()

    def invalidate(self) -> None:
        with self._lock:
            self._index = None
            self._generation += 1

    def apply(self, *, upserts: Iterable = (), removes: Iterable[str] = ()) -> None:
        """Patch the cached index after a change made through the console."""
        with self._lock:
            self._generation += 1
            index = self._index
        if index is None:
            return
        for key in removes:
            index.remove(key)
        for obj in upserts:
            index.upsert(obj)

    @property
    def age_s(self) -> float | None:
        return None if self._index is None else self._clock() - self._built

    def _list_now(self) -> VolumeIndex:
        with self._listing:
            with self._lock:
                if self._index is not None:  # another session listed while this one waited
                    return self._index
                generation = self._generation
            index = VolumeIndex.build(self.volume, self.prefix)
            self._install(index, generation)
            return index

    def _refresh_in_background(self) -> None:
        if self._refresher is not None and self._refresher.is_alive():
            return
        generation = self._generation

        def run() -> None:
            try:
                with self._listing:
                    index = VolumeIndex.build(self.volume, self.prefix)
                self._install(index, generation)
                self.last_error = None
            except Exception as exc:  # a thread has nobody to raise to: keep it for the page to show
                self.last_error = str(exc)

        self._refresher = threading.Thread(target=run, name="volume-index", daemon=True)
        self._refresher.start()

    def _install(self, index: VolumeIndex, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._index = index
                self._built = self._clock()


_UPSERT = "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)"


def _row(obj) -> tuple:
    return (obj.key, obj.key.rsplit("/", 1)[-1].lower(), obj.key.lower(), folder_of(obj.key), int(obj.size),
            _epoch(obj.modified), obj.etag)


def first_files(volume, prefix: str = "", limit: int = 50) -> list[IndexedFile]:
    """The first `limit` files under prefix in key order, from a single listing page.

    For the very first render, before any index exists: one ListObjectsV2 call instead of all of them.
    """
    files = []
    for obj in volume.list(prefix, page_size=limit):
        if _is_listed_file(obj.key):
            files.append(IndexedFile(obj.key, int(obj.size), obj.modified, obj.etag))
            if len(files) >= limit:
                break
    return files


def _prefix_clause(prefix: str) -> tuple[str, list]:
    if not prefix:
        return "1", []
    # A key range uses the primary-key index; LIKE would not (and would need escaping of % and _).
    return "key >= ? AND key < ?", [prefix, prefix + "\U0010ffff"]


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _file(row) -> IndexedFile:
    key, size, modified, etag = row
    return IndexedFile(key=key, size=size, modified=datetime.fromtimestamp(modified, UTC), etag=etag)
