"""Turn a finished job's output into files the console keeps (RunPod keeps results 30 min only).

worker-comfyui ≥ 5 returns `output.images[] = {filename, type: "base64" | "s3_url", data}`.

A worker's `s3_url` is a URL the console would fetch on its own, so a compromised worker could point
it at internal addresses. The console fetches only from the hosts it was configured for (the network
volume's S3 endpoint, path- or virtual-hosted style, and the local simulator), follows redirects only
between those, within an overall deadline and a size cap; anything else is refused with a message
that the tracker records in the job's details.
"""
from __future__ import annotations

import base64
import binascii
import mimetypes
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import httpx

from lib.errors import ConsoleError

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024   # a generated image is a few MB; 64 MB is far above any
DOWNLOAD_DEADLINE_S = 120.0              # for the whole download, however slowly the bytes come
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}

_allowed_lock = threading.Lock()
_allowed_origins: set[tuple[str, int]] = set()


def _origin(url: str) -> tuple[str, int] | None:
    parsed = urlparse(url)
    try:
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:
        return None
    if not parsed.hostname or port is None:
        return None
    return parsed.hostname.lower().rstrip("."), port


def allow_output_hosts(*, s3_endpoint: str | None, bucket: str | None = None,
                       simulator_urls: Iterable[str | None] = ()) -> None:
    """Set where worker outputs may be fetched from: the volume's S3 endpoint (and its virtual-hosted
    bucket name) and the simulator's own URLs. Called once per console process by build_services."""
    origins = set()
    endpoint = _origin(s3_endpoint) if s3_endpoint else None
    if endpoint:
        origins.add(endpoint)
        if bucket:
            origins.add((f"{bucket.lower()}.{endpoint[0]}", endpoint[1]))
    origins.update(o for o in (_origin(u) for u in simulator_urls if u) if o)
    with _allowed_lock:
        _allowed_origins.clear()
        _allowed_origins.update(origins)


def _allowed(url: str) -> bool:
    origin = _origin(url)
    with _allowed_lock:
        return origin is not None and origin in _allowed_origins


@dataclass(frozen=True)
class FetchedFile:
    name: str
    data: bytes
    mime: str


class OutputError(ConsoleError):
    """An output file could not be decoded or downloaded; the message says which and why."""


def image_entries(output: object) -> list[dict]:
    if not isinstance(output, dict):
        return []
    images = output.get("images")
    if not isinstance(images, list):
        return []
    return [entry for entry in images if isinstance(entry, dict)]


def fetch_image(entry: dict, *, http: httpx.Client | None = None,
                local_root: Path | None = None) -> FetchedFile:
    name = Path(str(entry.get("filename") or "image.png")).name
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    kind, data = entry.get("type"), entry.get("data")
    if not isinstance(data, str):
        raise OutputError(f"{name}: the worker sent no data for this image")
    if kind == "base64":
        payload = data.split(",", 1)[1] if data.startswith("data:") else data
        try:
            return FetchedFile(name, base64.b64decode(payload, validate=True), mime)
        except (binascii.Error, ValueError):
            raise OutputError(f"{name}: the worker's base64 data is corrupt") from None
    if kind == "s3_url":
        return FetchedFile(name, _download(data, name, http=http, local_root=local_root), mime)
    raise OutputError(f"{name}: unknown output type {kind!r} (expected base64 or s3_url)")


def _download(url: str, name: str, *, http: httpx.Client | None, local_root: Path | None) -> bytes:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # Only the simulator hands out file:// URLs, and only inside its own volume folder.
        if local_root is None:
            raise OutputError(f"{name}: file:// outputs are only accepted from the local simulator")
        path = Path(unquote(parsed.path)).resolve()
        root = Path(local_root).resolve()
        if not path.is_relative_to(root):
            raise OutputError(f"{name}: refusing to read {path} outside the simulator's volume")
        return path.read_bytes()
    if parsed.scheme not in ("http", "https"):
        raise OutputError(f"{name}: unsupported URL scheme {parsed.scheme!r}")
    own = http is None
    client = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
    try:
        for _ in range(MAX_REDIRECTS + 1):
            if not _allowed(url):
                raise OutputError(f"{name}: not fetched — {urlparse(url).netloc or url!r} is neither the network "
                                  "volume's S3 endpoint nor the local simulator, and the console fetches worker "
                                  "outputs only from those (check the worker's BUCKET_ENDPOINT_URL)")
            with client.stream("GET", url, follow_redirects=False) as response:
                if response.is_redirect and response.headers.get("location"):
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise OutputError(f"{name}: download failed with HTTP {response.status_code}")
                return _read_capped(response, name, deadline)
        raise OutputError(f"{name}: more than {MAX_REDIRECTS} redirects, not followed")
    except httpx.HTTPError as exc:
        raise OutputError(f"{name}: download failed ({type(exc).__name__})") from None
    finally:
        if own:
            client.close()


def _read_capped(response: httpx.Response, name: str, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DOWNLOAD_BYTES:
        raise OutputError(f"{name}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MB, not kept")
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > MAX_DOWNLOAD_BYTES:
            raise OutputError(f"{name}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MB, not kept")
        if time.monotonic() > deadline:
            raise OutputError(f"{name}: not downloaded within {DOWNLOAD_DEADLINE_S:.0f} s, not kept")
        chunks.append(chunk)
    return b"".join(chunks)
