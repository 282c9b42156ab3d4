"""RunPod serverless handler of the `training` endpoint: LoRA training with Ostris AI Toolkit.

Contract (docs/training-contract.md):
  input     {"name", "trigger_word", "dataset_path": "/runpod-volume/datasets/<name>/<version>",
             "output_path": "/runpod-volume/loras/<name>/<run>", "config": {AI Toolkit config},
             "resume_from"?: "/runpod-volume/loras/<name>/<run>/<name>_<step:09d>.safetensors"}
  progress  {"phase", "step", "total_steps", "loss", "learning_rate", "speed", "eta_s",
             "checkpoints": [...], "samples": [...], "log_tail": [last trainer lines]}
  output    {"lora_path", "checkpoints": [{"path", "step", "size", "sha256"}],
             "samples": [{"path", "step", "prompt"}], "loss": [[step, loss], ...], "learning_rate": [...]}
  failure   {"error": "...", "log_tail": [last trainer lines], + whatever was saved so far}

The handler copies the training set to local disk, writes the AI Toolkit YAML, runs `run.py` as
a subprocess and reads what AI Toolkit really writes: the step from its training bar only (the
tqdm bar named after the job, with train.steps as total; the dataset scan, latent caching, model
loading and sampling bars only set the phase), the loss from loss_log.db (key "loss/loss"), each
checkpoint and sample copied to output_path as it appears. It stops the trainer (SIGTERM, then
SIGKILL) on cancel, timeout, SIGTERM or Ctrl-C. This file is self-contained (stdlib + PyYAML +
runpod) because it is all the Docker image copies; the console's simulator runs this same code
with a stand-in trainer.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

VOLUME_MOUNT = "/runpod-volume"
DEFAULT_RUN_CMD = "python /app/ai-toolkit/run.py"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LOG_TAIL_LINES = 40
ERROR_TAIL_LINES = 15
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SAMPLE_EXTENSIONS = IMAGE_EXTENSIONS
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PROGRESS_TAIL_LINES = 12
# One tqdm bar redraw, as tqdm formats it by default:
#   "<desc>:  12%|█▏        | 120/1000 [02:01<14:50,  1.01s/it, <postfix>]"
# The "n/total [elapsed<remaining, rate" block anchors the match, so numbers in a description are
# never taken for the position. The rate is "?" until tqdm has measured one.
BAR_RE = re.compile(
    r"^(?:(?P<desc>.*?):\s*)?\d{1,3}%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:]+|\?),\s*(?P<rate>[\d.]+|\?)\s*(?P<unit>it/s|s/it)"
    r"(?P<post>[^\]]*)\]")
# AI Toolkit's training bar postfix ("lr: 1.0e-04 loss: 4.123e-01"): shown with 4 digits, and drawn
# once before the bar moves to the step it belongs to, so it is only the fallback of loss_log.db.
LOSS_RE = re.compile(r"\bloss:\s*(?P<loss>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")
# tqdm moves the cursor with ANSI codes when a second bar (sampling) opens under the training bar.
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Printed above the training bar, which still shows the step before (it moves once the step ends).
SAVING_RE = re.compile(r"^Saving at step (?P<step>\d+)")
SAMPLE_RE = re.compile(r"__(?P<step>\d{9})_(?P<index>\d+)\.(?:jpg|jpeg|png|webp)$", re.IGNORECASE)
# loss_log.db keys AI Toolkit writes: the loss dict under "loss/<name>", plus "learning_rate".
LOSS_KEY = "loss/loss"
LR_KEY = "learning_rate"
LOADING, CACHING, TRAINING, SAMPLING, SAVING = "loading", "caching latents", "training", "sampling", "saving"
# What AI Toolkit prints when it enters each phase other than training (bar descriptions and lines
# of jobs/process/BaseSDTrainProcess.py, toolkit/dataloader_mixins.py, the model's generate_images).
PHASE_MARKERS = (
    ("Caching latents", CACHING),
    ("Generating Images", SAMPLING),
    ("Generating Samples", SAMPLING),
    ("Generating baseline samples", SAMPLING),
    ("Generating first sample", SAMPLING),
    ("Saving at step", SAVING),
    ("Saved to ", SAVING),
)

ProgressFn = Callable[[dict, dict], None]


class InputError(ValueError):
    """The job input does not follow the training contract; the message says which field."""


@dataclass(frozen=True)
class TrainingInput:
    name: str
    trigger_word: str
    dataset_path: str          # as the console wrote it: /runpod-volume/...
    output_path: str
    config: dict
    dataset_dir: Path          # the same places on this machine's filesystem
    output_dir: Path
    resume_file: Path | None = None   # a checkpoint of an earlier run to continue from

    @property
    def process(self) -> dict:
        return self.config["config"]["process"][0]

    @property
    def total_steps(self) -> int:
        return int(self.process["train"]["steps"])


def _map_path(value: object, field_name: str, volume_root: Path, under: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"input.{field_name} must be a path under {VOLUME_MOUNT}/{under}/")
    path = PurePosixPath(value)
    if ".." in path.parts or not path.is_absolute():
        raise InputError(f"input.{field_name} must be an absolute path without '..'")
    try:
        rel = path.relative_to(f"{VOLUME_MOUNT}/{under}")
    except ValueError:
        raise InputError(f"input.{field_name} must be under {VOLUME_MOUNT}/{under}/, got {value}") from None
    if not rel.parts:
        raise InputError(f"input.{field_name} must name a folder inside {VOLUME_MOUNT}/{under}/")
    return volume_root / under / Path(*rel.parts)


def parse_input(raw: object, volume_root: Path) -> TrainingInput:
    if not isinstance(raw, dict):
        raise InputError("input must be an object with name, trigger_word, dataset_path, output_path, config")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError("input.name must be a plain name (letters, digits, _ . -)")
    trigger = raw.get("trigger_word")
    if not isinstance(trigger, str) or not trigger.strip():
        raise InputError("input.trigger_word must be a non-empty string")
    config = raw.get("config")
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise InputError(f"input.config is not valid YAML/JSON: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise InputError("input.config must be an AI Toolkit config with a `config:` mapping")
    processes = config["config"].get("process")
    if not isinstance(processes, list) or not processes or not isinstance(processes[0], dict):
        raise InputError("input.config.config.process must be a list with one process")
    proc = processes[0]
    for key in ("network", "train", "model", "datasets", "save"):
        if not isinstance(proc.get(key), (dict, list)):
            raise InputError(f"input.config process[0].{key} is missing")
    steps = proc["train"].get("steps") if isinstance(proc["train"], dict) else None
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise InputError("input.config process[0].train.steps must be a whole number above 0")
    dataset_dir = _map_path(raw.get("dataset_path"), "dataset_path", volume_root, "datasets")
    output_dir = _map_path(raw.get("output_path"), "output_path", volume_root, "loras")
    if not dataset_dir.is_dir():
        raise InputError(f"the training set {raw['dataset_path']} does not exist on the volume")
    resume_file = None
    if raw.get("resume_from") is not None:
        resume_file = _map_path(raw["resume_from"], "resume_from", volume_root, "loras")
        if not re.search(r"_\d{9}\.safetensors$", resume_file.name) or not resume_file.is_file():
            raise InputError(f"input.resume_from must be an existing checkpoint <name>_<step>.safetensors, "
                             f"got {raw['resume_from']}")
    return TrainingInput(name=name, trigger_word=trigger.strip(), dataset_path=raw["dataset_path"],
                         output_path=raw["output_path"], config=config,
                         dataset_dir=dataset_dir, output_dir=output_dir, resume_file=resume_file)


# --- trainer output parsing ------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One redraw of a tqdm bar."""

    desc: str
    n: int
    total: int
    speed: float | None        # iterations per second; None until tqdm has a rate
    remaining_s: float | None
    loss: float | None         # from AI Toolkit's postfix, if it shows one


def _seconds(clock: str) -> float | None:
    if not clock or clock == "?":
        return None
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return float(total)


def clean_line(raw: str) -> str:
    return ANSI_RE.sub("", raw).strip()


def parse_bar(line: str) -> Bar | None:
    m = BAR_RE.search(line)
    if not m:
        return None
    speed = None
    if m["rate"] != "?":
        rate = float(m["rate"])
        speed = rate if m["unit"] == "it/s" else (1.0 / rate if rate > 0 else None)
    lm = LOSS_RE.search(m["post"])
    return Bar(desc=(m["desc"] or "").strip(), n=int(m["n"]), total=int(m["total"]), speed=speed,
               remaining_s=_seconds(m["remaining"]), loss=float(lm["loss"]) if lm else None)


@dataclass(frozen=True)
class TrainingBar:
    """Which of AI Toolkit's bars is the training one: its description is the job's name and its
    total is train.steps (dataset scan, latent caching, model loading and sampling bars are not)."""

    name: str
    total_steps: int

    def matches(self, bar: Bar) -> bool:
        if bar.total != self.total_steps or not bar.desc.startswith(self.name):
            return False
        # A job named like the start of another bar ("Gen…") still never takes that bar for its own.
        return bar.desc == self.name or not any(bar.desc.startswith(marker) for marker, _ in PHASE_MARKERS)


def phase_of(line: str, bar: Bar | None, training: TrainingBar) -> str | None:
    """The phase a trainer line announces, or None when it changes nothing."""
    if bar is not None and training.matches(bar):
        return TRAINING
    for marker, phase in PHASE_MARKERS:
        if line.startswith(marker) or (bar is not None and bar.desc.startswith(marker)):
            return phase
    return None


def read_metrics(db_path: Path, since: dict[str, int]) -> dict[str, list[tuple[int, float]]]:
    """New (step, value) points per key from AI Toolkit's loss_log.db (tables steps, metric_keys,
    metrics); `since` maps each wanted key to the last step already read."""
    found: dict[str, list[tuple[int, float]]] = {key: [] for key in since}
    if not db_path.exists():
        return found
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return found
    try:
        for key, after in since.items():
            rows = con.execute(
                "SELECT step, value_real FROM metrics WHERE key = ? AND step > ? AND value_real IS NOT NULL "
                "ORDER BY step", (key, after)).fetchall()
            found[key] = [(int(s), float(v)) for s, v in rows]
    except sqlite3.Error:
        # The trainer creates the tables a moment after the file; the next poll reads them.
        pass
    finally:
        con.close()
    return found


# --- the trainer process ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerState:
    phase: str
    bar: Bar | None            # the training bar's latest redraw
    tail: list[str]
    saving_step: int = 0       # the step of the last "Saving at step N"


class TrainerProcess:
    """run.py in its own process group, its output read line by line (tqdm's \\r redraws too)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], training: TrainingBar):
        self.training = training
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.phase = LOADING
        self.latest: Bar | None = None
        self.saving_step = 0
        self.stdout_losses: list[tuple[int, float]] = []
        self._tail_bar: str | None = None        # description of the bar the last tail line shows
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="trainer-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        stdout = self.proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # a binary pipe with Popen's default buffering
        while chunk := stdout.read1(65536):
            buf += chunk
            *lines, buf = re.split(rb"[\r\n]", buf)
            for raw in lines:
                self._line(raw)
        if buf:
            self._line(buf)

    def _line(self, raw: bytes) -> None:
        line = clean_line(raw.decode("utf-8", "replace"))
        if not line:
            return
        bar = parse_bar(line)
        with self._lock:
            phase = phase_of(line, bar, self.training)
            if phase is not None:
                self.phase = phase
            if saving := SAVING_RE.match(line):
                self.saving_step = int(saving["step"])
            if bar is not None and self.training.matches(bar):
                self.latest = bar
                if bar.loss is not None and (not self.stdout_losses or self.stdout_losses[-1][0] < bar.n):
                    self.stdout_losses.append((bar.n, bar.loss))
            # tqdm redraws a bar many times: the tail keeps its latest redraw only.
            if bar is not None and self.tail and self._tail_bar == bar.desc:
                self.tail.pop()
            self._tail_bar = bar.desc if bar is not None else None
            self.tail.append(line)

    def snapshot(self) -> TrainerState:
        with self._lock:
            return TrainerState(phase=self.phase, bar=self.latest, tail=list(self.tail),
                                saving_step=self.saving_step)

    def poll(self) -> int | None:
        return self.proc.poll()

    def finish_output(self, timeout: float = 5.0) -> None:
        self._reader.join(timeout)

    def stop(self, grace_s: float) -> int:
        """SIGTERM the whole group, SIGKILL it if still alive after `grace_s`; returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            # run.py is gone, but dataloader workers it forked may linger in the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish_output()
        return self.proc.returncode


# --- collecting results ----------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


@dataclass
class Collector:
    """Finds new checkpoints and samples in the trainer's folder and copies them to output_path."""

    spec: TrainingInput
    run_dir: Path                                   # <training_folder>/<name>
    prompts: list[str]
    checkpoints: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    final: dict | None = None
    _seen_sizes: dict[Path, int] = field(default_factory=dict)
    _copied: set[str] = field(default_factory=set)

    def _logical(self, *parts: str) -> str:
        return "/".join([self.spec.output_path.rstrip("/"), *parts])

    def _ready(self, path: Path, force: bool) -> bool:
        """A file is taken once its size held still between two scans (the trainer finished it)."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        previous = self._seen_sizes.get(path)
        self._seen_sizes[path] = size
        return size > 0 and (force or previous == size)

    def scan(self, *, force: bool = False, last_step: int = 0) -> bool:
        """Copy whatever is complete; returns True when anything new was copied."""
        changed = False
        if not self.run_dir.is_dir():
            return False
        ckpt_re = re.compile(rf"^{re.escape(self.spec.name)}_(\d{{9}})\.safetensors$")
        for path in sorted(self.run_dir.glob("*.safetensors")):
            if path.name in self._copied:
                continue
            m = ckpt_re.match(path.name)
            is_final = path.name == f"{self.spec.name}.safetensors"
            # The final file is only final once run.py has exited cleanly.
            if not (m or (is_final and force)) or not self._ready(path, force):
                continue
            _copy_atomic(path, self.spec.output_dir / path.name)
            entry = {"path": self._logical(path.name),
                     "step": int(m.group(1)) if m else max(last_step, self.spec.total_steps),
                     "size": path.stat().st_size, "sha256": _sha256(path)}
            self._copied.add(path.name)
            if is_final:
                self.final = entry
            self.checkpoints.append(entry)
            self.checkpoints.sort(key=lambda c: c["step"])   # stable: the final file stays last
            changed = True
        sample_dir = self.run_dir / "samples"
        if sample_dir.is_dir():
            for path in sorted(sample_dir.iterdir()):
                m = SAMPLE_RE.search(path.name)
                if not m or path.name in self._copied or not self._ready(path, force):
                    continue
                _copy_atomic(path, self.spec.output_dir / "samples" / path.name)
                index = int(m["index"])
                prompt = self.prompts[index] if index < len(self.prompts) else ""
                self.samples.append({"path": self._logical("samples", path.name),
                                     "step": int(m["step"]), "prompt": prompt})
                self._copied.add(path.name)
                changed = True
        return changed


def _sample_prompts(process: dict, trigger: str) -> list[str]:
    sample = process.get("sample") or {}
    if isinstance(sample.get("samples"), list):
        prompts = [str(s.get("prompt", "")) for s in sample["samples"] if isinstance(s, dict)]
    else:
        prompts = [str(p) for p in sample.get("prompts") or []]
    return [p.replace("[trigger]", trigger) for p in prompts]


# --- the handler -----------------------------------------------------------------------------


def _default_progress(job: dict, payload: dict) -> None:
    import runpod  # deferred: importing the SDK starts nothing, but is slow and needs its config

    runpod.serverless.progress_update(job, payload)


def _run_command(run_cmd: list[str] | str | None) -> list[str]:
    if run_cmd is None:
        run_cmd = os.environ.get("AITK_RUN_CMD") or DEFAULT_RUN_CMD
    return shlex.split(run_cmd) if isinstance(run_cmd, str) else list(run_cmd)


def _trainer_cwd(cmd: list[str], fallback: Path) -> Path:
    # run.py puts its working directory on sys.path to import `toolkit`, so it must run from
    # the AI Toolkit checkout.
    if os.environ.get("AITK_CWD"):
        return Path(os.environ["AITK_CWD"])
    for arg in cmd:
        if arg.endswith("run.py") and Path(arg).parent.is_dir():
            return Path(arg).parent
    return fallback


def _prepare_dataset(src: Path, dst: Path) -> int:
    """Copy images + captions to local disk: AI Toolkit writes latent caches beside the images,
    and a training set version on the volume must never change."""
    dst.mkdir(parents=True)
    count = 0
    for path in sorted(src.iterdir()):
        if not path.is_file() or path.is_symlink():
            continue
        lower = path.name.lower()
        if lower.endswith(IMAGE_EXTENSIONS):
            count += 1
        elif not lower.endswith(".txt"):
            continue
        shutil.copyfile(path, dst / path.name)
    return count


def write_config(spec: TrainingInput, dataset_dir: Path, training_folder: Path, path: Path) -> dict:
    """The YAML run.py reads: the console's config with the worker-owned paths filled in."""
    config = json.loads(json.dumps(spec.config))   # deep copy of plain JSON data
    config["config"]["name"] = spec.name
    proc = config["config"]["process"][0]
    proc["training_folder"] = str(training_folder)
    proc["trigger_word"] = spec.trigger_word
    for ds in proc["datasets"]:
        ds["folder_path"] = str(dataset_dir)
    proc.setdefault("logging", {}).setdefault("use_ui_logger", True)
    proc["logging"].setdefault("log_every", 1)
    # Checkpoints leave the machine through output_path only; never to a hub.
    proc["save"]["push_to_hub"] = False
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config


def _failure(message: str, tail: list[str], collector: Collector, series: dict, *, pad: bool) -> dict:
    # A crash's last lines also go under the error's first line: a platform that keeps only `error`
    # of a failed job still shows why the trainer stopped. A stop the user or the time limit asked
    # for needs no such explanation, so its message stays one line.
    error = "\n".join([message, *tail[-ERROR_TAIL_LINES:]]) if pad else message
    return {"error": error, "log_tail": tail, "checkpoints": collector.checkpoints,
            "samples": collector.samples, **_series_output(series)}


class Metrics:
    """The loss (and learning rate) curves, from loss_log.db, read a little more at every poll."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.series: dict[str, list[tuple[int, float]]] = {LOSS_KEY: [], LR_KEY: []}

    def poll(self) -> None:
        since = {key: points[-1][0] if points else -1 for key, points in self.series.items()}
        for key, points in read_metrics(self.db_path, since).items():
            self.series[key].extend(points)

    def with_fallback(self, stdout_losses: list[tuple[int, float]]) -> dict[str, list[tuple[int, float]]]:
        # Without loss_log.db (use_ui_logger off, or an AI Toolkit that does not write it) the
        # 4-digit loss of the bar is all there is.
        if self.series[LOSS_KEY] or not stdout_losses:
            return self.series
        return {**self.series, LOSS_KEY: list(stdout_losses)}


def _series_output(series: dict[str, list[tuple[int, float]]]) -> dict:
    out = {"loss": [[s, v] for s, v in series[LOSS_KEY]]}
    if series.get(LR_KEY):
        out["learning_rate"] = [[s, v] for s, v in series[LR_KEY]]
    return out


def _place_resume_checkpoint(spec: TrainingInput, run_dir: Path) -> None:
    """AI Toolkit resumes from the newest <name>_<step>.safetensors in its run folder."""
    if spec.resume_file is None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    m = re.search(r"_(\d{9})\.safetensors$", spec.resume_file.name)
    assert m is not None  # parse_input accepts only such names
    shutil.copyfile(spec.resume_file, run_dir / f"{spec.name}_{m.group(1)}.safetensors")


def handler(job: dict, *, progress: ProgressFn | None = None,
            cancelled: Callable[[], bool] | None = None,
            run_cmd: list[str] | str | None = None,
            volume_root: Path | str | None = None,
            work_root: Path | str | None = None,
            timeout_s: float | None = None,
            trainer_env: dict[str, str] | None = None,
            poll_s: float = 0.5,
            progress_every_s: float = 2.0,
            stop_grace_s: float = 15.0) -> dict:
    """Train one LoRA. Everything after `job` is injectable so tests and the simulator can run
    this exact code: progress(job, payload) defaults to runpod's progress_update; cancelled()
    to never; timeout_s to env TRAINING_TIMEOUT_S (unset = RunPod's executionTimeout rules)."""
    progress = progress or _default_progress
    cancelled = cancelled or (lambda: False)
    volume_root = Path(volume_root or os.environ.get("RUNPOD_VOLUME_ROOT", VOLUME_MOUNT))
    if timeout_s is None and os.environ.get("TRAINING_TIMEOUT_S"):
        timeout_s = float(os.environ["TRAINING_TIMEOUT_S"])
    try:
        spec = parse_input(job.get("input"), volume_root)
    except InputError as exc:
        return {"error": f"invalid input: {exc}", "log_tail": []}

    work = Path(tempfile.mkdtemp(prefix="lora-train-", dir=work_root))
    trainer: TrainerProcess | None = None
    try:
        dataset_copy = work / "dataset"
        if _prepare_dataset(spec.dataset_dir, dataset_copy) == 0:
            return {"error": f"the training set {spec.dataset_path} holds no images", "log_tail": []}
        training_folder = work / "output"
        config_path = work / "config.yaml"
        config = write_config(spec, dataset_copy, training_folder, config_path)
        run_dir = training_folder / spec.name
        _place_resume_checkpoint(spec, run_dir)
        collector = Collector(spec=spec, run_dir=run_dir,
                              prompts=_sample_prompts(config["config"]["process"][0], spec.trigger_word))
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        cmd = _run_command(run_cmd) + [str(config_path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(trainer_env or {})}
        try:
            trainer = TrainerProcess(cmd, _trainer_cwd(cmd, work), env,
                                     TrainingBar(spec.name, spec.total_steps))
        except OSError as exc:
            return {"error": f"could not start the trainer ({shlex.join(cmd[:-1])}): {exc}", "log_tail": []}

        metrics = Metrics(run_dir / "loss_log.db")
        started = time.monotonic()
        last_sent = 0.0
        last_payload: dict | None = None
        stop_reason: str | None = None
        while True:
            code = trainer.poll()
            state = trainer.snapshot()
            new_files = collector.scan(last_step=_step(state, metrics, collector))
            metrics.poll()
            if code is not None:
                break
            if cancelled():
                stop_reason = "cancelled"
            elif timeout_s is not None and time.monotonic() - started > timeout_s:
                stop_reason = "timeout"
            if stop_reason:
                break
            payload = _progress_payload(state, spec.total_steps, collector, metrics)
            now = time.monotonic()
            if payload != last_payload and (new_files or now - last_sent >= progress_every_s):
                progress(job, payload)
                _write_loss_file(spec.output_dir, metrics.with_fallback(trainer.stdout_losses))
                last_sent, last_payload = now, payload
            time.sleep(poll_s)

        if stop_reason:
            trainer.stop(stop_grace_s)
            metrics.poll()
            state = trainer.snapshot()
            step = _step(state, metrics, collector)
            collector.scan(last_step=step)
            series = metrics.with_fallback(trainer.stdout_losses)
            _write_loss_file(spec.output_dir, series)
            at = f" at step {step} of {spec.total_steps}" if state.bar or step else " before the first step"
            if stop_reason == "cancelled":
                return _failure(f"training cancelled{at}", state.tail, collector, series, pad=False)
            return _failure(f"training timed out after {timeout_s:.0f} s{at}", state.tail, collector, series,
                            pad=False)

        code = trainer.stop(stop_grace_s)
        metrics.poll()
        state = trainer.snapshot()
        series = metrics.with_fallback(trainer.stdout_losses)
        last_step = _step(state, metrics, collector)
        if code != 0:
            collector.scan(last_step=last_step)
            _write_loss_file(spec.output_dir, series)
            return _failure(f"AI Toolkit exited with code {code}{_error_hint(state.tail)}", state.tail, collector,
                            series, pad=True)
        collector.scan(force=True, last_step=last_step)
        _write_loss_file(spec.output_dir, series)
        if collector.final is None:
            return _failure(f"AI Toolkit finished but wrote no {spec.name}.safetensors", state.tail, collector,
                            series, pad=True)
        return {"lora_path": collector.final["path"], "checkpoints": collector.checkpoints,
                "samples": collector.samples, **_series_output(series)}
    finally:
        # Also reached when progress() raises (the simulator's cancellation): no orphan trainer.
        if trainer is not None and trainer.poll() is None:
            trainer.stop(stop_grace_s)
        shutil.rmtree(work, ignore_errors=True)


def _error_hint(tail: list[str]) -> str:
    for line in reversed(tail):
        if "Error" in line or "error" in line:
            return f": {line.strip()[:300]}"
    return ""


def _step(state: TrainerState, metrics: Metrics, collector: Collector) -> int:
    """The step reached. The training bar and loss_log.db count the same steps, but AI Toolkit
    saves and samples step k before it logs k and moves the bar to it; the checkpoint and the
    samples are named after k, so while it saves or samples, k is the step."""
    losses = metrics.series[LOSS_KEY]
    samples = [s["step"] for s in collector.samples]
    bar = state.bar
    if bar is not None and bar.n == bar.total - 1 and state.phase != TRAINING:
        # Its loop runs steps 0 … total-1 and the bar stops at total-1: training is over, and
        # the last round of samples and the final save carry step = total.
        return bar.total
    return max(state.bar.n if state.bar else 0, losses[-1][0] if losses else 0, state.saving_step,
               max(samples, default=0))


def _progress_payload(state: TrainerState, total: int, collector: Collector, metrics: Metrics) -> dict:
    bar = state.bar
    step = _step(state, metrics, collector)
    losses, rates = metrics.series[LOSS_KEY], metrics.series[LR_KEY]
    loss = losses[-1][1] if losses else (bar.loss if bar else None)
    speed = round(bar.speed, 4) if bar and bar.speed else None
    eta: int | None
    if bar and bar.remaining_s is not None and bar.n == step:
        eta = round(bar.remaining_s)
    else:
        eta = round((total - step) / speed) if speed else None
    return {"phase": state.phase, "step": step, "total_steps": total, "loss": loss,
            "learning_rate": rates[-1][1] if rates else None, "speed": speed, "eta_s": eta,
            "checkpoints": list(collector.checkpoints), "samples": list(collector.samples),
            "log_tail": state.tail[-PROGRESS_TAIL_LINES:]}


def _write_loss_file(output_dir: Path, series: dict[str, list[tuple[int, float]]]) -> None:
    # The progress message carries only the latest loss; the console draws the live curve from
    # this file on the volume. It stays there after a cancel, so a stopped run keeps its chart.
    tmp = output_dir / ".loss.json.partial"
    tmp.write_text(json.dumps(_series_output(series)), encoding="utf-8")
    os.replace(tmp, output_dir / "loss.json")


# --- runpod entry point ----------------------------------------------------------------------


async def serverless_handler(job: dict) -> dict:
    """What runpod.serverless.start runs.

    The SDK calls a plain function on its event loop, which would block the loop for the whole
    training run, including the stop-signal poll through which RunPod delivers cancel and
    execution timeout. Running `handler` in a thread keeps the loop free; when the SDK cancels
    this task, the container gets SIGTERM, or a developer presses Ctrl-C (SIGINT) on a worker
    under `--rp_serve_api`, the stop flag ends the trainer cleanly. The trainer runs in its own
    process group, so the terminal's Ctrl-C never reaches it directly: without this it would
    train on, orphaned, after the worker exits.
    """
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_stop_signal(signum, frame):
        stop.set()
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)

    with contextlib.suppress(ValueError):   # only the main thread may set signal handlers
        for sig in STOP_SIGNALS:
            signal.signal(sig, on_stop_signal)
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(None, functools.partial(handler, job, cancelled=stop.is_set))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.shield(work)        # let the trainer stop and partial results be copied
        raise
    finally:
        with contextlib.suppress(ValueError):
            for sig, handler_before in previous.items():
                signal.signal(sig, handler_before)


if __name__ == "__main__":
    import runpod

    print(f"lora_trainer worker starting (python {sys.version.split()[0]})", flush=True)
    runpod.serverless.start({"handler": serverless_handler})
