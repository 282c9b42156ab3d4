"""Demo seed: the volume tree, the deterministic 30-day traffic and its billing."""
from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from PIL import Image
from safetensors import safe_open

from lib.localpod.seed import (
    DATASET_DIR,
    MODEL_FILES,
    TRIGGER,
    demo_billing,
    demo_traffic,
    seed_volume,
    window,
)

NOW = datetime(2026, 11, 20, 15, 42, 17, tzinfo=UTC)


@pytest.fixture(scope="module")
def traffic(request):
    config = request.getfixturevalue("console_config")
    return demo_traffic(config, now=NOW)


def test_volume_tree_has_valid_placeholder_models_and_a_dataset(tmp_path):
    written = seed_volume(tmp_path)
    for rel in MODEL_FILES:
        with safe_open(tmp_path / rel, framework="numpy") as f:
            meta = f.metadata()
            assert meta == {"placeholder": "true", "model": rel.rsplit("/", 1)[1][:-12]}
            assert list(f.keys())
    assert (tmp_path / "models/diffusion_models/flux1-schnell.safetensors").exists()
    assert (tmp_path / "models/text_encoders/t5xxl_fp16.safetensors").exists()
    pngs = sorted((tmp_path / DATASET_DIR).glob("*.png"))
    assert len(pngs) == 16
    for png in pngs:
        with Image.open(png) as im:
            assert im.format == "PNG" and min(im.size) >= 512
        caption = png.with_suffix(".txt").read_text()
        assert TRIGGER in caption
    assert len({png.read_bytes() for png in pngs}) == 16          # all different pictures
    (tmp_path / "models/loras/ava_v1.safetensors").write_bytes(b"user file")
    assert seed_volume(tmp_path) == []                               # idempotent, no overwrite
    assert (tmp_path / "models/loras/ava_v1.safetensors").read_bytes() == b"user file"
    assert len(written) == len(MODEL_FILES) + 32


def test_demo_traffic_is_deterministic(console_config, traffic):
    assert demo_traffic(console_config, now=NOW) == traffic
    same_hour = NOW.replace(minute=5, second=0)
    assert demo_traffic(console_config, now=same_hour) == traffic
    other = demo_traffic(console_config, now=NOW, seed=8)
    assert other != traffic
    shorter = demo_traffic(console_config, now=NOW, days=7)
    assert 0 < len(shorter) < len(traffic)


def test_demo_traffic_looks_like_a_month_of_studio_work(console_config, traffic):
    start, end = window(NOW)
    assert end == NOW.replace(minute=0, second=0)
    assert start == end - timedelta(days=30)
    assert len({j.id for j in traffic}) == len(traffic)
    assert all(start <= j.submitted_at and j.finished_at <= end for j in traffic)
    assert all(j.submitted_at.tzinfo is not None for j in traffic)
    assert {j.endpoint_id for j in traffic} == {s.id for s in console_config.endpoints.values()}
    roles = Counter(j.role for j in traffic)
    assert roles["image"] > roles["special"] > roles["training"] >= 3
    failure_share = sum(j.status == "FAILED" for j in traffic) / len(traffic)
    assert 0.01 <= failure_share <= 0.06
    assert {j.status for j in traffic} == {"COMPLETED", "FAILED"}
    cold = [j.delay_ms for j in traffic if j.cold_start]
    assert cold and all(30_000 <= d <= 120_000 for d in cold)
    for job in traffic:
        seconds = job.execution_ms / 1000
        if job.status == "COMPLETED":
            low, high = {"image": (4, 30), "special": (10, 40), "training": (1200, 3600)}[job.role]
            assert low <= seconds <= high, job
        assert job.kind in {"image": {"flux", "zimage", "sdxl"}, "special": {"faceswap", "sheet"},
                            "training": {"lora"}}[job.role]
        assert "@" in job.user and job.character
    weekday = Counter(j.submitted_at.date() for j in traffic if j.submitted_at.weekday() < 5)
    weekend = Counter(j.submitted_at.date() for j in traffic if j.submitted_at.weekday() >= 5)
    assert statistics.mean(weekday.values()) > 2 * statistics.mean(weekend.values())
    by_hour = Counter(j.submitted_at.hour for j in traffic)
    assert by_hour[10] + by_hour[15] > 10 * (by_hour[2] + by_hour[3] + by_hour[4])


def test_demo_billing_covers_every_worker_second(console_config, traffic):
    rows = demo_billing(console_config, traffic, now=NOW)
    start, end = window(NOW)
    assert all(start.timestamp() <= r.hour_start < end.timestamp() for r in rows)
    for spec in console_config.endpoints.values():
        mine = [r for r in rows if r.endpoint_id == spec.id]
        busy = sum(j.execution_ms for j in traffic if j.endpoint_id == spec.id) / 1000
        billed = sum(r.flex_s + r.active_s for r in mine)
        assert busy <= billed <= busy * 2 + 3600, spec.role       # running + idle tails
        price = console_config.prices.per_second(spec.gpu_pools[0])
        assert sum(r.gpu_usd for r in mine) == pytest.approx(billed * price)
    assert demo_billing(console_config, traffic, now=NOW) == rows


def test_seeded_simulator_serves_30_days_of_billing(start_localpod, console_config, tmp_path):
    data = tmp_path / "data"
    pod = start_localpod(data_dir=data, seed_demo=True)
    headers = {"Authorization": "Bearer test-key"}
    info = httpx.get(f"{pod.url}/admin/seed", headers=headers).json()
    assert info == pod.seed_info and info["days"] == 30 and info["seed"] == 7
    assert (data / "seeded").exists()
    assert (pod.volume_dir / "models/unet/flux1-dev.safetensors").exists()
    now = datetime.fromisoformat(info["now"])
    expected = demo_billing(console_config, demo_traffic(console_config, now=now), now=now)
    query = {"bucketSize": "day", "startTime": (now - timedelta(days=30)).isoformat(),
             "endTime": now.isoformat()}

    def billed() -> dict:
        return httpx.get(f"{pod.rest_url}/billing/serverless", params=query,
                         headers=headers).json()

    report = billed()
    days = {r["startTime"] for r in report["records"]}
    assert len(days) >= 25
    assert report["metadata"]["uniqueServerlessCount"] == 3
    assert report["metadata"]["totals"]["gpuAmount"] == pytest.approx(
        sum(r.gpu_usd for r in expected), rel=1e-6)
    volume = httpx.get(f"{pod.rest_url}/billing/network-volumes", headers=headers,
                       params={**query, "bucketSize": "hour"}).json()
    hourly = (console_config.volume.size_gb * console_config.prices.volume_usd_per_gb_month
              / (30 * 86400) * 3600)
    assert len(volume["records"]) == 30 * 24
    assert all(r["totalAmount"] == pytest.approx(hourly) for r in volume["records"])

    pod.stop()                                   # a restart never seeds twice
    again = start_localpod(data_dir=data, seed_demo=True)
    assert again.seed_info == info
    after = httpx.get(f"{again.rest_url}/billing/serverless", params=query, headers=headers).json()
    assert after["metadata"]["totals"] == report["metadata"]["totals"]
