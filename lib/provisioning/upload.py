"""Model uploads that survive an interruption: multipart, part by part, and the next attempt skips
every part already uploaded (same number, size and MD5).

On RunPod the parts of an unfinished upload stay on the volume (staged in .s3compat_uploads/) and
the S3 API lists them (ListMultipartUploads, ListParts — reference §4), so a failed upload is left
unfinished rather than aborted, to be resumed. On the simulator's local volume the parts are staged
in a folder of the console's data directory. A file of at most one part goes up in one write.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lib.config import Settings
from lib.volume import LocalVolume, MiB, S3Volume, VolumeError, _s3_config, safe_key

# RunPod's S3 API takes parts up to 500 MB and does not enforce S3's 5 MB minimum (reference §4).
DEFAULT_PART_SIZE = 64 * MiB


@dataclass(frozen=True)
class UploadProgress:
    key: str
    done: int           # bytes of the file on the volume so far (reused parts included)
    total: int
    part: int
    parts: int
    reused: int         # parts found from an earlier attempt, not sent again

    @property
    def text(self) -> str:
        resumed = f" ({self.reused} resumed)" if self.reused else ""
        return f"{self.key}: part {self.part}/{self.parts}{resumed}"


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    parts: int
    reused: int


class Parts(Protocol):
    def resume(self, key: str, size: int, part_size: int) -> tuple[str, dict[int, str]]:
        """The upload to continue (or a new one) and the MD5 of each part it already has, by number."""

    def put(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Store one part; returns its ETag (the MD5 of the part)."""

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]], size: int) -> None:
        ...


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _part_sizes(size: int, part_size: int) -> dict[int, int]:
    count = math.ceil(size / part_size)
    return {n: min(part_size, size - (n - 1) * part_size) for n in range(1, count + 1)}


def upload(volume, parts: Parts, local: Path, key: str, *, part_size: int = DEFAULT_PART_SIZE,
           progress: Callable[[UploadProgress], None] | None = None) -> UploadResult:
    """Put the local file at `key` on the volume, resuming an earlier attempt where it stopped."""
    key = safe_key(key)
    local = Path(local)
    try:
        size = local.stat().st_size
    except OSError as exc:
        raise VolumeError(f"cannot read {local} on the console machine ({exc.strerror})") from None
    report = progress or (lambda p: None)
    if size <= part_size:
        volume.write(key, local, progress=lambda done, total: report(UploadProgress(key, done, total, 1, 1, 0)))
        return UploadResult(key, size, 1, 0)
    expected = _part_sizes(size, part_size)
    upload_id, existing = parts.resume(key, size, part_size)
    sent: list[tuple[int, str]] = []
    done = reused = 0
    with open(local, "rb") as f:
        for number in expected:
            chunk = f.read(part_size)
            digest = _md5(chunk)
            if existing.get(number) == digest:
                reused += 1
                etag = digest
            else:
                etag = parts.put(key, upload_id, number, chunk)
            sent.append((number, etag))
            done += len(chunk)
            report(UploadProgress(key, done, size, number, len(expected), reused))
    parts.complete(key, upload_id, sent, size)
    return UploadResult(key, size, len(expected), reused)


class LocalParts:
    """Parts staged in `staging/<hash of key>/` on the console machine, then written in one piece."""

    def __init__(self, volume: LocalVolume, staging: Path):
        self.volume = volume
        self.staging = Path(staging)

    def _dir(self, key: str) -> Path:
        return self.staging / hashlib.sha256(key.encode()).hexdigest()[:24]

    def resume(self, key: str, size: int, part_size: int) -> tuple[str, dict[int, str]]:
        folder = self._dir(key)
        manifest = {"key": key, "size": size, "part_size": part_size}
        try:
            same = json.loads((folder / "manifest.json").read_text()) == manifest
        except (OSError, ValueError):
            same = False
        if not same:   # another file, or another part size: nothing to reuse
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "manifest.json").write_text(json.dumps(manifest))
        expected = _part_sizes(size, part_size)
        existing = {}
        for number, length in expected.items():
            path = folder / f"{number:05d}.part"
            if path.is_file() and path.stat().st_size == length:
                existing[number] = _md5(path.read_bytes())
        return folder.name, existing

    def put(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        folder = self.staging / upload_id
        tmp = folder / f"{number:05d}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{number:05d}.part")   # a part is either whole or absent
        return _md5(data)

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]], size: int) -> None:
        folder = self.staging / upload_id
        whole = folder / "assembled"
        with open(whole, "wb") as out:
            for number, _ in parts:
                with open(folder / f"{number:05d}.part", "rb") as part:
                    shutil.copyfileobj(part, out)
        self.volume.write(key, whole)
        shutil.rmtree(folder, ignore_errors=True)


class S3Parts:
    """RunPod's S3 API multipart upload, resumed through ListMultipartUploads and ListParts."""

    def __init__(self, client, bucket: str, *, complete_client=None, max_part_retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.complete_client = complete_client or client
        self.bucket = bucket
        self.max_part_retries = max_part_retries
        self._sleep = sleep

    @classmethod
    def for_volume(cls, volume: S3Volume, settings: Settings) -> S3Parts:
        import boto3

        session = boto3.session.Session()
        creds = dict(region_name=volume.region, endpoint_url=volume.endpoint_url,
                     aws_access_key_id=settings.s3_access_key.reveal(),
                     aws_secret_access_key=settings.s3_secret_key.reveal())
        return cls(session.client("s3", config=_s3_config(300.0), **creds), volume.bucket,
                   complete_client=session.client("s3", config=_s3_config(S3Volume.COMPLETE_READ_TIMEOUT_S),
                                                  **creds))

    def _call(self, action: str, key: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status == 507 or code == "InsufficientStorage":
                raise _Failed(f"cannot {action} {key}: the network volume is full — grow [volume] size_gb and "
                              f"apply, then upload again", transient=False) from None
            # 524 is RunPod's proxy timeout; other 5xx and throttling pass too (reference §4).
            transient = status >= 500 or code in ("SlowDown", "RequestTimeout")
            raise _Failed(f"cannot {action} {key} on volume {self.bucket}: {code or status} — the parts uploaded "
                          f"so far stay on the volume; upload again to resume", transient=transient) from None
        except BotoCoreError as exc:
            raise _Failed(f"cannot {action} {key} on volume {self.bucket}: {type(exc).__name__} — check the "
                          f"network; upload again to resume", transient=True) from None

    def resume(self, key: str, size: int, part_size: int) -> tuple[str, dict[int, str]]:
        listed = self._call("look for an unfinished upload of", key, self.client.list_multipart_uploads,
                            Prefix=key)
        uploads = [u for u in listed.get("Uploads", []) if u.get("Key") == key]
        if not uploads:
            started = self._call("start uploading", key, self.client.create_multipart_upload, Key=key)
            return started["UploadId"], {}
        upload_id = max(uploads, key=lambda u: u["Initiated"])["UploadId"]
        expected = _part_sizes(size, part_size)
        existing: dict[int, str] = {}
        marker = 0
        while True:
            page = self._call("list the uploaded parts of", key, self.client.list_parts, Key=key,
                              UploadId=upload_id, PartNumberMarker=marker)
            for part in page.get("Parts", []):
                number = part["PartNumber"]
                if expected.get(number) == part.get("Size"):
                    existing[number] = str(part.get("ETag", "")).strip('"')
            if not page.get("IsTruncated"):
                return upload_id, existing
            marker = page["NextPartNumberMarker"]

    def put(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        attempt = 0
        while True:
            try:
                answer = self._call(f"upload part {number} of", key, self.client.upload_part, Key=key,
                                    UploadId=upload_id, PartNumber=number, Body=data)
                return str(answer["ETag"]).strip('"')
            except _Failed as failure:
                if not failure.transient or attempt >= self.max_part_retries:
                    raise
            self._sleep(min(2.0 ** attempt, 30.0))
            attempt += 1

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]], size: int) -> None:
        self._call("finish uploading", key, self.complete_client.complete_multipart_upload, Key=key,
                   UploadId=upload_id,
                   MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]})


class _Failed(VolumeError):
    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


def parts_for(volume, *, staging: Path, settings: Settings) -> Parts:
    if isinstance(volume, S3Volume):
        return S3Parts.for_volume(volume, settings)
    if isinstance(volume, LocalVolume):
        return LocalParts(volume, staging)
    raise TypeError(f"no resumable uploads for {type(volume).__name__}")
