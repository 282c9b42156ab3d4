"""Benchmark: browse and search a 50,000-object network volume through the S3 backend (moto).

Prints name=value lines (seconds, medians):
  volume_first_page_cold_s   first page of a folder with nothing cached: one ListObjectsV2 page
  volume_index_cold_s        full cold path: list all objects + build the index + first page of results
  volume_list_s              of which: the paginated listing alone (50 pages of 1000 keys from moto)
  volume_index_build_s       of which: building the index from the listed objects (the console's own cost)
  volume_search_cached_s     prefix search + substring search + sort, one page, on the cached index
Targets (issue 6): < 2 s cold, < 0.2 s cached.

Usage: python bench/bench_volume_index.py [--objects 50000] [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402

from lib.config import Secret  # noqa: E402
from lib.ops.volume_index import VolumeIndex, first_files  # noqa: E402
from lib.volume import S3Volume  # noqa: E402

BUCKET = "bench-volume"


def keys(n: int) -> list[str]:
    """A volume shaped like the product's: many dataset images, many LoRAs, fewer base models."""
    folders = ["models/loras", "models/checkpoints", "models/unet", "models/clip", "models/vae"]
    out = []
    for i in range(n):
        kind = i % 10
        if kind < 4:
            out.append(f"datasets/char{i % 97:02d}/v{i % 3 + 1}/img_{i:06d}.png")
        elif kind < 8:
            out.append(f"models/loras/char{i % 97:02d}_lora_{i:06d}.safetensors")
        elif kind == 8:
            out.append(f"loras/char{i % 97:02d}/run-{i % 5:04d}/char_{i:09d}.safetensors")
        else:
            out.append(f"{folders[i % len(folders)]}/model_{i:06d}.safetensors")
    return out


def median_time(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="bench",
                              aws_secret_access_key="bench-secret")
        client.create_bucket(Bucket=BUCKET)
        # 50,000 put_object calls through moto's stubbed HTTP layer take minutes; the objects are put
        # straight into moto's in-memory backend instead. Listing still goes through boto3 + moto.
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for n, key in enumerate(keys(args.objects)):
            backend.put_object(BUCKET, key, b"x" * (1 + n % 4096))
        volume = S3Volume(bucket=BUCKET, region="us-east-1", endpoint_url="https://s3api-eu-ro-1.runpod.io",
                          access_key=Secret("bench"), secret_key=Secret("bench-secret"), client=client)

        first_page_s, first = median_time(lambda: first_files(volume, "models/loras/", 50), max(5, args.runs))
        assert len(first) == 50

        listed: list = []

        def cold():
            listed[:] = list(volume.list(""))
            index = VolumeIndex(listed, built_at=datetime.now(UTC))
            return index, index.search(prefix="models/loras/", page_size=50)

        cold_s, (index, page) = median_time(cold, args.runs)
        assert len(index) == args.objects and len(page.items) == 50
        list_s, _ = median_time(lambda: list(volume.list("")), 1)
        build_s, _ = median_time(lambda: VolumeIndex(listed), max(5, args.runs))

        queries = [("", "models/loras/char1", "name"), ("lora_04", "", "size"), ("img_0", "datasets/", "modified"),
                   ("", "models/unet/", "name"), ("char42", "", "name")]

        def cached():
            for query, prefix, sort in queries:
                index.search(query, prefix=prefix, sort=sort, descending=True, page=1, page_size=50)

        search_s, _ = median_time(cached, 21)
        search_s /= len(queries)

    print(f"volume_objects={args.objects}")
    print(f"volume_first_page_cold_s={first_page_s:.3f}")
    print(f"volume_index_cold_s={cold_s:.3f}")
    print(f"volume_list_s={list_s:.3f}")
    print(f"volume_index_build_s={build_s:.3f}")
    print(f"volume_search_cached_s={search_s:.4f}")


if __name__ == "__main__":
    main()
