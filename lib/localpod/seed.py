"""Demo seed: a realistic network-volume tree and 30 days of simulated past traffic and billing.

`demo_traffic` is pure and deterministic: the same config, `now` (snapped down to the hour
inside) and seed give the same jobs, so the console can import the very list whose billing the
simulator stores (`demo_billing`), and both agree. The simulator records the parameters it used
in DIR/seeded (also served at GET /admin/seed).
"""
from __future__ import annotations

import heapq
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from safetensors.numpy import save_file

from lib.localpod import billing
from lib.localpod.config import EndpointSpec, PodConfig
from lib.localpod.state import BillingHour, Store

DEMO_DAYS = 30
DEMO_SEED = 7
MARKER = "seeded"

# Files worker-comfyui scans (models/<folder>/), plus the two traps the console must flag: a
# diffusion model in diffusion_models/ and a text encoder in text_encoders/ where the workflows
# expect unet/ and clip/.
MODEL_FILES = (
    "models/unet/flux1-dev.safetensors",
    "models/unet/z_image_turbo_bf16.safetensors",
    "models/clip/clip_l.safetensors",
    "models/clip/t5xxl_fp8_e4m3fn.safetensors",
    "models/clip/qwen_3_4b.safetensors",
    "models/vae/ae.safetensors",
    "models/vae/sdxl_vae.safetensors",
    "models/checkpoints/sd_xl_base_1.0.safetensors",
    "models/checkpoints/flux1-dev-fp8.safetensors",
    "models/controlnet/FLUX.1-dev-ControlNet-Union-Pro.safetensors",
    "models/loras/ava_v1.safetensors",
    "models/loras/ava_v2.safetensors",
    "models/loras/milo_v1.safetensors",
    "models/loras/noor_zit_v1.safetensors",
    "models/diffusion_models/flux1-schnell.safetensors",
    "models/text_encoders/t5xxl_fp16.safetensors",
    "loras/ava/run-0001/ava_000000500.safetensors",
    "loras/ava/run-0001/ava_000001000.safetensors",
)
# Raw demo photos with captions, as a person would have them; the console turns them into the
# versioned training set datasets/ava/v1 (set.json + manifest) the first time it starts.
DATASET_DIR = "demo/photos/ava"
DATASET_SIZE = 16
TRIGGER = "ava_tok"

# (kind, share of the role's jobs, execution seconds range, images per job choices)
_KINDS = {
    "image": (("flux", 0.45, (12, 30), (1, 1, 2, 4)), ("zimage", 0.35, (4, 10), (1, 2, 4, 4)),
              ("sdxl", 0.20, (6, 14), (1, 2, 4))),
    "special": (("faceswap", 0.65, (10, 22), (1,)), ("sheet", 0.35, (25, 40), (1,))),
    "training": (("lora", 1.0, (20 * 60, 60 * 60), (0,)),),
}
_SESSIONS_PER_DAY = {"image": 14, "special": 5}
_JOBS_PER_SESSION = {"image": (2, 9), "special": (1, 4)}
_TRAININGS_PER_30_DAYS = (5, 8)
_CHARACTERS = (("ava", 40), ("milo", 25), ("noor", 20), ("kai", 10), ("lena", 5))
_USERS = ("maya.chen@example.com", "jonas.weber@example.com", "priya.nair@example.com",
          "leo.martin@example.com", "sara.okafor@example.com")
# Share of sessions starting in each UTC hour: a European studio's working day, lunch dip.
_HOUR_WEIGHTS = (1, 0, 0, 0, 0, 0, 1, 3, 7, 10, 11, 10, 6, 8, 10, 11, 10, 8, 5, 4, 3, 3, 2, 1)
_WEEKDAY_FACTOR = (1.0, 1.05, 1.0, 1.1, 0.9, 0.35, 0.25)
_FAILURE_RATE = 0.03
_COLD_START_S = (30.0, 120.0)
_WARM_DELAY_S = (0.08, 1.5)


@dataclass(frozen=True)
class SeedJob:
    id: str
    endpoint_id: str
    role: str
    submitted_at: datetime          # UTC, aware
    status: str                     # COMPLETED | FAILED
    delay_ms: int                   # queue wait + cold start
    execution_ms: int
    worker_id: str
    cold_start: bool
    images: int
    kind: str                       # flux | zimage | sdxl | faceswap | sheet | lora
    character: str                  # ava | milo | noor | kai | lena
    user: str                       # e-mail

    @property
    def finished_at(self) -> datetime:
        return self.submitted_at + timedelta(milliseconds=self.delay_ms + self.execution_ms)


def window(now: datetime, days: int = DEMO_DAYS) -> tuple[datetime, datetime]:
    """[start, end) of the demo history: `days` up to `now` snapped down to the hour (UTC)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=days), end


def demo_traffic(config: PodConfig | object, *, now: datetime, days: int = DEMO_DAYS,
                 seed: int = DEMO_SEED) -> list[SeedJob]:
    """Past jobs of every simulated endpoint over `days` before `now` (snapped to the hour).

    Daily and weekly rhythm, a few peak days, ~3 % failures; each endpoint's workers are
    simulated (warm reuse, idle timeout, workers_max, QUEUE_DELAY-style scale-up) so cold starts
    (30-120 s delay) happen where they would. Every job finishes before the window's end.
    """
    start, end = window(now, days)
    jobs: list[SeedJob] = []
    for role, spec in PodConfig.of(config).endpoints.items():
        if spec.is_dev_worker or not spec.id or role not in _KINDS:
            continue
        rng = random.Random(f"localpod-demo:{seed}:{role}:{spec.id}:{end.isoformat()}:{days}")
        jobs.extend(_simulate(rng, spec, spec.id, role, _sessions(rng, role, start, days), end))
    jobs.sort(key=lambda j: (j.submitted_at, j.id))
    return jobs


@dataclass
class _Session:
    """One user's sitting: jobs submitted one after another (or a few at once)."""

    start: datetime
    user: str
    character: str
    favourite: str
    jobs_left: int


def _pick(rng: random.Random, weighted) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _sessions(rng: random.Random, role: str, start: datetime, days: int) -> list[_Session]:
    kinds = [(k[0], k[1]) for k in _KINDS[role]]
    out: list[_Session] = []
    if role == "training":
        for _ in range(round(rng.randint(*_TRAININGS_PER_30_DAYS) * days / 30)):
            day = start + timedelta(days=rng.randrange(days))
            while day.weekday() >= 5:
                day += timedelta(days=1)
            at = day.replace(hour=0, minute=0) + timedelta(hours=rng.randint(8, 16),
                                                           minutes=rng.randint(0, 59))
            if at >= start:
                out.append(_Session(at, rng.choice(_USERS), _pick(rng, _CHARACTERS[:3]), "lora", 1))
        return out
    peaks = set(rng.sample(range(days), k=min(days, 3)))
    for d in range(days):
        day = start + timedelta(days=d)
        factor = _WEEKDAY_FACTOR[day.weekday()] * (2.2 if d in peaks else 1.0)
        for _ in range(max(0, round(rng.gauss(_SESSIONS_PER_DAY[role] * factor, 2)))):
            hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
            at = day.replace(hour=0, minute=0) + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            if at >= start:
                out.append(_Session(at, rng.choice(_USERS), _pick(rng, _CHARACTERS),
                                    _pick(rng, kinds), rng.randint(*_JOBS_PER_SESSION[role])))
    return out


@dataclass
class _SimWorker:
    id: str
    free_at: datetime
    stop_at: datetime | None    # None: an active (min) worker, never stops


def _worker_id(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(14))


def _simulate(rng: random.Random, spec: EndpointSpec, endpoint_id: str, role: str, sessions: list[_Session],
              end: datetime) -> list[SeedJob]:
    """Event-ordered replay of the sessions on the endpoint's workers.

    A user submits the next job after seeing the last result plus a short think time, or
    sometimes queues a few at once. A job takes a free warm worker; otherwise, like the
    QUEUE_DELAY scaler, it waits for a busy worker that frees within scaling_value seconds, or
    gets a new worker (a cold start) while workers_max allows.
    """
    idle = timedelta(seconds=spec.idle_timeout_s)
    workers = [_SimWorker(_worker_id(rng), datetime.min.replace(tzinfo=UTC), None)
               for _ in range(spec.workers_min)]
    table = {k[0]: k for k in _KINDS[role]}
    kinds = [(k[0], k[1]) for k in _KINDS[role]]
    pending = [(s.start, i) for i, s in enumerate(sessions)]
    heapq.heapify(pending)
    jobs = []
    while pending:
        at, i = heapq.heappop(pending)
        session = sessions[i]
        session.jobs_left -= 1
        kind = session.favourite if rng.random() < 0.7 else _pick(rng, kinds)
        _kind, _share, (lo, hi), images = table[kind]
        execution = rng.uniform(lo, hi)
        failed = rng.random() < _FAILURE_RATE
        if failed:
            execution *= rng.uniform(0.1, 0.6)
        warm, cold = rng.uniform(*_WARM_DELAY_S), rng.uniform(*_COLD_START_S)
        burst, think = rng.random() < 0.25, rng.uniform(1, 4)
        think_after = rng.expovariate(1 / 6) + 0.5
        live = [w for w in workers if w.stop_at is None or w.stop_at > at]
        free = [w for w in live if w.free_at <= at]
        soonest = min(live, key=lambda w: w.free_at, default=None)
        new_worker = False
        if free:
            worker, began = min(free, key=lambda w: w.free_at), at + timedelta(seconds=warm)
        elif soonest is None or (len(live) < spec.workers_max and
                                 (soonest.free_at - at).total_seconds() > spec.scaling_value):
            worker, new_worker = _SimWorker(_worker_id(rng), at, at), True
            began = at + timedelta(seconds=cold)
        else:
            worker, began = soonest, soonest.free_at + timedelta(seconds=warm)
        finished = began + timedelta(seconds=execution)
        job_id = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-e1"
        if finished > end:
            continue
        if new_worker:
            workers.append(worker)
        worker.free_at = finished
        if worker.stop_at is not None:
            worker.stop_at = finished + idle
        jobs.append(SeedJob(
            id=job_id, endpoint_id=endpoint_id, role=role, submitted_at=at,
            status="FAILED" if failed else "COMPLETED",
            delay_ms=round((began - at).total_seconds() * 1000),
            execution_ms=round(execution * 1000), worker_id=worker.id, cold_start=new_worker,
            images=0 if failed else rng.choice(images), kind=kind, character=session.character,
            user=session.user))
        if session.jobs_left > 0:
            nxt = at + timedelta(seconds=think) if burst else finished + timedelta(seconds=think_after)
            heapq.heappush(pending, (nxt, i))
    return jobs


def demo_billing(config: PodConfig | object, jobs: list[SeedJob], *, now: datetime,
                 days: int = DEMO_DAYS) -> list[BillingHour]:
    """Hourly billing of the demo history, by the rules of lib.localpod.billing.

    A worker that cold-started for a job lives from that job's submission until its last job
    ends plus the idle timeout (clipped to the window); initializing time is billed only before
    2026-06-29. Active (workers_min) workers are billed the whole window at the active price.
    """
    config = PodConfig.of(config)
    start, end = window(now, days)
    rows: list[BillingHour] = []
    sessions: dict[tuple[str, str], list[SeedJob]] = defaultdict(list)
    for job in jobs:
        sessions[(job.endpoint_id, job.worker_id)].append(job)
    specs = {spec.id: spec for spec in config.endpoints.values() if spec.id}
    for endpoint_id, spec in specs.items():
        if spec.is_dev_worker:
            continue
        price = config.price(spec.gpu_pools[0], active=True)
        for _ in range(spec.workers_min):
            rows.extend(billing.charges(endpoint_id, price, True, start.timestamp(), end.timestamp()))
    for (endpoint_id, _worker), worker_jobs in sessions.items():
        first = min(worker_jobs, key=lambda j: j.submitted_at)
        if not first.cold_start:
            continue              # an active worker, billed above
        spec = specs[endpoint_id]
        created = first.submitted_at.timestamp()
        ready = created + first.delay_ms / 1000
        stop = min(end.timestamp(), max(j.finished_at.timestamp() for j in worker_jobs)
                   + spec.idle_timeout_s)
        price = config.price(spec.gpu_pools[0], active=False)
        for a, b in billing.billable_intervals(created, ready, stop):
            rows.extend(billing.charges(endpoint_id, price, False, a, b))
    return billing.merge(rows)


# ---------------------------------------------------------------------- volume tree

def write_placeholder(path: Path, model: str) -> None:
    """A valid, tiny .safetensors file that says it is a placeholder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"placeholder.weight": np.zeros((4, 4), dtype=np.float16)}
    save_file(tensors, str(path), metadata={"placeholder": "true", "model": model})


def seed_volume(volume_dir: Path, seed: int = DEMO_SEED) -> list[Path]:
    """Create the demo model tree and training set; existing files are left alone."""
    written = []
    for rel in MODEL_FILES:
        path = volume_dir / rel
        if not path.exists():
            write_placeholder(path, Path(rel).stem)
            written.append(path)
    dataset = volume_dir / DATASET_DIR
    dataset.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"localpod-dataset:{seed}")
    for i in range(DATASET_SIZE):
        image_path = dataset / f"ava_{i + 1:02d}.png"
        caption_path = image_path.with_suffix(".txt")
        look = _portrait_look(rng, i)
        if not image_path.exists():
            _draw_portrait(look).save(image_path)
            written.append(image_path)
        if not caption_path.exists():
            caption_path.write_text(_caption(look) + "\n", encoding="utf-8")
            written.append(caption_path)
    return written


_BACKGROUNDS = (("studio grey", (92, 96, 104), (150, 154, 160)),
                ("warm beige", (196, 170, 140), (236, 220, 196)),
                ("city street at dusk", (40, 52, 90), (210, 120, 90)),
                ("green park", (60, 110, 70), (170, 200, 150)),
                ("blue wall", (50, 80, 140), (120, 160, 210)))
_OUTFITS = (("red", "sweater", (170, 40, 50)), ("white", "shirt", (232, 232, 228)),
            ("black", "leather jacket", (30, 30, 34)), ("yellow", "raincoat", (220, 180, 40)),
            ("navy", "blazer", (34, 44, 82)))
_EXPRESSIONS = ("smiling", "neutral expression", "laughing", "looking thoughtful")


@dataclass(frozen=True)
class _Look:
    size: tuple[int, int]
    background: tuple
    outfit: tuple
    expression: str
    shift: int           # head offset from centre: a slightly different pose per picture
    tilt: int
    framing: str
    scene: int = 0       # which props stand behind the person


def _portrait_look(rng: random.Random, i: int) -> _Look:
    # 1024 px on the short side: the size trainers want, so the demo set passes its own checks.
    size = ((1024, 1024), (1024, 1280), (1024, 1024), (1024, 1536))[i % 4]
    framing = "close-up" if size[1] == size[0] else "half-body shot"
    return _Look(size, rng.choice(_BACKGROUNDS), rng.choice(_OUTFITS), rng.choice(_EXPRESSIONS),
                 rng.randint(-100, 100), rng.randint(-6, 6), framing, scene=i)


def _draw_scene(draw: ImageDraw.ImageDraw, rng: random.Random, size: tuple[int, int], tone: tuple) -> None:
    """Props behind the person (a different room each time), so no two pictures are near copies."""
    big_w, big_h = size
    for _ in range(6):
        x, y = rng.randrange(big_w), rng.randrange(big_h)
        pw, ph = rng.randint(big_w // 10, big_w // 3), rng.randint(big_h // 10, big_h // 2)
        fill = tuple(int(c * rng.uniform(0.6, 1.3)) % 256 for c in tone)
        (draw.rectangle if rng.random() < 0.6 else draw.ellipse)([x, y, x + pw, y + ph], fill=fill)


def _draw_portrait(look: _Look) -> Image.Image:
    """A drawn portrait of the same character — same face, hair and eyes — in varied scenes, with the
    shading a frontal face has (dark brows and eye sockets over lighter cheeks, a nose shadow), so a
    face detector finds it, and a fine grain, so it is as sharp as a photo."""
    w, h = look.size
    # Drawn on a larger canvas, tilted, then cropped: no empty corners after the rotation.
    big_w, big_h = int(w * 1.15), int(h * 1.15)   # room for a ±6° tilt
    _name, top, bottom = look.background
    img = ImageOps.colorize(Image.linear_gradient("L").resize((big_w, big_h)), top, bottom)
    draw = ImageDraw.Draw(img)
    _draw_scene(draw, random.Random(f"scene:{look.scene}"), (big_w, big_h), bottom)
    left, upper = (big_w - w) // 2, (big_h - h) // 2
    cx, cy = left + w // 2 + look.shift, upper + int(h * 0.40)
    r = int(min(w, h) * (0.13 + 0.012 * (look.scene % 6)))
    skin, hair, shadow = (224, 180, 150), (64, 40, 28), (186, 140, 112)
    draw.ellipse([cx - int(r * 1.45), cy - int(r * 1.45), cx + int(r * 1.45), cy + int(r * 2.0)],
                 fill=hair)                                             # hair behind the head
    draw.rounded_rectangle([cx - int(r * 2.0), cy + int(r * 1.8), cx + int(r * 2.0), big_h],
                           radius=r, fill=look.outfit[2])               # shoulders
    draw.rectangle([cx - r // 3, cy + r, cx + r // 3, cy + int(r * 1.9)], fill=shadow)  # neck
    draw.ellipse([cx - r, cy - int(r * 1.25), cx + r, cy + int(r * 1.3)], fill=skin)    # face
    draw.chord([cx - int(r * 1.05), cy - int(r * 1.4), cx + int(r * 1.05), cy - int(r * 0.2)],
               180, 360, fill=hair)                                     # fringe
    eye_y, dx = cy + r // 10, int(r * 0.42)
    for ex in (cx - dx, cx + dx):
        draw.ellipse([ex - int(r * 0.3), eye_y - int(r * 0.2), ex + int(r * 0.3), eye_y + int(r * 0.18)],
                     fill=shadow)                                       # eye socket
        draw.rectangle([ex - int(r * 0.3), eye_y - int(r * 0.38), ex + int(r * 0.3), eye_y - int(r * 0.28)],
                       fill=hair)                                       # brow
        draw.ellipse([ex - r // 6, eye_y - r // 11, ex + r // 6, eye_y + r // 11], fill="white")
        draw.ellipse([ex - r // 12, eye_y - r // 12, ex + r // 12, eye_y + r // 12],
                     fill=(40, 70, 50))                                 # green eyes
    draw.polygon([(cx, eye_y + r // 8), (cx - r // 7, cy + int(r * 0.5)), (cx + r // 7, cy + int(r * 0.5))],
                 fill=shadow)                                           # nose
    mouth_y = cy + int(r * 0.78)
    if look.expression in ("smiling", "laughing"):
        draw.chord([cx - r // 3, mouth_y - r // 6, cx + r // 3, mouth_y + r // 6], 0, 180, fill=(150, 60, 60))
    else:
        draw.ellipse([cx - r // 3, mouth_y - r // 12, cx + r // 3, mouth_y + r // 12], fill=(150, 60, 60))
    # Nearest-neighbour: the drawing has hard edges anyway, and bilinear on 1.5 MP was most of the time.
    img = img.rotate(look.tilt, resample=Image.Resampling.NEAREST, fillcolor=bottom).crop(
        (left, upper, left + w, upper + h))
    # A fine canvas weave: as sharp as a photo to a blur check, and, being periodic, cheap to store
    # as PNG (random grain made each file slow to write and several MB large).
    diagonal = (np.arange(h, dtype=np.int16)[:, None] + np.arange(w, dtype=np.int16)[None, :]) % 6
    weave = np.where(diagonal < 3, np.int16(6), np.int16(-6))[..., None]
    pixels = np.asarray(img, dtype=np.int16)
    pixels += weave
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8))


def _caption(look: _Look) -> str:
    return (f"{TRIGGER}, a {look.framing} photo of a young woman with dark brown hair and green "
            f"eyes, {look.expression}, wearing a {look.outfit[0]} {look.outfit[1]}, "
            f"{look.background[0]} background")


# ---------------------------------------------------------------------- one-time seeding

def seed_info(data_dir: Path) -> dict | None:
    """{now, days, seed, jobs} of the demo history in this data dir, or None if not seeded."""
    marker = data_dir / MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None


def seed_data_dir(data_dir: Path, volume_dir: Path, store: Store, config: PodConfig,
                  now: datetime) -> dict:
    """First start only: volume tree, demo billing, then the DIR/seeded marker."""
    seed_volume(volume_dir)
    done = store.get_meta("demo_billing")
    if done is not None:      # an earlier start stored the history but stopped before the marker
        now = datetime.fromisoformat(done)
    start, end = window(now)
    jobs = demo_traffic(config, now=now)
    if done is None:
        store.add_billing(demo_billing(config, jobs, now=now),
                          meta={"volume_created_at": str(start.timestamp()),
                                "demo_billing": end.isoformat()})
    info = {"now": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "days": DEMO_DAYS, "seed": DEMO_SEED,
            "jobs": len(jobs)}
    (data_dir / MARKER).write_text(json.dumps(info) + "\n", encoding="utf-8")
    return info


__all__ = [
    "MODEL_FILES",
    "SeedJob",
    "demo_billing",
    "demo_traffic",
    "seed_data_dir",
    "seed_info",
    "seed_volume",
    "window",
    "write_placeholder",
]
