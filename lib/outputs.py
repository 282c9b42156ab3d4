"""Turn a finished job's output into files the console keeps (RunPod keeps results 30 min only).

worker-comfyui ≥ 5 returns `output.images[] = {filename, type: "base64" | "s3_url", data}`.
"""
from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from lib.errors import ConsoleError

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024


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
    client = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise OutputError(f"{name}: download failed with HTTP {response.status_code}")
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise OutputError(f"{name}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MB, not kept")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise OutputError(f"{name}: download failed ({type(exc).__name__})") from None
    finally:
        if own:
            client.close()
