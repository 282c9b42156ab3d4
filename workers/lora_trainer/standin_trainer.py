"""A stand-in for AI Toolkit's `run.py`: same command line, same output and files, no GPU.

    python standin_trainer.py config.yaml

Written from what AI Toolkit 0.12.26 is documented to do (docs/training-contract.md, "What AI
Toolkit writes"), so the worker's tests and the console's simulator see what a real run shows:

- tqdm bars on stderr, redrawn with "\\r": the dataset scan (no description), "Caching latents to
  disk", "Loading checkpoint shards" while the model loads, "Generating Images" for every sample
  round (total = number of prompts; opened under the training bar with tqdm's cursor codes), and
  the training bar, described by the job name, total = train.steps, postfix "lr: … loss: …";
- the training loop's steps 0 … steps-1: no metric at the first step, "Saving at step k" /
  "Saved to …" / "Removing old save: …" every save_every, samples every sample_every, a baseline
  round before training and a last round after it (at step = steps), then `<name>.safetensors`;
- loss_log.db with AI Toolkit's tables (steps, metric_keys, metrics) and keys ("loss/loss",
  "learning_rate"), committed per step and flushed in batches like its UI logger;
- checkpoints `<name>_<step:09d>.safetensors` pruned to max_step_saves_to_keep (oldest first),
  samples `samples/<ms>__<step:09d>_<prompt index>.jpg`, latents cached in `_latent_cache/`
  beside the dataset images;
- resuming from the newest `<name>_<step>.safetensors` already in its folder.

Environment knobs:
  STANDIN_STEP_SECONDS    real seconds per step (default 0.01)
  STANDIN_CRASH_AT_STEP   exit 1 with a traceback at this step
  STANDIN_IGNORE_SIGTERM  "1": ignore SIGTERM (to exercise the caller's SIGKILL escalation)
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw
from safetensors.numpy import save_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
LOGGER_FLUSH_S = 0.25          # AI Toolkit's UI logger writes its buffer at most this often
LOGGER_FLUSH_ROWS = 256


def fail(message: str) -> None:
    print(f"Error running job: {message}", flush=True)
    print("========================================\nResult:\n - 0 completed jobs\n - 1 failure", flush=True)
    sys.exit(1)


class Bar:
    """A tqdm bar as tqdm draws it on a pipe: "\\r" redraws, cursor codes for a nested position."""

    def __init__(self, desc: str, total: int, *, initial: int = 0, position: int = 0, leave: bool = True):
        self.desc, self.total, self.n, self.initial = desc, total, initial, initial
        self.position, self.leave = position, leave
        self.postfix = ""
        self.started = time.time()
        self._draw()

    def line(self) -> str:
        elapsed = time.time() - self.started
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        remaining = _clock((self.total - self.n) / rate) if rate else "?"
        if rate is None:
            rate_fmt = "?it/s"
        elif rate >= 1:
            rate_fmt = f"{rate:5.2f}it/s"
        else:
            rate_fmt = f"{1 / rate:5.2f}s/it"
        pct = 100 * self.n / self.total if self.total else 100
        filled = int(pct // 10)
        label = f"{self.desc}: " if self.desc else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        return (f"{label}{pct:3.0f}%|{'█' * filled}{' ' * (10 - filled)}| {self.n}/{self.total} "
                f"[{_clock(elapsed)}<{remaining}, {rate_fmt}{postfix}]")

    def _draw(self) -> None:
        text = "\r" + self.line()
        if self.position:
            text = "\n" * self.position + text + "\x1b[A" * self.position
        sys.stderr.write(text)
        sys.stderr.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self._draw()

    def update_to(self, n: int) -> None:
        self.n = n
        self._draw()

    def close(self) -> None:
        if self.leave:
            sys.stderr.write("\n")
        else:
            clear = "\r" + " " * len(self.line()) + "\r"
            sys.stderr.write("\n" * self.position + clear + "\x1b[A" * self.position)
        sys.stderr.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class LossLog:
    """loss_log.db as AI Toolkit's UI logger keeps it: one row per step and key, written in batches."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY", "foreign_keys=ON"):
            self.con.execute(f"PRAGMA {pragma};")
        self.con.execute("BEGIN")
        self.con.execute("CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, wall_time REAL NOT NULL)")
        self.con.execute("CREATE TABLE IF NOT EXISTS metric_keys (key TEXT PRIMARY KEY, first_seen_step INTEGER, "
                         "last_seen_step INTEGER)")
        self.con.execute("CREATE TABLE IF NOT EXISTS metrics (step INTEGER NOT NULL, key TEXT NOT NULL, "
                         "value_real REAL, value_text TEXT, PRIMARY KEY (step, key), "
                         "FOREIGN KEY (step) REFERENCES steps(step) ON DELETE CASCADE)")
        self.con.execute("CREATE INDEX IF NOT EXISTS idx_metrics_key_step ON metrics (key, step)")
        self.con.execute("COMMIT")
        self.pending: list[tuple[int, str, float]] = []
        self.last_flush = time.time()
        self.first = True

    def commit(self, step: int, values: dict[str, float]) -> None:
        if not values:
            return
        if self.first:
            # A resumed run drops what an earlier attempt logged beyond the resume point.
            self.con.execute("DELETE FROM steps WHERE step > ?", (step,))
            self.first = False
        self.pending += [(step, key, value) for key, value in values.items()]
        if len(self.pending) >= LOGGER_FLUSH_ROWS or time.time() - self.last_flush >= LOGGER_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.con.execute("BEGIN")
        for step, key, value in self.pending:
            self.con.execute("INSERT INTO steps(step, wall_time) VALUES (?, ?) ON CONFLICT(step) DO UPDATE SET "
                             "wall_time = excluded.wall_time", (step, time.time()))
            self.con.execute("INSERT INTO metric_keys(key, first_seen_step, last_seen_step) VALUES (?, ?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET "
                             "first_seen_step = MIN(metric_keys.first_seen_step, excluded.first_seen_step), "
                             "last_seen_step = MAX(metric_keys.last_seen_step, excluded.last_seen_step)",
                             (key, step, step))
            self.con.execute("INSERT INTO metrics(step, key, value_real, value_text) VALUES (?, ?, ?, NULL) "
                             "ON CONFLICT(step, key) DO UPDATE SET value_real = excluded.value_real",
                             (step, key, value))
        self.con.execute("COMMIT")
        self.pending.clear()
        self.last_flush = time.time()

    def close(self) -> None:
        self.flush()
        self.con.close()


def save_checkpoint(path: Path, rank: int, step: int, seed: int) -> None:
    rng = np.random.default_rng(seed + step)
    tensors = {}
    for block in range(2):
        prefix = f"diffusion_model.layers.{block}.attention.to_q"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, 64)).astype(np.float16)
        tensors[f"{prefix}.lora_B.weight"] = (rng.standard_normal((64, rank)) * 0.01).astype(np.float16)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", "ss_step": str(step), "software": "standin_trainer"})
    os.replace(tmp, path)
    print(f"Saved to {path}", flush=True)


def prune_saves(folder: Path, name: str, keep: int) -> None:
    saves = sorted(folder.glob(f"{name}_*.safetensors"), key=lambda p: p.stat().st_ctime_ns)
    for old in saves[:-keep] if len(saves) > keep else []:
        print(f"Removing old save: {old}", flush=True)
        old.unlink()


def generate_samples(folder: Path, step: int, prompts: list[str], ext: str, *, position: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bar = Bar("Generating Images", len(prompts), position=position, leave=False)
    for index, prompt in enumerate(prompts):
        # The picture "converges" with the steps: noisy at first, a clean gradient later.
        progress = min(1.0, step / 1000)
        rng = np.random.default_rng(step * 31 + index)
        y, x = np.mgrid[0:256, 0:256] / 256
        base = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x + index)], axis=-1) * 255
        noise = rng.normal(0, 90 * (1 - progress), base.shape)
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        ImageDraw.Draw(image).text((8, 8), f"step {step}\n{prompt[:40]}", fill=(255, 255, 255))
        name = f"{int(time.time() * 1000)}__{step:09d}_{index}.{ext}"
        tmp = folder / f".{name}.tmp"
        image.save(tmp, "JPEG" if ext in ("jpg", "jpeg") else ext.upper())
        os.replace(tmp, folder / name)
        bar.update_to(index + 1)
    bar.close()


def scan_dataset(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if folder.is_dir() else []
    print(f"Dataset: {folder}", flush=True)
    print("  -  Preprocessing image dimensions", flush=True)
    if images:
        bar = Bar("", len(images))
        bar.update_to(len(images))
        bar.close()
    print(f"  -  Found {len(images)} images", flush=True)
    return images


def cache_latents(folder: Path, images: list[Path]) -> None:
    print(f"Caching latents for {folder}", flush=True)
    print(" - Saving latents to disk", flush=True)
    cache = folder / "_latent_cache"
    cache.mkdir(exist_ok=True)
    bar = Bar("Caching latents to disk", len(images))
    for i, image in enumerate(images):
        digest = hashlib.md5(image.name.encode()).hexdigest()[:22]
        save_file({"latent": np.zeros((16, 8, 8), np.float16)}, str(cache / f"{image.stem}_{digest}.safetensors"))
        bar.update_to(i + 1)
    bar.close()


def load_model(model: dict) -> None:
    print(f"Loading {model.get('arch') or 'base'} model {model.get('name_or_path')}", flush=True)
    shards = Bar("Loading checkpoint shards", 3)
    for i in range(3):
        shards.update_to(i + 1)
    shards.close()
    if model.get("quantize"):
        print("Quantizing transformer", flush=True)


def resume_step(folder: Path, name: str) -> int:
    saves = sorted(folder.glob(f"{name}_*.safetensors"), key=lambda p: p.stat().st_ctime_ns)
    if not saves:
        return 0
    print(f"#### IMPORTANT RESUMING FROM {saves[-1]} ####", flush=True)
    print(f"Loading from {saves[-1]}", flush=True)
    m = re.search(r"_(\d{9})\.safetensors$", saves[-1].name)
    return int(m.group(1)) if m else 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: standin_trainer.py CONFIG.yaml", file=sys.stderr)
        return 2
    if os.environ.get("STANDIN_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = yaml.safe_load(Path(argv[1]).read_text(encoding="utf-8"))
    name = config["config"]["name"]
    proc = config["config"]["process"][0]
    print("Running 1 job", flush=True)
    print(f"Running job: {name} (stand-in trainer, no GPU)", flush=True)
    total = int(proc["train"]["steps"])
    save_every = int(proc["save"].get("save_every", 1000))
    keep = int(proc["save"].get("max_step_saves_to_keep", 5))
    sample = proc.get("sample") or {}
    sample_every = int(sample.get("sample_every", 100))
    disable_sampling = bool(proc["train"].get("disable_sampling"))
    prompts = [s["prompt"] for s in sample["samples"]] if "samples" in sample else list(sample.get("prompts", []))
    prompts = [p.replace("[trigger]", str(proc.get("trigger_word", ""))) for p in prompts]
    sampling = bool(prompts) and not disable_sampling
    ext = str(sample.get("format", "jpg")).lower()
    rank = int(proc["network"].get("linear", 16))
    lr = float(proc["train"].get("lr", 1e-4))
    seed = int(sample.get("seed", 42))
    delay = float(os.environ.get("STANDIN_STEP_SECONDS", "0.01"))
    crash_at = int(os.environ["STANDIN_CRASH_AT_STEP"]) if os.environ.get("STANDIN_CRASH_AT_STEP") else None

    out = Path(proc["training_folder"]) / name
    out.mkdir(parents=True, exist_ok=True)
    load_model(proc.get("model") or {})
    dataset = proc["datasets"][0]
    folder = Path(dataset["folder_path"])
    images = scan_dataset(folder)
    if not images:
        fail(f"no images found in dataset folder {folder}")
    if dataset.get("cache_latents_to_disk"):
        cache_latents(folder, images)
    step_num = resume_step(out, name)
    log = LossLog(out / "loss_log.db")
    rng = random.Random(seed + step_num)
    if sampling and step_num <= 1 and not proc["train"].get("skip_first_sample"):
        print("Generating baseline samples before training", flush=True)
        generate_samples(out / "samples", step_num, prompts, ext, position=0)
    bar = Bar(name, total, initial=step_num)
    start = step_num
    for step in range(start, total):
        step_num = step
        if crash_at is not None and step == crash_at:
            print("Traceback (most recent call last):", file=sys.stderr, flush=True)
            print('  File "toolkit/train.py", line 1, in train_step', file=sys.stderr, flush=True)
            print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr,
                  flush=True)
            fail("CUDA out of memory")
        time.sleep(delay)
        loss = 0.06 + 0.32 * math.exp(-step / (total / 4)) + abs(rng.gauss(0, 0.025))
        bar.set_postfix_str(f"lr: {lr:.1e} loss: {loss:.3e}")
        if step != start:
            if save_every and step % save_every == 0:
                print(f"\nSaving at step {step}", flush=True)
                save_checkpoint(out / f"{name}_{step:09d}.safetensors", rank, step, seed)
                prune_saves(out, name, keep)
            if sampling and sample_every and step % sample_every == 0:
                generate_samples(out / "samples", step, prompts, ext, position=1)
            log.commit(step, {"learning_rate": lr, "loss/loss": loss})
        bar.update_to(step)
    step_num = total
    bar.close()
    if sampling:
        generate_samples(out / "samples", step_num, prompts, ext, position=0)
    print(flush=True)          # AI Toolkit prints an empty line before the final save
    save_checkpoint(out / f"{name}.safetensors", rank, step_num, seed)
    log.close()
    print("========================================\nResult:\n - 1 completed job", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
