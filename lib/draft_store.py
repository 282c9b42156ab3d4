"""Unsaved training-set changes kept per user in CONSOLE_DATA, so a reload or a closed tab does not
lose them: the Training sets page offers the kept draft back until it is saved or discarded.

The drafts are pickled: they hold image bytes and analysis results, and only this console writes and
reads these files (in its own data folder, never from a user upload)."""
from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from lib.training.datasets import DatasetDraft


@dataclass(frozen=True)
class KeptDraft:
    draft: DatasetDraft
    version: str | None     # the saved version it started from
    saved_at: float


class DraftStore:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir) / "drafts"

    def _path(self, user: str, set_name: str) -> Path:
        who = hashlib.sha256(user.encode()).hexdigest()[:16]   # no e-mail address in a file name
        return self.root / who / f"{set_name}.pickle"

    def keep(self, user: str, set_name: str, version: str | None, draft: DatasetDraft) -> None:
        path = self._path(user, set_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.write_bytes(pickle.dumps(KeptDraft(draft, version, time.time())))
        tmp.replace(path)

    def load(self, user: str, set_name: str) -> KeptDraft | None:
        try:
            kept = pickle.loads(self._path(user, set_name).read_bytes())
        except (FileNotFoundError, pickle.UnpicklingError, EOFError, AttributeError):
            return None   # none kept, or written by an older console: nothing to offer
        return kept if isinstance(kept, KeptDraft) else None

    def forget(self, user: str, set_name: str) -> None:
        self._path(user, set_name).unlink(missing_ok=True)
