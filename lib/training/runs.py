"""A training run as the console shows it: progress, loss curve, samples and checkpoints read
from the job's progress/output (the training contract), and what can be done with a finished
run's checkpoints (stage them for a comparison grid, promote one to models/loras/)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lib.errors import ConsoleError
from lib.jobstate import JobState
from lib.training.config import VOLUME_MOUNT
from lib.volume import Volume, VolumeError, VolumeNotFound, safe_key

LORAS_DIR = "models/loras"
# ComfyUI only loads LoRAs from models/loras/ (worker-contracts §1.7), so checkpoints under
# comparison are staged in a sub-folder there; the grid names them relative to models/loras/.
CANDIDATES_DIR = f"{LORAS_DIR}/_candidates"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,47}$")
_VERSION_RE = re.compile(r"^v(\d+)$")


class RunError(ConsoleError, ValueError):
    """A run action cannot be done; the message says why."""


def volume_key(path: str) -> str:
    """'/runpod-volume/loras/ava/run/x.safetensors' → 'loras/ava/run/x.safetensors'."""
    prefix = VOLUME_MOUNT + "/"
    if not isinstance(path, str) or not path.startswith(prefix):
        raise RunError(f"{path!r} is not a path on the network volume ({prefix}…)")
    return safe_key(path[len(prefix):])


@dataclass(frozen=True)
class Checkpoint:
    path: str
    step: int
    size: int | None = None
    sha256: str | None = None

    @property
    def key(self) -> str:
        return volume_key(self.path)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Sample:
    path: str
    step: int
    prompt: str = ""

    @property
    def key(self) -> str:
        return volume_key(self.path)


@dataclass(frozen=True)
class RunView:
    step: int
    total_steps: int | None
    loss: float | None
    speed: float | None            # iterations per second
    eta_s: float | None
    checkpoints: tuple[Checkpoint, ...]
    samples: tuple[Sample, ...]
    loss_series: tuple[tuple[int, float], ...]
    lora_path: str | None = None
    error: str | None = None
    log_tail: tuple[str, ...] = ()
    phase: str | None = None        # loading | caching latents | training | sampling | saving
    learning_rate: float | None = None

    @property
    def fraction(self) -> float:
        if not self.total_steps:
            return 0.0
        return max(0.0, min(1.0, self.step / self.total_steps))

    @property
    def finished(self) -> bool:
        return self.lora_path is not None

    def samples_by_step(self) -> dict[int, list[Sample]]:
        out: dict[int, list[Sample]] = {}
        for s in sorted(self.samples, key=lambda s: (s.step, s.path)):
            out.setdefault(s.step, []).append(s)
        return out


def format_duration(seconds: float | None) -> str:
    """'1 h 05 min', '12 min', '40 s'; '—' when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _checkpoints(items: object) -> tuple[Checkpoint, ...]:
    out = []
    for c in items if isinstance(items, list) else []:
        if isinstance(c, dict) and isinstance(c.get("path"), str) and isinstance(c.get("step"), int):
            out.append(Checkpoint(path=c["path"], step=c["step"], size=c.get("size"), sha256=c.get("sha256")))
    return tuple(sorted(out, key=lambda c: c.step))


def _samples(items: object) -> tuple[Sample, ...]:
    out = []
    for s in items if isinstance(items, list) else []:
        if isinstance(s, dict) and isinstance(s.get("path"), str) and isinstance(s.get("step"), int):
            out.append(Sample(path=s["path"], step=s["step"], prompt=str(s.get("prompt", ""))))
    return tuple(out)


def _series(items: object) -> tuple[tuple[int, float], ...]:
    out = []
    for point in items if isinstance(items, list) else []:
        if isinstance(point, (list, tuple)) and len(point) == 2:
            try:
                out.append((int(point[0]), float(point[1])))
            except (TypeError, ValueError):
                continue
    return tuple(out)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# How a stop the user or the time limit asked for reads; the trainer's last lines go in the details.
STOPPED: dict[str, str] = {JobState.CANCELLED: "Cancelled", JobState.TIMED_OUT: "Timed out"}


def _lines(value: object) -> tuple[str, ...]:
    return tuple(str(x) for x in value if isinstance(x, str)) if isinstance(value, list) else ()


def run_view(progress: object, output: object, error: str | None = None,
             loss_series: Iterable[tuple[int, float]] = (), status: str | None = None) -> RunView:
    """Combine a job's latest progress, its output (when finished) and error into one view.

    `loss_series` is the live curve (see `read_live_loss`); a finished run's own `loss` wins.
    A cancelled or timed-out run says where it stopped ("Cancelled at step 480 of 1000"); its
    checkpoints, samples and curve are what the worker had written by then.
    """
    progress = progress if isinstance(progress, Mapping) else {}
    output = output if isinstance(output, Mapping) else {}
    series = _series(output.get("loss")) or tuple(loss_series)
    checkpoints = _checkpoints(output.get("checkpoints")) or _checkpoints(progress.get("checkpoints"))
    samples = _samples(output.get("samples")) or _samples(progress.get("samples"))
    total = progress.get("total_steps")
    reported_step = progress.get("step")
    step: int = reported_step if isinstance(reported_step, int) else 0
    lora_path = output.get("lora_path") if isinstance(output.get("lora_path"), str) else None
    if lora_path and checkpoints:
        step = max(step, checkpoints[-1].step)
        total = total or checkpoints[-1].step
    tail = _lines(output.get("log_tail"))
    message = error or (output.get("error") if isinstance(output.get("error"), str) else None)
    if message and not tail and "\n" in message:
        # The worker puts a crashed trainer's last lines under the first line of its error, so
        # they survive platforms that keep only `error` of a failed job.
        message, *rest = message.splitlines()
        tail = tuple(rest)
    tail = tail or _lines(progress.get("log_tail"))
    last_loss = _number(progress.get("loss"))
    speed = _number(progress.get("speed"))
    eta = _number(progress.get("eta_s"))
    if series and (last_loss is None or lora_path or series[-1][0] > step):
        # The live curve is often fresher than the last polled progress message.
        if series[-1][0] > step:
            step = series[-1][0]
            eta = (total - step) / speed if speed and isinstance(total, int) else eta
        last_loss = series[-1][1]
    total = total if isinstance(total, int) else None
    if status in STOPPED:
        message = f"{STOPPED[status]} at step {step} of {total or '?'}"
    phase = progress.get("phase") if isinstance(progress.get("phase"), str) else None
    return RunView(step=step, total_steps=total, loss=last_loss,
                   speed=speed, eta_s=None if lora_path or status in STOPPED else eta,
                   checkpoints=checkpoints, samples=samples, loss_series=series, lora_path=lora_path,
                   error=message, log_tail=tail, phase=None if lora_path or message else phase,
                   learning_rate=_number(progress.get("learning_rate")))


def read_live_loss(volume: Volume, output_path: str) -> list[tuple[int, float]]:
    """The loss curve so far, from the loss.json the worker keeps next to its checkpoints (also
    after a cancel: the worker writes it once more when it stops the trainer)."""
    try:
        data = json.loads(volume.read(f"{volume_key(output_path)}/loss.json"))
    except (VolumeNotFound, ValueError):
        return []
    return list(_series(data.get("loss") if isinstance(data, dict) else None))


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A checkpoint staged where ComfyUI can load it, for the Generate page's comparison grid."""

    lora_name: str          # relative to models/loras/, what a LoRA loader node takes
    label: str              # "step 750" / "final"
    step: int
    source: str             # the checkpoint's path in the run folder

    def to_dict(self) -> dict:
        return {"lora_name": self.lora_name, "label": self.label, "step": self.step, "source": self.source}


def stage_candidates(volume: Volume, view: RunView, name: str, run_id: str,
                     steps: Iterable[int] | None = None) -> list[Candidate]:
    """Copy the chosen checkpoints (default: all) to models/loras/_candidates/<name>/<run>/."""
    wanted = set(steps) if steps is not None else None
    chosen = [c for c in view.checkpoints if wanted is None or c.step in wanted]
    if not chosen:
        raise RunError("Choose at least one checkpoint to compare.")
    out = []
    for c in chosen:
        target = f"{CANDIDATES_DIR}/{name}/{run_id}/{c.file_name}"
        try:
            if not volume.exists(target):
                volume.copy(c.key, target)
        except VolumeNotFound:
            raise RunError(f"{c.path} is no longer on the volume.") from None
        final = view.lora_path == c.path
        out.append(Candidate(lora_name=target.removeprefix(LORAS_DIR + "/"),
                             label="final" if final else f"step {c.step}", step=c.step, source=c.path))
    return out


@dataclass(frozen=True)
class Promotion:
    source: str             # volume key of the checkpoint
    target: str             # models/loras/<character>_<version>.safetensors
    lora_name: str          # what inference pages pick: <character>_<version>.safetensors
    version: str
    size: int
    sha256: str | None


def promoted_versions(volume: Volume, character: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(character)}_(v\d+)\.safetensors$")
    _, files = volume.list_dir(f"{LORAS_DIR}/")
    found = [m.group(1) for f in files if (m := pattern.match(f.name))]
    return sorted(found, key=lambda v: int(v[1:]))


def next_version(volume: Volume, character: str) -> str:
    existing = promoted_versions(volume, character)
    return f"v{int(existing[-1][1:]) + 1}" if existing else "v1"


def promote_checkpoint(volume: Volume, checkpoint: Checkpoint, character: str,
                       version: str | None = None) -> Promotion:
    """Copy a checkpoint to models/loras/<character>_<version>.safetensors (never overwriting);
    the caller records who did it."""
    if not _NAME_RE.match(character or ""):
        raise RunError(f"{character!r} is not a valid character name.")
    version = version or next_version(volume, character)
    if not _VERSION_RE.match(version):
        raise RunError(f"The version must look like v1, v2, … (got {version!r}).")
    target = f"{LORAS_DIR}/{character}_{version}.safetensors"
    if volume.exists(target):
        raise RunError(f"{target} already exists; promote as a new version instead of replacing it.")
    try:
        obj = volume.copy(checkpoint.key, target)
    except VolumeNotFound:
        raise RunError(f"{checkpoint.path} is no longer on the volume.") from None
    except VolumeError as exc:
        raise RunError(f"Could not copy the checkpoint: {exc}") from None
    return Promotion(source=checkpoint.key, target=target, lora_name=target.removeprefix(LORAS_DIR + "/"),
                     version=version, size=obj.size, sha256=checkpoint.sha256)


def resume_point(view: RunView, config: Mapping[str, Any] | None) -> Checkpoint | None:
    """The checkpoint a stopped run can continue from, or None.

    AI Toolkit resumes a network (LoRA, LoKr) run from the newest <name>_<step>.safetensors in its
    run folder (worker-contracts §3.1: "resuming picks up the last checkpoint"); the worker puts
    the chosen one there. A run without a network (a full fine-tune) or without an intermediate
    checkpoint has nothing to resume from.
    """
    if view.finished or config is None:
        return None
    try:
        process = config["config"]["process"][0]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(process, Mapping) or not isinstance(process.get("network"), Mapping):
        return None
    intermediate = [c for c in view.checkpoints if re.search(r"_\d{9}\.safetensors$", c.file_name)]
    return intermediate[-1] if intermediate else None
