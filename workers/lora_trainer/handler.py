"""RunPod serverless handler of the `training` endpoint: LoRA training with Ostris AI Toolkit.

Contract (docs/training-contract.md):
  input     {"name", "trigger_word", "dataset_path": "/runpod-volume/datasets/<name>/<version>",
             "output_path": "/runpod-volume/loras/<name>/<run>", "config": {AI Toolkit config}}
  progress  {"step", "total_steps", "loss", "speed", "eta_s", "checkpoints": [...], "samples": [...]}
  output    {"lora_path", "checkpoints": [{"path", "step", "size", "sha256"}],
             "samples": [{"path", "step", "prompt"}], "loss": [[step, loss], ...]}
  failure   {"error": "...", "log_tail": [last trainer lines], + whatever was saved so far}

The handler copies the training set to local disk, writes the AI Toolkit YAML, runs `run.py` as
a subprocess, turns its tqdm lines and loss_log.db into progress updates, copies each checkpoint
and sample to output_path as it appears, and stops the trainer (SIGTERM, then SIGKILL) on
cancel or timeout. This file is self-contained (stdlib + PyYAML + runpod) because it is all the
Docker image copies; the console's simulator runs this same code with a stand-in trainer.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
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
LOG_TAIL_LINES = 40
ERROR_TAIL_LINES = 15
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SAMPLE_EXTENSIONS = IMAGE_EXTENSIONS
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# tqdm as AI Toolkit configures it: "<desc>:  12%|█▏   | 120/1000 [02:01<14:50,  1.01s/it, lr: 1.0e-04 loss: 4.123e-01]".
# The step/total pair is anchored on tqdm's "[elapsed<remaining, rate" block so numbers in
# the description are never mistaken for the step.
STEP_RE = re.compile(
    r"(?P<step>\d+)/(?P<total>\d+)\s*\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+),\s*"
    r"(?P<rate>[\d.]+)\s*(?P<unit>it/s|s/it)(?P<post>[^\]]*)\]")
LOSS_RE = re.compile(r"\bloss:\s*(?P<loss>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")
SAMPLE_RE = re.compile(r"__(?P<step>\d{9})_(?P<index>\d+)\.(?:jpg|jpeg|png|webp)$", re.IGNORECASE)

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
    return TrainingInput(name=name, trigger_word=trigger.strip(), dataset_path=raw["dataset_path"],
                         output_path=raw["output_path"], config=config,
                         dataset_dir=dataset_dir, output_dir=output_dir)


# --- trainer output parsing ------------------------------------------------------------------


@dataclass(frozen=True)
class StepLine:
    step: int
    total: int
    speed: float               # iterations per second
    loss: float | None


def parse_step_line(line: str) -> StepLine | None:
    m = STEP_RE.search(line)
    if not m:
        return None
    rate = float(m["rate"])
    speed = rate if m["unit"] == "it/s" else (1.0 / rate if rate > 0 else 0.0)
    lm = LOSS_RE.search(m["post"])
    loss = float(lm["loss"]) if lm else None
    return StepLine(step=int(m["step"]), total=int(m["total"]), speed=speed, loss=loss)


def read_loss_log(db_path: Path, since_step: int = -1, key: str = "loss") -> list[tuple[int, float]]:
    """New (step, loss) points from AI Toolkit's loss_log.db (tables steps/metric_keys/metrics)."""
    if not db_path.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return []
    try:
        rows = con.execute(
            "SELECT step, value_real FROM metrics WHERE key = ? AND step > ? AND value_real IS NOT NULL "
            "ORDER BY step", (key, since_step)).fetchall()
    except sqlite3.Error:
        # The trainer creates the tables a moment after the file; the next poll reads them.
        return []
    finally:
        con.close()
    return [(int(s), float(v)) for s, v in rows]


# --- the trainer process ---------------------------------------------------------------------


class TrainerProcess:
    """run.py in its own process group, its output read line by line (tqdm's \\r lines too)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]):
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.latest: StepLine | None = None
        self.stdout_losses: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="trainer-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            buf += chunk
            *lines, buf = re.split(rb"[\r\n]", buf)
            for raw in lines:
                self._line(raw)
        if buf:
            self._line(buf)

    def _line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            return
        step = parse_step_line(line)
        with self._lock:
            if step is not None:
                # tqdm redraws the same step several times; keep one tail line per step.
                if self.tail and self.latest is not None and self.latest.step == step.step \
                        and parse_step_line(self.tail[-1]) is not None:
                    self.tail.pop()
                self.latest = step
                if step.loss is not None and (not self.stdout_losses or self.stdout_losses[-1][0] < step.step):
                    self.stdout_losses.append((step.step, step.loss))
            self.tail.append(line)

    def snapshot(self) -> tuple[StepLine | None, list[str]]:
        with self._lock:
            return self.latest, list(self.tail)

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


def _failure(message: str, tail: list[str], collector: Collector, loss: list) -> dict:
    # The last lines also go under the error's first line: a platform that keeps only `error`
    # of a failed job still shows why the trainer stopped.
    return {"error": "\n".join([message, *tail[-ERROR_TAIL_LINES:]]), "log_tail": tail,
            "checkpoints": collector.checkpoints, "samples": collector.samples,
            "loss": [[s, v] for s, v in loss]}


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
        collector = Collector(spec=spec, run_dir=run_dir,
                              prompts=_sample_prompts(config["config"]["process"][0], spec.trigger_word))
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        cmd = _run_command(run_cmd) + [str(config_path)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(trainer_env or {})}
        try:
            trainer = TrainerProcess(cmd, _trainer_cwd(cmd, work), env)
        except OSError as exc:
            return {"error": f"could not start the trainer ({shlex.join(cmd[:-1])}): {exc}", "log_tail": []}

        losses: list[tuple[int, float]] = []
        started = time.monotonic()
        last_sent = 0.0
        last_payload: dict | None = None
        stop_reason: str | None = None
        while True:
            code = trainer.poll()
            latest, _ = trainer.snapshot()
            step = latest.step if latest else 0
            new_files = collector.scan(last_step=step)
            new = read_loss_log(run_dir / "loss_log.db", losses[-1][0] if losses else -1)
            losses.extend(new)
            if code is not None:
                break
            if cancelled():
                stop_reason = "cancelled"
            elif timeout_s is not None and time.monotonic() - started > timeout_s:
                stop_reason = "timeout"
            if stop_reason:
                break
            payload = _progress_payload(latest, spec.total_steps, collector, losses)
            now = time.monotonic()
            if payload != last_payload and (new_files or now - last_sent >= progress_every_s):
                progress(job, payload)
                _write_loss_file(spec.output_dir, losses or trainer.stdout_losses)
                last_sent, last_payload = now, payload
            time.sleep(poll_s)

        if stop_reason:
            trainer.stop(stop_grace_s)
            collector.scan(last_step=step)
            latest, tail = trainer.snapshot()
            series = losses or trainer.stdout_losses
            _write_loss_file(spec.output_dir, series)
            at = f" at step {latest.step} of {spec.total_steps}" if latest else " before the first step"
            if stop_reason == "cancelled":
                return _failure(f"training was cancelled{at}", tail, collector, series)
            return _failure(f"training timed out after {timeout_s:.0f} s{at}", tail, collector, series)

        code = trainer.stop(stop_grace_s)
        latest, tail = trainer.snapshot()
        losses.extend(read_loss_log(run_dir / "loss_log.db", losses[-1][0] if losses else -1))
        series = losses or trainer.stdout_losses
        last_step = latest.step if latest else 0
        if code != 0:
            collector.scan(last_step=last_step)
            _write_loss_file(spec.output_dir, series)
            return _failure(f"AI Toolkit exited with code {code}{_error_hint(tail)}", tail, collector, series)
        collector.scan(force=True, last_step=last_step)
        _write_loss_file(spec.output_dir, series)
        if collector.final is None:
            return _failure(f"AI Toolkit finished but wrote no {spec.name}.safetensors", tail, collector, series)
        return {"lora_path": collector.final["path"], "checkpoints": collector.checkpoints,
                "samples": collector.samples, "loss": [[s, v] for s, v in series]}
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


def _progress_payload(latest: StepLine | None, total: int, collector: Collector,
                      losses: list[tuple[int, float]]) -> dict:
    # Two sources that lag each other a little: tqdm's line (step, speed, loss) and loss_log.db.
    step = latest.step if latest else 0
    loss = latest.loss if latest else None
    if losses and (losses[-1][0] > step or loss is None):
        step, loss = max(step, losses[-1][0]), losses[-1][1]
    speed = round(latest.speed, 4) if latest and latest.speed else None
    eta = round((total - step) / speed) if speed else None
    return {"step": step, "total_steps": latest.total if latest else total, "loss": loss,
            "speed": speed, "eta_s": eta, "checkpoints": list(collector.checkpoints),
            "samples": list(collector.samples)}


def _write_loss_file(output_dir: Path, series: list[tuple[int, float]]) -> None:
    # The progress message carries only the latest loss; the console draws the live curve from
    # this file on the volume.
    tmp = output_dir / ".loss.json.partial"
    tmp.write_text(json.dumps({"loss": [[s, v] for s, v in series]}), encoding="utf-8")
    os.replace(tmp, output_dir / "loss.json")


# --- runpod entry point ----------------------------------------------------------------------


async def serverless_handler(job: dict) -> dict:
    """What runpod.serverless.start runs.

    The SDK calls a plain function on its event loop, which would block the loop for the whole
    training run, including the stop-signal poll through which RunPod delivers cancel and
    execution timeout. Running `handler` in a thread keeps the loop free; when the SDK cancels
    this task, or the container gets SIGTERM, the stop flag ends the trainer cleanly.
    """
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        stop.set()
        if callable(previous):
            previous(signum, frame)

    with contextlib.suppress(ValueError):   # only the main thread may set signal handlers
        signal.signal(signal.SIGTERM, on_sigterm)
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
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    import runpod

    print(f"lora_trainer worker starting (python {sys.version.split()[0]})", flush=True)
    runpod.serverless.start({"handler": serverless_handler})
