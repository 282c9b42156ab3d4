"""python -m lib.localpod --host 127.0.0.1 --port PORT --data DIR [--api-key KEY] [--config PATH]
[--time-scale X] [--no-seed] [--empty]

Prints exactly one line `localpod ready on http://HOST:PORT` once it accepts requests, then
serves until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from lib.localpod.config import PodConfig, PodConfigError
from lib.localpod.server import LocalPod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.localpod",
                                     description="Local RunPod Serverless simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data", required=True, type=Path,
                        help="state folder (localpod.sqlite, volume/ = /runpod-volume)")
    parser.add_argument("--api-key", default=None,
                        help="accept only this key (default: any key, but one is required)")
    parser.add_argument("--config", default=None,
                        help="console TOML (default: $CONSOLE_CONFIG or console.toml)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="real seconds per simulated second (default: [simulator] time_scale)")
    parser.add_argument("--no-seed", action="store_true",
                        help="skip the demo volume tree and 30-day traffic history")
    parser.add_argument("--empty", action="store_true",
                        help="start like a fresh RunPod account: no endpoints, no network volume, no "
                             "seed, until they are created through REST v2 (implies --no-seed)")
    args = parser.parse_args(argv)
    if args.time_scale is not None and args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config_path = args.config or os.environ.get("CONSOLE_CONFIG") or "console.toml"
    try:
        config = PodConfig.load(config_path)
    except PodConfigError as exc:
        print(f"localpod: {exc}", file=sys.stderr)
        return 2
    pod = LocalPod(args.data, config, api_key=args.api_key, time_scale=args.time_scale,
                   seed_demo=not args.no_seed, empty=args.empty)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        pod.start(args.host, args.port)
    except (OSError, RuntimeError) as exc:
        print(f"localpod: {exc}", file=sys.stderr)
        return 1
    print(f"localpod ready on http://{args.host}:{pod.url.rsplit(':', 1)[1]}", flush=True)
    stop.wait()
    pod.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
