"""Warm-up: a minimal job that makes an endpoint start a worker, and timed "min workers" holds.

A hold raises an endpoint's min (active) workers for N minutes and puts the previous value back
afterwards. Holds are written to a JSON file in the console's data folder so a restart in between
still restores the endpoint — an always-on worker left behind is billed 24/7.
"""
from __future__ import annotations

import base64
import io
import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from lib.errors import ConsoleError
from lib.runpod import RunPodError

WARMUP_KIND = "warmup"
SCHEDULE_FILE = "warmup_holds.json"


class WarmupError(ConsoleError, ValueError):
    """A warm-up cannot be done as asked; the message says what to do instead."""


def _tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def warmup_input(role: str) -> dict:
    """The smallest job that boots a worker of `role` (the handler's input dict, for tracker.submit).

    image and special run worker-comfyui: inverting an uploaded 8×8 image loads no model at all, so
    the job costs the boot of ComfyUI and nothing else (worker-comfyui input.images contract).
    """
    if role in ("image", "special"):
        return {
            "workflow": {
                "1": {"class_type": "LoadImage", "inputs": {"image": "warmup.png"}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "warmup"}},
            },
            "images": [{"name": "warmup.png", "image": _tiny_png()}],
        }
    if role == "training":
        raise WarmupError("the training worker has no cheap job to send (every job trains a LoRA); "
                          "warm it up by raising its min workers for a while instead")
    raise WarmupError(f"no warm-up job is defined for the {role!r} endpoint")


@dataclass(frozen=True)
class WarmHold:
    id: str
    role: str
    endpoint_id: str
    previous_min: int
    previous_max: int
    raised_min: int
    raised_max: int
    started_at: datetime
    until: datetime
    user: str
    restored_at: datetime | None = None
    outcome: str | None = None       # what happened at restore, in plain words
    last_error: str | None = None    # why the last restore attempt failed (it is retried)

    @property
    def active(self) -> bool:
        return self.restored_at is None

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("started_at", "until", "restored_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> WarmHold:
        values = dict(data)
        for key in ("started_at", "until", "restored_at"):
            values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
        return cls(**values)


class WarmupSchedule:
    """Persistent list of holds; pure data and file I/O (the RunPod calls are in start_hold/restore_due)."""

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / SCHEDULE_FILE
        self._lock = threading.Lock()

    def _load(self) -> list[WarmHold]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise WarmupError(f"cannot read the warm-up schedule {self.path}: {exc}; fix or delete the "
                              f"file (and check the endpoints' min workers by hand)") from None
        return [WarmHold.from_json(item) for item in raw]

    def _save(self, holds: list[WarmHold]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([h.to_json() for h in holds], indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a schedule

    def holds(self) -> list[WarmHold]:
        with self._lock:
            return self._load()

    def active(self, role: str | None = None) -> list[WarmHold]:
        return [h for h in self.holds() if h.active and (role is None or h.role == role)]

    def add(self, hold: WarmHold) -> WarmHold:
        with self._lock:
            holds = self._load()
            holds.append(hold)
            self._save(holds)
        return hold

    def update(self, hold: WarmHold) -> WarmHold:
        with self._lock:
            holds = [hold if h.id == hold.id else h for h in self._load()]
            self._save(holds)
        return hold

    def due_restores(self, now: datetime) -> list[WarmHold]:
        """Active holds whose time is up, oldest first."""
        return sorted((h for h in self.holds() if h.active and h.until <= now), key=lambda h: h.until)


def start_hold(rest, schedule: WarmupSchedule, *, role: str, endpoint_id: str, workers: int,
               minutes: float, user: str, now: datetime) -> WarmHold:
    """Raise min workers to `workers` for `minutes` (PATCH now, restore via restore_due()).

    A second hold on the same endpoint extends the first instead of stacking: the value to put back is
    always the one from before the first hold.
    """
    if workers < 1:
        raise WarmupError("keep at least 1 worker warm (0 would not warm anything)")
    if minutes <= 0:
        raise WarmupError("the warm period must be longer than 0 minutes")
    until = now + timedelta(minutes=minutes)
    current = next((h for h in schedule.active(role) if h.endpoint_id == endpoint_id), None)
    live = rest.endpoint(endpoint_id)
    target_min = max(workers, live.workers_min)
    target_max = max(live.workers_max, target_min)
    changes = {}
    if target_min != live.workers_min:
        changes["workers_min"] = target_min
    if target_max != live.workers_max:
        changes["workers_max"] = target_max
    if changes:
        rest.update_endpoint(endpoint_id, **changes)
    if current is not None:
        return schedule.update(replace(current, raised_min=target_min, raised_max=target_max,
                                       until=max(current.until, until)))
    return schedule.add(WarmHold(
        id=uuid.uuid4().hex[:12], role=role, endpoint_id=endpoint_id,
        previous_min=live.workers_min, previous_max=live.workers_max,
        raised_min=target_min, raised_max=target_max, started_at=now, until=until, user=user))


def restore_due(rest, schedule: WarmupSchedule, now: datetime) -> list[WarmHold]:
    """Put back min/max workers of every hold whose time is up; returns the holds handled now.

    A setting someone changed by hand during the hold is left as they set it. A failed PATCH keeps
    the hold active (with last_error) so the next call tries again.
    """
    handled = []
    for hold in schedule.due_restores(now):
        try:
            live = rest.endpoint(hold.endpoint_id)
            changes, kept = {}, []
            if live.workers_min == hold.raised_min:
                changes["workers_min"] = hold.previous_min
            else:
                kept.append(f"min workers {live.workers_min} (changed during the hold)")
            if live.workers_max == hold.raised_max and hold.raised_max != hold.previous_max:
                changes["workers_max"] = hold.previous_max
            if changes:
                rest.update_endpoint(hold.endpoint_id, **changes)
        except RunPodError as exc:
            handled.append(schedule.update(replace(hold, last_error=str(exc))))
            continue
        done = [f"{'min' if k == 'workers_min' else 'max'} workers back to {v}" for k, v in changes.items()]
        outcome = "; ".join(done + [f"kept {k}" for k in kept]) or "nothing to restore"
        handled.append(schedule.update(replace(hold, restored_at=now, outcome=outcome, last_error=None)))
    return handled
