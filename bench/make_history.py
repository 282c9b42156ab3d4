"""A year of history for the page benchmarks (issue 18, goal 2), in a CONSOLE_DATA folder.

On top of what a first start creates (the simulator's seed: its endpoints, volume tree, 30 days of
traffic and billing, imported into the console's job history), it adds:
  - 100,000 finished jobs over 365 days in the console's store, a mix of endpoints, kinds,
    statuses and users, with status timelines, inputs the size of real ComfyUI workflows,
    outputs, errors and costs;
  - 10,000 gallery images (PNG files kept by the console, one per recent completed image job);
  - 50,000 objects on the simulated network volume (trained LoRA checkpoints by run, promoted
    LoRAs, archived renders);
  - 365 days of hourly billing on the simulator for the three endpoints.
Deterministic for a given --seed. Prints name=value lines with what it wrote.

    python bench/make_history.py --data bench/out/history [--jobs 100000] [--images 10000]
                                 [--objects 50000] [--days 365] [--config console.toml]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from lib.config import ConsoleConfig, Secret, Settings  # noqa: E402
from lib.localpod.state import BillingHour, Store  # noqa: E402
from lib.services import build_services  # noqa: E402

DAY = 86_400
USERS = [f"{name}@example.com" for name in (
    "maya.chen", "jonas.weber", "priya.nair", "leo.martin", "sara.okafor", "tom.berg", "ines.garcia",
    "yuki.sato", "omar.haddad", "lena.fischer", "noah.kim", "ana.silva")]
CHARACTERS = ["ava", "milo", "noor", "kai", "lena", "zoe", "ravi", "ines", "bo", "mara"]
MODELS = [("z_image_turbo", "Z-Image Turbo", "zimage"), ("flux_dev", "FLUX.1 dev", "flux"),
          ("sdxl_base", "SDXL base", "sdxl")]
# (role, kind, share, execution seconds range)
MIX = [("image", "generate", 0.55, (3, 30)), ("image", "grid", 0.15, (3, 30)),
       ("image", "rerun", 0.08, (3, 30)), ("special", "faceswap", 0.12, (8, 22)),
       ("special", "sheet", 0.08, (25, 45)), ("training", "lora", 0.02, (1200, 3600))]
STATUSES = [("COMPLETED", 0.90), ("FAILED", 0.04), ("CANCELLED", 0.03), ("TIMED_OUT", 0.01),
            ("SUBMIT_FAILED", 0.01), ("EXPIRED", 0.01)]
ERRORS = {"FAILED": "Workflow validation failed: Value not in list: unet_name 'missing.safetensors'",
          "TIMED_OUT": "execution timeout exceeded", "SUBMIT_FAILED": "RunPod refused the job: 400",
          "EXPIRED": "RunPod no longer knows this job (results are kept 30 minutes)"}


def workflow_input(rng: random.Random, prompt: str, seed: int) -> dict:
    """About the size of a real worker-comfyui input (a ~4 KB API-format workflow)."""
    nodes = {str(i): {"class_type": f"Node{i}", "inputs": {"text": prompt if i == 6 else "x" * 120,
                                                            "seed": seed, "steps": 8, "cfg": 1.0}}
             for i in range(1, 24)}
    return {"workflow": nodes}


def make_jobs(db: sqlite3.Connection, config: ConsoleConfig, rng: random.Random, count: int,
              days: int, images: int, outputs_dir: Path) -> tuple[int, int]:
    now = time.time()
    kinds = [m for m in MIX]
    weights = [m[2] for m in MIX]
    statuses, status_weights = zip(*STATUSES, strict=False)
    pngs = _pngs(rng)
    jobs, changes, outputs = [], [], []
    created = sorted(now - rng.random() * days * DAY for _ in range(count))
    images_left = images
    # The newest completed image jobs get the gallery images: walk from newest to oldest.
    for n, created_at in enumerate(reversed(created)):
        role, kind, _share, (lo, hi) = rng.choices(kinds, weights)[0]
        status = rng.choices(statuses, status_weights)[0]
        local_id = f"hist{n:012d}"
        user = rng.choice(USERS)
        character = rng.choice(CHARACTERS)
        template, title, family = rng.choice(MODELS)
        seed = rng.randrange(2**31)
        prompt = f"portrait photo of {character}, {rng.choice(['studio', 'street', 'beach', 'cafe'])} light"
        delay_ms = int(rng.uniform(80, 1500) if rng.random() > 0.1 else rng.uniform(30_000, 120_000))
        execution_ms = int(rng.uniform(lo, hi) * 1000)
        ran = status in ("COMPLETED", "FAILED", "TIMED_OUT")
        finished_at = created_at + (delay_ms + execution_ms) / 1000 if status != "SUBMIT_FAILED" else created_at
        price = config.price_per_second(role)
        cost = -(-execution_ms // 1000) * price if ran else None
        meta = {"character": character}
        if role == "image":
            meta.update({"template": template, "model": title, "family": family,
                         "lora": f"{character}_v1.safetensors", "lora_strength": 0.9, "prompt": prompt,
                         "seed": seed, "steps": 8, "guidance": 1.0, "width": 1024, "height": 1024,
                         "batch_size": 1, "job_tag": local_id,
                         "params": {"prompt": prompt, "seed": seed, "steps": 8}})
        has_image = role == "image" and status == "COMPLETED" and images_left > 0
        output = ({"images": [{"filename": f"{local_id}_00001_.png", "type": "base64"}]}
                  if status == "COMPLETED" and role != "training" else None)
        jobs.append((local_id, f"idem-{local_id}", role, config.endpoint(role).id, f"rp-{local_id}",
                     status, kind, user, None, character, meta.get("model"), created_at, created_at + 0.05,
                     finished_at, delay_ms if ran else None, execution_ms if ran else None,
                     f"wkr{rng.randrange(40):03d}" if ran else None, 0, f"{seed:064x}",
                     json.dumps(workflow_input(rng, prompt, seed)), json.dumps(meta),
                     json.dumps(output) if output else None, ERRORS.get(status),
                     cost, cost, int(has_image), int(delay_ms > 20_000)))
        changes.append((local_id, created_at, "PENDING", None, None, None, "recorded before submit"))
        if status != "SUBMIT_FAILED":
            changes.append((local_id, created_at + 0.05, "IN_QUEUE", None, None, None, f"RunPod job rp-{local_id}"))
        if ran:
            changes.append((local_id, created_at + delay_ms / 1000, "IN_PROGRESS", delay_ms, None, None, None))
        changes.append((local_id, finished_at, status, delay_ms, execution_ms, None, ERRORS.get(status)))
        if has_image:
            images_left -= 1
            folder = outputs_dir / local_id
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{local_id}_00001_.png"
            (folder / name).write_bytes(pngs[n % len(pngs)])
            outputs.append((local_id, name, str(folder / name), "image/png", "{}"))
    with db:
        db.executemany(
            "INSERT OR IGNORE INTO jobs (local_id, idempotency_key, role, endpoint_id, runpod_id, status,"
            " kind, user, grp, character, model, created_at, submitted_at, finished_at, delay_ms, execution_ms,"
            " worker_id, retries, payload_hash, input_json, meta_json, output_json, error, est_cost_usd,"
            " cost_usd, images, cold_start, simulated)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)", jobs)
        db.executemany("INSERT INTO status_changes (local_id, at, status, delay_ms, execution_ms, worker_id,"
                       " note) VALUES (?,?,?,?,?,?,?)", changes)
        db.executemany("INSERT OR REPLACE INTO outputs (local_id, name, path, mime, meta_json)"
                       " VALUES (?,?,?,?,?)", outputs)
    return len(jobs), len(outputs)


def _pngs(rng: random.Random, count: int = 16) -> list[bytes]:
    """A few distinct 256² renders, reused: the gallery shows files, their content does not matter."""
    result = []
    for _ in range(count):
        image = Image.new("RGB", (256, 256), tuple(rng.randrange(256) for _ in range(3)))
        ImageDraw.Draw(image).ellipse((64, 40, 192, 200), fill=tuple(rng.randrange(256) for _ in range(3)))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        result.append(buffer.getvalue())
    return result


def make_volume(volume: Path, rng: random.Random, count: int) -> int:
    """Trained checkpoints by run (most of a year's volume), promoted LoRAs, archived renders."""
    written = 0
    promoted = min(1_000, count // 50)
    for i in range(promoted):
        _touch(volume / "models/loras" / f"{CHARACTERS[i % len(CHARACTERS)]}_v{i // len(CHARACTERS) + 2}.safetensors",
               rng.randrange(20_000_000, 400_000_000))
        written += 1
    run = 0
    while written < count * 0.8:
        run += 1
        character = CHARACTERS[run % len(CHARACTERS)]
        for step in range(250, 3001, 250):
            _touch(volume / "loras" / character / f"run-{run:04d}" / f"{character}_{step:09d}.safetensors",
                   rng.randrange(20_000_000, 400_000_000))
            written += 1
    month = 0
    while written < count:
        month += 1
        for i in range(500):
            if written >= count:
                break
            _touch(volume / "archive" / f"renders-{month:03d}" / f"render_{i:05d}.png",
                   rng.randrange(300_000, 3_000_000))
            written += 1
    return written


def _touch(path: Path, size: int) -> None:
    """A sparse file of `size` bytes: real-looking sizes (so duplicate checks compare few files)
    without filling the disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def make_billing(store: Store, config: ConsoleConfig, rng: random.Random, days: int) -> int:
    """Hourly billing for the days before the simulator's own 30 seeded days."""
    now_hour = int(time.time()) // 3600 * 3600
    rows = []
    for role, spec in config.endpoints.items():
        price = config.price_per_second(role)
        for hour in range(30 * 24, days * 24):
            start = now_hour - hour * 3600
            busy = rng.uniform(0, 1800) if 7 <= (start // 3600) % 24 <= 19 else rng.uniform(0, 200)
            rows.append(BillingHour(spec.id, start, busy, 0.0, busy * price, 0.0))
    store.add_billing(rows, {"bench_history_billing": str(days)})
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "out" / "history")
    parser.add_argument("--config", type=Path, default=ROOT / "console.toml")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    if (args.data / "console.sqlite").exists():
        sys.exit(f"{args.data} already holds a console's data: give an empty folder")
    started = time.monotonic()
    rng = random.Random(args.seed)
    settings = Settings(api_key=Secret(""), config_path=args.config, data_dir=args.data)
    services = build_services(settings, start_tracker=False)  # the first start: simulator seed + import
    config, volume_dir = services.config, Path(services.localpod.volume_dir)
    services.close()
    db = sqlite3.connect(args.data / "console.sqlite")
    jobs, images = make_jobs(db, config, rng, args.jobs, args.days, args.images, args.data / "outputs")
    db.close()
    objects = make_volume(volume_dir, rng, args.objects)
    billing_store = Store(args.data / "localpod" / "localpod.sqlite")
    billing_rows = make_billing(billing_store, config, rng, args.days)
    billing_store.close()
    print(f"history_jobs={jobs}")
    print(f"history_images={images}")
    print(f"history_volume_objects={objects}")
    print(f"history_billing_hours={billing_rows}")
    print(f"history_seconds={time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
