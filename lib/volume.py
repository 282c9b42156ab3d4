"""The network volume, through one interface with two backends.

* ``S3Volume``: RunPod's S3-compatible API (bucket = volume id, region = datacenter id) via boto3.
* ``LocalVolume``: a directory — the simulator's ``/runpod-volume``.

Keys are relative POSIX paths inside the volume ("models/loras/x.safetensors"); ``safe_key``
refuses anything that could escape it. RunPod's S3 API has no DeleteObjects and no UploadPartCopy,
so deletes are one object at a time and copies are a single CopyObject.
"""
from __future__ import annotations

import functools
import io
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from lib.config import ConsoleConfig, Secret, Settings
from lib.errors import ConsoleError

MiB = 1024 * 1024
_COPY_CHUNK = 8 * MiB
_TMP_SUFFIX = ".part"
Progress = Callable[[int, int], None]
Data = bytes | bytearray | memoryview | BinaryIO | Path


@dataclass(frozen=True)
class VolumeObject:
    key: str
    size: int
    modified: datetime
    etag: str | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class VolumeError(ConsoleError):
    """A volume operation failed; the message says which file, why, and what to do."""


class VolumeNotFound(VolumeError):
    pass


class UnsafeKey(VolumeError, ValueError):
    pass


def safe_key(key: str) -> str:
    """A normalised relative key ('a//./b/' ⇒ 'a/b'), or UnsafeKey for anything that could leave the volume."""
    cleaned = _clean(key, what="file path")
    if not cleaned:
        raise UnsafeKey(f"empty file path {key!r} — name a file inside the volume, e.g. 'models/loras/x.safetensors'")
    return cleaned


def safe_prefix(prefix: str) -> str:
    """Like safe_key, but '' (the whole volume) is allowed and a trailing '/' is kept."""
    if prefix in ("", "/"):
        return ""
    cleaned = _clean(prefix, what="folder path")
    if not cleaned:
        return ""
    return cleaned + "/" if prefix.endswith("/") else cleaned


def _clean(value: str, *, what: str) -> str:
    if not isinstance(value, str):
        raise UnsafeKey(f"{what} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise UnsafeKey(f"{what} {value!r} contains a NUL character — remove it")
    if "\\" in value:
        raise UnsafeKey(f"{what} {value!r} contains a backslash — use '/' between folders")
    if value.startswith("/"):
        raise UnsafeKey(f"{what} {value!r} is absolute — give it relative to the volume root "
                        f"(without a leading '/')")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeKey(f"{what} {value!r} contains '..' — paths may not leave the volume")
    return "/".join(parts)


def as_dir(prefix: str) -> str:
    prefix = safe_prefix(prefix)
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


@contextmanager
def _open_source(data: Data) -> Iterator[tuple[BinaryIO, int]]:
    """A readable stream positioned at the data and its size; caller-owned streams are not closed."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(data)), len(data)
    elif isinstance(data, Path):
        try:
            f = open(data, "rb")
        except FileNotFoundError:
            raise VolumeError(f"local file {data} not found — nothing to upload") from None
        with f:
            yield f, os.fstat(f.fileno()).st_size
    elif hasattr(data, "read"):
        if getattr(data, "seekable", lambda: False)():
            start = data.tell()
            end = data.seek(0, os.SEEK_END)
            data.seek(start)
            yield data, end - start
        else:  # a pipe-like stream: its size is only known once read
            content = data.read()
            yield io.BytesIO(content), len(content)
    else:
        raise TypeError(f"write() takes bytes, a binary file object or a Path, not {type(data).__name__}")


def _copy_stream(src: BinaryIO, dst: BinaryIO, total: int, progress: Progress | None) -> None:
    done = 0
    while chunk := src.read(_COPY_CHUNK):
        dst.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if progress is not None and done == 0:
        progress(0, total)


def _replace_atomically(dest: Path, fill: Callable[[BinaryIO], None]) -> None:
    """Write dest through a temporary sibling + rename, so readers never see half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def _counts_change(method):
    @functools.wraps(method)
    def changing(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:  # a failed change may still have changed something: count it too
            self.version += 1
    return changing


class Volume(ABC):
    #: Bumped by every write, delete, copy and move made through this object. Cached listings use
    #: it as part of their key, so a page never shows a folder as it was before the console
    #: itself changed it (a promoted LoRA, an uploaded model).
    version: int = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("write", "delete", "copy", "move"):
            if name in cls.__dict__:
                setattr(cls, name, _counts_change(cls.__dict__[name]))

    @abstractmethod
    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[VolumeObject]:
        """Every file whose key starts with prefix, recursively, in key order."""

    @abstractmethod
    def list_dir(self, prefix: str = "") -> tuple[list[str], list[VolumeObject]]:
        """One level of a folder: (sub-folder prefixes ending in '/', files)."""

    @abstractmethod
    def head(self, key: str) -> VolumeObject:
        """Size and date of one file; VolumeNotFound if it does not exist."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        ...

    @abstractmethod
    def download(self, key: str, dest: Path, progress: Progress | None = None) -> Path:
        ...

    @abstractmethod
    def write(self, key: str, data: Data, *, progress: Progress | None = None) -> VolumeObject:
        ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one file; VolumeNotFound if it does not exist."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> VolumeObject:
        ...

    def move(self, src: str, dst: str) -> VolumeObject:
        obj = self.copy(src, dst)
        self.delete(src)
        return obj

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except VolumeNotFound:
            return False
        return True


# --------------------------------------------------------------------------- local directory


class LocalVolume(Volume):
    """A directory standing in for the network volume (what simulated workers see as /runpod-volume)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()

    def __repr__(self) -> str:
        return f"LocalVolume({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        key = safe_key(key)
        path = self.root / key
        if not path.resolve().is_relative_to(self._real_root):
            raise UnsafeKey(f"{key!r} leads outside the volume through a symbolic link — refused")
        return path

    def _object(self, key: str, path: Path) -> VolumeObject:
        st = path.stat()
        return VolumeObject(key=key, size=st.st_size, modified=datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def _file(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise VolumeNotFound(f"{safe_key(key)} not found on the volume"
                                 + (" (it is a folder)" if path.is_dir() else ""))
        return path

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[VolumeObject]:
        prefix = safe_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return
        keys = []
        for dirpath, _, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not _is_tmp(name) and key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                yield self._object(key, self.root / key)
            except FileNotFoundError:
                continue  # deleted while we listed

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[VolumeObject]]:
        prefix = as_dir(prefix)
        folder = self.root / prefix
        if not folder.is_dir():
            return [], []
        dirs, files = [], []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir():
                dirs.append(f"{prefix}{entry.name}/")
            elif entry.is_file() and not _is_tmp(entry.name):
                files.append(self._object(prefix + entry.name, Path(entry.path)))
        return dirs, files

    def head(self, key: str) -> VolumeObject:
        return self._object(safe_key(key), self._file(key))

    def read(self, key: str) -> bytes:
        return self._file(key).read_bytes()

    def download(self, key: str, dest: Path, progress: Progress | None = None) -> Path:
        src = self._file(key)
        dest = Path(dest)
        total = src.stat().st_size
        with open(src, "rb") as f:
            _replace_atomically(dest, lambda out: _copy_stream(f, out, total, progress))
        return dest

    def write(self, key: str, data: Data, *, progress: Progress | None = None) -> VolumeObject:
        path = self._path(key)
        if path.is_dir():
            raise VolumeError(f"{safe_key(key)} is a folder on the volume — choose a file name")
        with _open_source(data) as (stream, total):
            try:
                _replace_atomically(path, lambda out: _copy_stream(stream, out, total, progress))
            except (NotADirectoryError, FileExistsError):
                raise VolumeError(f"cannot write {safe_key(key)}: a file on the volume has the name of one of "
                                  f"its folders") from None
        return self.head(key)

    def delete(self, key: str) -> None:
        self._file(key).unlink()

    def copy(self, src: str, dst: str) -> VolumeObject:
        self._path(dst)  # refuse an unsafe destination before looking at the source
        return self.write(dst, self._file(src))

    def move(self, src: str, dst: str) -> VolumeObject:
        target = self._path(dst)
        source = self._file(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return self.head(dst)


# --------------------------------------------------------------------------- RunPod S3 API


def _s3_config(read_timeout_s: float):
    from botocore.config import Config

    return Config(
        # RunPod's docs advise raising attempts because of 502s during transfers.
        retries={"max_attempts": 10, "mode": "standard"},
        # boto3 >= 1.36 adds CRC32 checksums to every upload by default; whether RunPod's S3 API
        # accepts them is not confirmed, so only send/verify checksums where an operation needs one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Bucket-in-hostname for s3api-<dc>.runpod.io is not confirmed: path style always works.
        s3={"addressing_style": "path"},
        connect_timeout=10,
        read_timeout=read_timeout_s,
    )


class S3Volume(Volume):
    """The network volume through RunPod's S3-compatible API (boto3; clients are thread-safe)."""

    # RunPod's docs: CompleteMultipartUpload of 10 GB+ files may take very long; allow 2 h.
    COMPLETE_READ_TIMEOUT_S = 7200.0
    list_page_size = 1000  # keys per ListObjectsV2 page in list_dir (list() takes page_size)

    def __init__(self, *, bucket: str, region: str, endpoint_url: str, access_key: Secret, secret_key: Secret,
                 client=None, multipart_threshold: int = 64 * MiB, part_size: int = 32 * MiB,
                 max_part_retries: int = 3, sleep: Callable[[float], None] = time.sleep,
                 complete_poll_s: float = 10.0, complete_poll_attempts: int = 60):
        if part_size <= 0 or multipart_threshold < part_size:
            raise ValueError("S3Volume needs 0 < part_size <= multipart_threshold")
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_part_retries = max_part_retries
        self._sleep = sleep
        self._complete_poll_s = complete_poll_s
        self._complete_poll_attempts = complete_poll_attempts
        self._secret = secret_key.reveal() if isinstance(secret_key, Secret) else ""
        if client is None:
            import boto3

            session = boto3.session.Session()
            creds = dict(region_name=region, endpoint_url=endpoint_url,
                         aws_access_key_id=access_key.reveal(), aws_secret_access_key=secret_key.reveal())
            client = session.client("s3", config=_s3_config(300.0), **creds)
            self._complete_client = session.client("s3", config=_s3_config(self.COMPLETE_READ_TIMEOUT_S), **creds)
        else:
            self._complete_client = client
        self._client = client

    def __repr__(self) -> str:
        return f"S3Volume(bucket={self.bucket!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    # ------------------------------------------------------------------ errors

    @contextmanager
    def _errors(self, action: str, key: str = ""):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, action, key) from None
        except BotoCoreError as exc:
            raise VolumeError(f"cannot {action} {key or self.bucket} on {self.endpoint_url}: "
                              f"{self._scrub(str(exc))} — check the network and RUNPOD_S3_URL") from None

    def _client_error(self, exc, action: str, key: str) -> VolumeError:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = self._scrub(str(err.get("Message") or code or exc))
        what = key or self.bucket
        if code in ("NoSuchKey", "NotFound", "404") or (status == 404 and code != "NoSuchBucket"):
            return VolumeNotFound(f"{what} not found on volume {self.bucket}")
        if code == "NoSuchBucket":
            return VolumeError(f"network volume {self.bucket} not found at {self.endpoint_url} — check [volume] id "
                               f"and datacenter in console.toml")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status == 403:
            return VolumeError(f"cannot {action} {what}: the S3 API key was refused ({code}) — check "
                               f"RUNPOD_S3_ACCESS_KEY and RUNPOD_S3_SECRET_KEY (RunPod console → Settings → "
                               f"S3 API Keys)")
        if status == 507 or code == "InsufficientStorage":
            return VolumeError(f"cannot {action} {what}: the network volume is full — increase its size in "
                               f"the RunPod console or delete unused files")
        return VolumeError(f"cannot {action} {what}: {code or status} {message} — try again")

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _obj(self, key: str, size: int, modified: datetime, etag: str | None) -> VolumeObject:
        return VolumeObject(key=key, size=int(size), modified=modified, etag=etag.strip('"') if etag else None)

    # ------------------------------------------------------------------ listing

    def _pages(self, **kwargs) -> Iterator[dict]:
        seen: set[str] = set()
        while True:
            with self._errors("list", kwargs.get("Prefix", "")):
                page = self._client.list_objects_v2(Bucket=self.bucket, **kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token or token in seen:
                # Known RunPod issue on the first listing of big folders not written through S3.
                raise VolumeError(f"listing {kwargs.get('Prefix') or 'the volume'} stopped: RunPod's S3 API "
                                  f"repeated a page token — try again in a minute (large folders are indexed "
                                  f"lazily)")
            seen.add(token)
            kwargs["ContinuationToken"] = token

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[VolumeObject]:
        for page in self._pages(Prefix=safe_prefix(prefix), MaxKeys=page_size):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # RunPod lists empty directories as "dir/" entries
                    yield self._obj(item["Key"], item["Size"], item["LastModified"], item.get("ETag"))

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[VolumeObject]]:
        prefix = as_dir(prefix)
        dirs: list[str] = []
        files: list[VolumeObject] = []
        for page in self._pages(Prefix=prefix, Delimiter="/", MaxKeys=self.list_page_size):
            dirs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    files.append(self._obj(item["Key"], item["Size"], item["LastModified"], item.get("ETag")))
        return sorted(set(dirs)), files

    # ------------------------------------------------------------------ reading

    def head(self, key: str) -> VolumeObject:
        key = safe_key(key)
        with self._errors("read", key):
            meta = self._client.head_object(Bucket=self.bucket, Key=key)
        return self._obj(key, meta["ContentLength"], meta["LastModified"], meta.get("ETag"))

    def read(self, key: str) -> bytes:
        key = safe_key(key)
        with self._errors("read", key):
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def download(self, key: str, dest: Path, progress: Progress | None = None) -> Path:
        key = safe_key(key)
        dest = Path(dest)
        with self._errors("download", key):
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
            total = int(answer["ContentLength"])
            body = answer["Body"]
            try:
                _replace_atomically(dest, lambda out: _copy_stream(body, out, total, progress))
            finally:
                body.close()
        return dest

    # ------------------------------------------------------------------ writing

    def write(self, key: str, data: Data, *, progress: Progress | None = None) -> VolumeObject:
        key = safe_key(key)
        with _open_source(data) as (stream, total):
            if total <= self.multipart_threshold:
                body = stream.read(total)
                with self._errors("upload", key):
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
                if progress is not None:
                    progress(total, total)
            else:
                self._multipart(key, stream, total, progress)
        return self.head(key)

    def _multipart(self, key: str, stream: BinaryIO, total: int, progress: Progress | None) -> None:
        with self._errors("start uploading", key):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts, done, number = [], 0, 1
        try:
            while chunk := stream.read(self.part_size):
                parts.append({"PartNumber": number, "ETag": self._upload_part(key, upload_id, number, chunk)})
                done += len(chunk)
                number += 1
                if progress is not None:
                    progress(done, total)
        except BaseException:
            self._abort(key, upload_id)
            raise
        # Not aborted past this point: an unconfirmed Complete may still be assembling the file.
        self._complete(key, upload_id, parts, total)

    def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(self.max_part_retries + 1):
            try:
                return self._client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                PartNumber=number, Body=chunk)["ETag"]
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                code = exc.response.get("Error", {}).get("Code", "")
                # 524 is RunPod's proxy timeout; other 5xx and throttling pass too. 507 = volume full.
                transient = (status >= 500 and status != 507) or code in ("SlowDown", "RequestTimeout")
                if not transient:
                    raise self._client_error(exc, f"upload part {number} of", key) from None
                failure = f"HTTP {status} {code}".strip()
            except BotoCoreError as exc:
                failure = self._scrub(str(exc))
            if attempt < self.max_part_retries:
                self._sleep(min(2.0 ** attempt, 30.0))
        raise VolumeError(f"cannot upload {key}: part {number} failed {self.max_part_retries + 1} times ({failure}) "
                          f"— check the connection and try again")

    def _complete(self, key: str, upload_id: str, parts: list[dict], total: int) -> None:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ReadTimeoutError,
        )

        try:
            self._complete_client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
            return
        except (ReadTimeoutError, ConnectionClosedError):
            pass  # RunPod may still be assembling the file: wait for it below
        except ClientError as exc:
            # A retried Complete finds the upload already finished: the first one went through.
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                self._abort(key, upload_id)
                raise self._client_error(exc, "finish uploading", key) from None
        for _ in range(self._complete_poll_attempts):
            try:
                if self.head(key).size == total:
                    return
            except VolumeNotFound:
                pass
            self._sleep(self._complete_poll_s)
        raise VolumeError(f"cannot confirm the upload of {key}: RunPod did not finish assembling it in time — "
                          f"check the file's size on the volume before uploading again")

    def _abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass  # the original failure is what the user needs; staged parts expire with .s3compat_uploads

    # ------------------------------------------------------------------ changing

    def delete(self, key: str) -> None:
        key = safe_key(key)
        self.head(key)  # S3 deletes of a missing key succeed silently; say so instead
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def copy(self, src: str, dst: str) -> VolumeObject:
        src, dst = safe_key(src), safe_key(dst)
        with self._errors("copy", src):
            self._client.copy_object(Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src})
        return self.head(dst)


def volume_from_settings(settings: Settings, config: ConsoleConfig, *, local_root: Path | None) -> Volume:
    """Simulator mode (local_root given) ⇒ LocalVolume; otherwise the real volume over S3."""
    if local_root is not None:
        return LocalVolume(local_root)
    if not settings.s3_access_key or not settings.s3_secret_key:
        raise VolumeError("the network volume needs an S3 API key: set RUNPOD_S3_ACCESS_KEY and "
                          "RUNPOD_S3_SECRET_KEY (RunPod console → Settings → S3 API Keys)")
    dc = config.volume.datacenter
    return S3Volume(bucket=config.volume.id, region=dc, endpoint_url=settings.s3_endpoint_for(dc),
                    access_key=settings.s3_access_key, secret_key=settings.s3_secret_key)
