"""A small JSON object kept in one file of CONSOLE_DATA, replaced atomically on each change."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path


class JsonFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, change: Callable[[dict], None]) -> None:
        """Apply `change` to the current object in place and store the result."""
        with self._lock:
            data = self.read()
            change(data)
            tmp = self.path.with_suffix(".partial")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)


def rename_key(old: str, new: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        if old in data:
            data[new] = data.pop(old)
    return change
