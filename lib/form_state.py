"""What each user last entered in the console's forms, kept in CONSOLE_DATA so that a page shows the
same values after a visit to another page, a reload or a console restart.

Values are stored as JSON per (user, key). Only plain values are kept — text, numbers, and lists of
them — because those are what Streamlit lets a page put back into a widget: a button's click, an
uploaded file or a table selection cannot (and must not) be replayed."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS form_values (
    user TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (user, key)
)"""
_SCALARS = (str, int, float)


def storable(value: object) -> bool:
    """Text, a number or a list of them; never a bool (a button's click or a toggle: not replayable)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, _SCALARS):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) and not isinstance(v, bool)
                                                    for v in value)


class FormState:
    """Per-user form values in `<CONSOLE_DATA>/forms.sqlite`, shared by every browser session."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "forms.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def load(self, user: str, prefix: str) -> dict[str, object]:
        """Every stored value of `user` whose key starts with `prefix`."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM form_values WHERE user=? AND substr(key,1,?)=?",
                                    (user, len(prefix), prefix)).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def save(self, user: str, values: Mapping[str, object]) -> int:
        """Store the storable ones among `values`; returns how many were written."""
        rows = [(user, key, json.dumps(list(v) if isinstance(v, tuple) else v), time.time())
                for key, v in values.items() if storable(v)]
        with self._lock:
            self._db.executemany("INSERT INTO form_values(user, key, value, updated_at) VALUES (?,?,?,?) "
                                 "ON CONFLICT(user, key) DO UPDATE SET value=excluded.value, "
                                 "updated_at=excluded.updated_at", rows)
        return len(rows)

    def forget(self, user: str, keys: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM form_values WHERE user=? AND key=?", [(user, k) for k in keys])

    def clear(self) -> None:
        """Forget every user's values (a fresh start for a test, or for a demo machine)."""
        with self._lock:
            self._db.execute("DELETE FROM form_values")
