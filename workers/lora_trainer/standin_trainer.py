"""A stand-in for AI Toolkit's `run.py`: same command line, same files, no GPU.

    python standin_trainer.py config.yaml

It reads the job YAML and behaves like a LoRA training run from the outside: caches "latents"
in `_latent_cache/` beside the dataset images (when cache_latents_to_disk), prints
AI-Toolkit-like lines (tqdm step lines on stderr with "\\r", like tqdm), writes loss_log.db with
AI Toolkit's schema, a valid tiny `.safetensors` checkpoint `<name>_<step:09d>.safetensors`
every save_every steps (pruned to max_step_saves_to_keep), the final `<name>.safetensors`, and
sample PNGs named like AI Toolkit's (`<ms>__<step:09d>_<i>.png`) before step 1 and every
sample_every steps. Used by the worker's tests and by the console's simulator.

Environment knobs:
  STANDIN_STEP_SECONDS    real seconds per step (default 0.01)
  STANDIN_CRASH_AT_STEP   exit 1 with a traceback at this step
  STANDIN_IGNORE_SIGTERM  "1": ignore SIGTERM (to exercise the caller's SIGKILL escalation)
"""
from __future__ import annotations

import math
import os
import random
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


def fail(message: str) -> None:
    print(f"Error running job: {message}", flush=True)
    print("========================================\nResult:\n - 0 completed jobs\n - 1 failure", flush=True)
    sys.exit(1)


def open_loss_log(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL;")
    con.execute("PRAGMA synchronous=NORMAL;")   # as AI Toolkit sets it: no fsync per step
    con.execute("CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, wall_time REAL NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS metric_keys (key TEXT PRIMARY KEY, first_seen_step INTEGER, "
                "last_seen_step INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS metrics (step INTEGER NOT NULL, key TEXT NOT NULL, value_real REAL, "
                "value_text TEXT, PRIMARY KEY (step, key), FOREIGN KEY (step) REFERENCES steps(step) "
                "ON DELETE CASCADE)")
    return con


def log_metrics(con: sqlite3.Connection, step: int, metrics: dict[str, float]) -> None:
    con.execute("BEGIN")
    con.execute("INSERT OR REPLACE INTO steps(step, wall_time) VALUES (?, ?)", (step, time.time()))
    for key, value in metrics.items():
        con.execute("INSERT OR REPLACE INTO metrics(step, key, value_real, value_text) VALUES (?, ?, ?, NULL)",
                    (step, key, value))
        con.execute("INSERT INTO metric_keys(key, first_seen_step, last_seen_step) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET last_seen_step = excluded.last_seen_step", (key, step, step))
    con.execute("COMMIT")


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


def save_sample(folder: Path, step: int, index: int, prompt: str, size: int = 256) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # The picture "converges" with the steps: noisy at first, a clean gradient later.
    progress = min(1.0, step / 1000)
    rng = np.random.default_rng(step * 31 + index)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x + index)], axis=-1) * 255
    noise = rng.normal(0, 90 * (1 - progress), base.shape)
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    ImageDraw.Draw(image).text((8, 8), f"step {step}\n{prompt[:40]}", fill=(255, 255, 255))
    name = f"{int(time.time() * 1000)}__{step:09d}_{index}.png"
    tmp = folder / f".{name}.tmp"
    image.save(tmp, "PNG")
    os.replace(tmp, folder / name)


def bar(step: int, total: int, started: float, desc: str, lr: float, loss: float) -> str:
    elapsed = time.time() - started
    rate = step / elapsed if elapsed > 0 else 0.0
    remaining = (total - step) / rate if rate > 0 else 0
    fmt = lambda s: f"{int(s // 60):02d}:{int(s % 60):02d}"  # noqa: E731
    pct = int(100 * step / total)
    filled = "█" * (pct // 10) + " " * (10 - pct // 10)
    speed = f"{rate:.2f}it/s" if rate >= 1 else f"{(1 / rate if rate else 0):.2f}s/it"
    return (f"{desc}: {pct:3d}%|{filled}| {step}/{total} [{fmt(elapsed)}<{fmt(remaining)}, {speed}, "
            f"lr: {lr:.1e} loss: {loss:.3e}]")


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
    folder = Path(proc["datasets"][0]["folder_path"])
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS] if folder.is_dir() else []
    if not images:
        fail(f"no images found in dataset folder {folder}")
    total = int(proc["train"]["steps"])
    save_every = int(proc["save"].get("save_every", 1000))
    keep = int(proc["save"].get("max_step_saves_to_keep", 5))
    sample = proc.get("sample") or {}
    sample_every = int(sample.get("sample_every", 100))
    prompts = [s["prompt"] for s in sample["samples"]] if "samples" in sample else list(sample.get("prompts", []))
    prompts = [p.replace("[trigger]", str(proc.get("trigger_word", ""))) for p in prompts]
    rank = int(proc["network"].get("linear", 16))
    lr = float(proc["train"].get("lr", 1e-4))
    seed = int(sample.get("seed", 42))
    delay = float(os.environ.get("STANDIN_STEP_SECONDS", "0.01"))
    crash_at = int(os.environ["STANDIN_CRASH_AT_STEP"]) if os.environ.get("STANDIN_CRASH_AT_STEP") else None

    out = Path(proc["training_folder"]) / name
    out.mkdir(parents=True, exist_ok=True)
    print(f"Loading model {proc['model'].get('name_or_path')}", flush=True)
    print(f"Dataset: {len(images)} images from {folder}", flush=True)
    if proc["datasets"][0].get("cache_latents_to_disk"):
        # AI Toolkit caches latents beside the images; the worker must point it at a copy.
        cache = folder / "_latent_cache"
        cache.mkdir(exist_ok=True)
        for image in images:
            save_file({"latent": np.zeros((4, 8, 8), np.float16)}, str(cache / f"{image.stem}.safetensors"))
    log = open_loss_log(out / "loss_log.db")
    rng = random.Random(seed)
    saved: list[Path] = []
    if prompts and not sample.get("skip_first_sample"):
        print("Generating baseline samples", flush=True)
        for i, prompt in enumerate(prompts):
            save_sample(out / "samples", 0, i, prompt)
    started = time.time()
    for step in range(1, total + 1):
        if crash_at is not None and step == crash_at:
            print("Traceback (most recent call last):", file=sys.stderr, flush=True)
            print('  File "toolkit/train.py", line 1, in train_step', file=sys.stderr, flush=True)
            print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr,
                  flush=True)
            fail("CUDA out of memory")
        time.sleep(delay)
        loss = 0.06 + 0.32 * math.exp(-step / (total / 4)) + abs(rng.gauss(0, 0.025))
        log_metrics(log, step, {"loss": loss, "learning_rate": lr})
        sys.stderr.write("\r" + bar(step, total, started, name, lr, loss))
        sys.stderr.flush()
        if step % save_every == 0 and step < total:
            path = out / f"{name}_{step:09d}.safetensors"
            print(f"\nSaving at step {step}", flush=True)
            save_checkpoint(path, rank, step, seed)
            saved.append(path)
            while len(saved) > keep:
                saved.pop(0).unlink(missing_ok=True)
        if prompts and step % sample_every == 0:
            print(f"\nGenerating samples at step {step}", flush=True)
            for i, prompt in enumerate(prompts):
                save_sample(out / "samples", step, i, prompt)
    sys.stderr.write("\n")
    save_checkpoint(out / f"{name}.safetensors", rank, total, seed)
    log.close()
    print(f"Saved to {out / f'{name}.safetensors'}", flush=True)
    print("========================================\nResult:\n - 1 completed job", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
