"""LocalVolume and S3Volume (moto) through one parametrized suite, plus S3-only failure handling."""
from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto import mock_aws

from lib.config import ConsoleConfig, Secret, Settings
from lib.volume import (
    LocalVolume,
    S3Volume,
    UnsafeKey,
    VolumeError,
    VolumeNotFound,
    VolumeObject,
    safe_key,
    safe_prefix,
    volume_from_settings,
)

MiB = 1024 * 1024
BUCKET = "vol-test"
SECRET = "rps_CANARY_SECRET_91ab"


class Spy:
    """Delegates to a boto3 client; records calls and can inject failures per method."""

    def __init__(self, inner):
        self._inner = inner
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, callable] = {}

    def __getattr__(self, name):
        target = getattr(self._inner, name)

        def call(**kwargs):
            self.calls.append((name, kwargs))
            if name in self.fail:
                injected = self.fail[name](kwargs)
                if injected is not None:
                    raise injected
            return target(**kwargs)
        return call

    def names(self, method):
        return [kw for name, kw in self.calls if name == method]


def client_error(status, code, message="injected"):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "UploadPart")


@pytest.fixture
def s3_spy():
    with mock_aws():
        raw = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                           aws_secret_access_key=SECRET)
        raw.create_bucket(Bucket=BUCKET)
        yield Spy(raw)


def make_s3(client, **kw):
    params = dict(bucket=BUCKET, region="us-east-1", endpoint_url="https://s3.amazonaws.com",
                  access_key=Secret("AKIDTEST"), secret_key=Secret(SECRET), client=client,
                  multipart_threshold=6 * MiB, part_size=5 * MiB, sleep=lambda s: None, complete_poll_s=0)
    params.update(kw)
    return S3Volume(**params)


@pytest.fixture(params=["local", "s3"])
def volume(request, tmp_path):
    if request.param == "local":
        yield LocalVolume(tmp_path / "runpod-volume")
    else:
        with mock_aws():
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            # Our own boto3 client construction (config, credentials) is exercised here.
            vol = S3Volume(bucket=BUCKET, region="us-east-1", endpoint_url="https://s3.amazonaws.com",
                           access_key=Secret("AKIDTEST"), secret_key=Secret(SECRET),
                           multipart_threshold=6 * MiB, part_size=5 * MiB, sleep=lambda s: None)
            yield vol


# ---------------------------------------------------------------------------- shared suite


def test_write_head_read_exists(volume):
    obj = volume.write("datasets/anna/img 01.png", b"png-bytes")
    assert isinstance(obj, VolumeObject)
    assert (obj.key, obj.size, obj.name) == ("datasets/anna/img 01.png", 9, "img 01.png")
    assert isinstance(obj.modified, datetime) and obj.modified.tzinfo is not None
    assert volume.head("datasets/anna/img 01.png").size == 9
    assert volume.read("datasets/anna/img 01.png") == b"png-bytes"
    assert volume.exists("datasets/anna/img 01.png")
    assert not volume.exists("datasets/anna/missing.png")


def test_missing_files(volume):
    for call in (lambda: volume.head("nope.bin"), lambda: volume.read("nope.bin"),
                 lambda: volume.delete("nope.bin"), lambda: volume.copy("nope.bin", "b.bin")):
        with pytest.raises(VolumeNotFound, match="nope.bin"):
            call()


def test_write_sources_and_small_progress(volume, tmp_path):
    local = tmp_path / "src.bin"
    local.write_bytes(b"from a path")
    seen = []
    volume.write("a/path.bin", local, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (11, 11)
    stream = io.BytesIO(b"skip:stream")
    stream.seek(5)
    volume.write("a/stream.bin", stream)
    assert volume.read("a/stream.bin") == b"stream"
    volume.write("a/empty.bin", b"")
    assert volume.head("a/empty.bin").size == 0


def test_overwrite_replaces(volume):
    volume.write("models/x.safetensors", b"v1")
    volume.write("models/x.safetensors", b"version-2")
    assert volume.read("models/x.safetensors") == b"version-2"


def test_multipart_write_with_progress(volume, tmp_path):
    data = os.urandom(12 * MiB + 123)
    seen = []
    obj = volume.write("models/big.safetensors", data, progress=lambda d, t: seen.append((d, t)))
    assert obj.size == len(data)
    assert volume.read("models/big.safetensors") == data
    assert seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 2
    if isinstance(volume, S3Volume):
        assert [d for d, _ in seen] == [5 * MiB, 10 * MiB, len(data)]  # one report per part
    dest = volume.download("models/big.safetensors", tmp_path / "out" / "big.bin",
                           progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == data and seen[-1] == (len(data), len(data))
    assert [p.name for p in dest.parent.iterdir()] == ["big.bin"]  # no temporary left behind


def test_list_recursive_paginated_in_key_order(volume):
    keys = [f"loras/{c}/{i:02d}.safetensors" for c in ("anna", "bob") for i in range(12)] + ["loras.txt", "x.txt"]
    for k in keys:
        volume.write(k, k.encode())
    listed = list(volume.list("loras", page_size=7))
    assert [o.key for o in listed] == sorted(k for k in keys if k.startswith("loras"))
    assert all(o.size == len(o.key) for o in listed)
    assert [o.key for o in volume.list("loras/bob/", page_size=5)] == [f"loras/bob/{i:02d}.safetensors"
                                                                       for i in range(12)]
    assert len(list(volume.list(page_size=1000))) == len(keys)
    assert list(volume.list("nothing/")) == []


def test_list_dir_one_level(volume):
    for k in ["models/checkpoints/a.safetensors", "models/loras/b.safetensors", "models/loras/c.safetensors",
              "models/readme.txt", "models/vae/d/e.bin", "other.txt"]:
        volume.write(k, b"x")
    dirs, files = volume.list_dir("models")
    assert dirs == ["models/checkpoints/", "models/loras/", "models/vae/"]
    assert [f.key for f in files] == ["models/readme.txt"]
    dirs, files = volume.list_dir("")
    assert dirs == ["models/"] and [f.key for f in files] == ["other.txt"]
    assert volume.list_dir("nowhere/") == ([], [])


def test_list_dir_paginates(volume):
    if isinstance(volume, S3Volume):
        volume.list_page_size = 3
    for i in range(8):
        volume.write(f"sets/f{i}.png", b"p")
        volume.write(f"sets/d{i}/x.png", b"p")
    dirs, files = volume.list_dir("sets/")
    assert dirs == [f"sets/d{i}/" for i in range(8)]
    assert [f.key for f in files] == [f"sets/f{i}.png" for i in range(8)]


def test_delete_copy_move(volume):
    volume.write("loras/anna/v1.safetensors", b"weights")
    copied = volume.copy("loras/anna/v1.safetensors", "models/loras/anna.safetensors")
    assert copied.key == "models/loras/anna.safetensors" and copied.size == 7
    assert volume.read("loras/anna/v1.safetensors") == b"weights"
    moved = volume.move("models/loras/anna.safetensors", "models/loras/anna-final.safetensors")
    assert moved.size == 7
    assert not volume.exists("models/loras/anna.safetensors")
    volume.delete("loras/anna/v1.safetensors")
    assert not volume.exists("loras/anna/v1.safetensors")
    assert [o.key for o in volume.list()] == ["models/loras/anna-final.safetensors"]


@pytest.mark.parametrize("bad", ["../../x", "/etc/passwd", "a\\b", "a\x00b", "", "models/../../x", "./.."])
def test_unsafe_keys_refused(volume, bad):
    for call in (lambda: volume.write(bad, b"x"), lambda: volume.read(bad), lambda: volume.head(bad),
                 lambda: volume.delete(bad), lambda: volume.copy("a", bad)):
        with pytest.raises(UnsafeKey):
            call()
    assert list(volume.list()) == []


def test_keys_are_normalised(volume):
    volume.write("./models//loras/./x.bin", b"1")
    assert [o.key for o in volume.list()] == ["models/loras/x.bin"]


# ---------------------------------------------------------------------------- safe_key


@pytest.mark.parametrize("raw, clean", [
    ("a/b.txt", "a/b.txt"), ("a//b/", "a/b"), ("./a/./b", "a/b"), ("dir with space/é.png", "dir with space/é.png"),
])
def test_safe_key_normalises(raw, clean):
    assert safe_key(raw) == clean


@pytest.mark.parametrize("bad, fragment", [
    ("../../x", "'..'"), ("/etc/passwd", "absolute"), ("a\\b", "backslash"), ("a\x00", "NUL"), ("", "empty"),
    (".", "empty"),
])
def test_safe_key_messages(bad, fragment):
    with pytest.raises(UnsafeKey, match=fragment):
        safe_key(bad)


def test_safe_prefix_keeps_folder_slash():
    assert safe_prefix("") == "" and safe_prefix("/") == ""
    assert safe_prefix("models/") == "models/" and safe_prefix("models/lo") == "models/lo"
    with pytest.raises(UnsafeKey):
        safe_prefix("../")


# ---------------------------------------------------------------------------- local only


def test_local_writes_are_atomic_and_temporaries_hidden(tmp_path):
    vol = LocalVolume(tmp_path / "v")
    (tmp_path / "v" / "models").mkdir()
    (tmp_path / "v" / "models" / ".x.bin.1234abcd.part").write_bytes(b"half")  # an interrupted write

    def explode(done, total):
        raise RuntimeError("disk unplugged")
    with pytest.raises(RuntimeError):
        vol.write("models/x.bin", b"data" * 10, progress=explode)
    assert not vol.exists("models/x.bin")
    assert list(vol.list()) == [] and vol.list_dir("models") == ([], [])
    assert sorted(p.name for p in (tmp_path / "v" / "models").iterdir()) == [".x.bin.1234abcd.part"]


def test_local_symlink_escape_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    vol = LocalVolume(tmp_path / "v")
    (tmp_path / "v" / "link").symlink_to(outside)
    with pytest.raises(UnsafeKey, match="outside the volume"):
        vol.read("link/secret.txt")


def test_local_folder_is_not_a_file(tmp_path):
    vol = LocalVolume(tmp_path / "v")
    vol.write("a/b.txt", b"x")
    with pytest.raises(VolumeNotFound, match="folder"):
        vol.read("a")
    with pytest.raises(VolumeError, match="folder"):
        vol.write("a", b"x")


# ---------------------------------------------------------------------------- S3 only


def test_failed_part_is_retried_alone(s3_spy):
    state = {"failed": False}

    def fail_part_two_once(kwargs):
        if kwargs["PartNumber"] == 2 and not state["failed"]:
            state["failed"] = True
            return client_error(524, "524", "proxy timeout")
    s3_spy.fail["upload_part"] = fail_part_two_once
    vol = make_s3(s3_spy)
    data = os.urandom(11 * MiB)
    progress = []
    vol.write("models/flux.safetensors", data, progress=lambda d, t: progress.append(d))
    assert [kw["PartNumber"] for kw in s3_spy.names("upload_part")] == [1, 2, 2, 3]
    assert len(s3_spy.names("create_multipart_upload")) == 1 and s3_spy.names("put_object") == []
    assert progress == [5 * MiB, 10 * MiB, 11 * MiB]
    assert vol.read("models/flux.safetensors") == data


def test_connection_errors_on_a_part_are_retried(s3_spy):
    count = {"n": 0}

    def flaky(kwargs):
        count["n"] += 1
        if count["n"] <= 2:
            return EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
    s3_spy.fail["upload_part"] = flaky
    sleeps = []
    vol = make_s3(s3_spy, sleep=sleeps.append)
    vol.write("a.bin", os.urandom(7 * MiB))
    assert [kw["PartNumber"] for kw in s3_spy.names("upload_part")] == [1, 1, 1, 2]
    assert sleeps == [1.0, 2.0]


def test_part_failing_for_good_aborts_upload(s3_spy):
    s3_spy.fail["upload_part"] = lambda kw: client_error(502, "BadGateway") if kw["PartNumber"] == 2 else None
    vol = make_s3(s3_spy, max_part_retries=2)
    with pytest.raises(VolumeError, match="part 2 failed 3 times"):
        vol.write("models/big.bin", os.urandom(11 * MiB))
    assert len(s3_spy.names("abort_multipart_upload")) == 1
    assert not vol.exists("models/big.bin")
    assert s3_spy._inner.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_non_transient_part_error_is_not_retried(s3_spy):
    s3_spy.fail["upload_part"] = lambda kw: client_error(403, "AccessDenied", f"bad signature {SECRET}")
    vol = make_s3(s3_spy)
    with pytest.raises(VolumeError) as info:
        vol.write("models/big.bin", os.urandom(7 * MiB))
    assert len(s3_spy.names("upload_part")) == 1
    assert "RUNPOD_S3_ACCESS_KEY" in str(info.value) and SECRET not in str(info.value)


def test_timed_out_complete_is_confirmed_by_head(s3_spy):
    real_complete = s3_spy._inner.complete_multipart_upload

    def complete_then_time_out(kwargs):
        real_complete(**kwargs)
        return ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")
    s3_spy.fail["complete_multipart_upload"] = complete_then_time_out
    vol = make_s3(s3_spy)
    data = os.urandom(7 * MiB)
    assert vol.write("models/huge.bin", data).size == len(data)
    assert s3_spy.names("abort_multipart_upload") == []
    assert len(s3_spy.names("head_object")) >= 1


def test_unconfirmed_complete_says_what_to_check(s3_spy):
    s3_spy.fail["complete_multipart_upload"] = lambda kw: ReadTimeoutError(endpoint_url="x")
    sleeps = []
    vol = make_s3(s3_spy, complete_poll_attempts=3, complete_poll_s=5, sleep=sleeps.append)
    with pytest.raises(VolumeError, match="cannot confirm the upload"):
        vol.write("models/huge.bin", os.urandom(7 * MiB))
    assert sleeps == [5, 5, 5]


def test_delete_is_single_object(s3_spy):
    vol = make_s3(s3_spy)
    vol.write("a.bin", b"1")
    vol.delete("a.bin")
    assert [kw["Key"] for kw in s3_spy.names("delete_object")] == ["a.bin"]
    assert s3_spy.names("delete_objects") == []


def test_missing_bucket_message(s3_spy):
    vol = make_s3(s3_spy, bucket="vol-missing")
    with pytest.raises(VolumeError, match="network volume vol-missing not found"):
        list(vol.list())


def test_repeated_page_token_is_an_error():
    class Looping:
        def list_objects_v2(self, **kw):
            return {"Contents": [{"Key": "a", "Size": 1, "LastModified": datetime(2026, 1, 1)}],
                    "IsTruncated": True, "NextContinuationToken": "same"}
    vol = make_s3(Looping())
    with pytest.raises(VolumeError, match="repeated a page token"):
        list(vol.list())


def test_volume_from_settings(tmp_path):
    config = ConsoleConfig.load(Path(__file__).resolve().parents[2] / "console.toml")
    local = volume_from_settings(Settings(api_key=Secret("")), config, local_root=tmp_path / "vol")
    assert isinstance(local, LocalVolume) and (tmp_path / "vol").is_dir()
    with pytest.raises(VolumeError, match="RUNPOD_S3_ACCESS_KEY"):
        volume_from_settings(Settings(api_key=Secret("k")), config, local_root=None)
    s3 = volume_from_settings(Settings(api_key=Secret("k"), s3_access_key=Secret("user_1"),
                                       s3_secret_key=Secret(SECRET)), config, local_root=None)
    assert isinstance(s3, S3Volume)
    assert (s3.bucket, s3.region, s3.endpoint_url) == ("vol-characters", "EU-RO-1", "https://s3api-eu-ro-1.runpod.io")
    cfg = s3._client.meta.config
    assert cfg.retries == {"total_max_attempts": 11, "mode": "standard"}  # botocore's form of max_attempts=10
    assert cfg.request_checksum_calculation == "when_required"
    assert s3._complete_client.meta.config.read_timeout == S3Volume.COMPLETE_READ_TIMEOUT_S
    assert SECRET not in repr(s3)


def test_list_requests_one_page_at_a_time(s3_spy):
    vol = make_s3(s3_spy)
    for i in range(25):
        vol.write(f"d/{i:02d}", b"x")
    s3_spy.calls.clear()
    gen = vol.list("d/", page_size=7)
    first = [next(gen) for _ in range(7)]
    assert len(s3_spy.names("list_objects_v2")) == 1 and first[0].key == "d/00"
    assert len(first) + len(list(gen)) == 25
    pages = s3_spy.names("list_objects_v2")
    assert len(pages) == 4 and all(p["MaxKeys"] == 7 for p in pages)
    assert "ContinuationToken" not in pages[0] and all("ContinuationToken" in p for p in pages[1:])


def test_every_change_bumps_the_volume_version(tmp_path):
    from lib.volume import LocalVolume
    vol = LocalVolume(tmp_path)
    start = vol.version
    vol.write("a/x.txt", b"1")
    vol.copy("a/x.txt", "a/y.txt")
    vol.move("a/y.txt", "a/z.txt")
    vol.delete("a/z.txt")
    assert vol.version >= start + 4
    before = vol.version
    vol.read("a/x.txt")
    list(vol.list("a/"))
    assert vol.version == before
