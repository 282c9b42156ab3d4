"""Resumable multipart uploads, on the simulator's local volume and on RunPod's S3 API (moto)."""
from __future__ import annotations

import os

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lib.config import Secret, Settings
from lib.provisioning.upload import LocalParts, S3Parts, parts_for, upload
from lib.volume import LocalVolume, MiB, S3Volume, VolumeError

BUCKET = "vol-test"
KEY = "models/unet/z_image_turbo_bf16.safetensors"


class Dropped(ConnectionError):
    """The connection went away mid-upload."""


class FailingParts:
    """Wraps a Parts store: the n-th put fails, every put is counted."""

    def __init__(self, inner, fail_on: int | None = None):
        self.inner, self.fail_on, self.puts = inner, fail_on, []

    def resume(self, *args):
        return self.inner.resume(*args)

    def put(self, key, upload_id, number, data):
        self.puts.append(number)
        if len(self.puts) == self.fail_on:
            raise Dropped(f"connection lost during part {number}")
        return self.inner.put(key, upload_id, number, data)

    def complete(self, *args):
        return self.inner.complete(*args)


@pytest.fixture
def local_file(tmp_path):
    path = tmp_path / "local" / "z_image_turbo_bf16.safetensors"
    path.parent.mkdir()
    path.write_bytes(os.urandom(5 * 1024 + 500))          # 6 parts of 1 KiB
    return path


def test_an_interrupted_local_upload_resumes_from_its_parts(tmp_path, local_file):
    volume = LocalVolume(tmp_path / "volume")
    parts = FailingParts(LocalParts(volume, tmp_path / "staging"), fail_on=3)
    with pytest.raises(Dropped):
        upload(volume, parts, local_file, KEY, part_size=1024)
    assert not volume.exists(KEY)
    again = FailingParts(LocalParts(volume, tmp_path / "staging"))
    seen = []
    result = upload(volume, again, local_file, KEY, part_size=1024, progress=seen.append)
    assert (result.parts, result.reused) == (6, 2) and again.puts == [3, 4, 5, 6]
    assert volume.read(KEY) == local_file.read_bytes()
    assert [p.part for p in seen] == [1, 2, 3, 4, 5, 6] and seen[-1].done == seen[-1].total == result.size
    assert seen[1].reused == 2
    assert not any((tmp_path / "staging").iterdir())       # staging cleared once complete


def test_parts_of_a_changed_file_are_sent_again(tmp_path, local_file):
    volume = LocalVolume(tmp_path / "volume")
    with pytest.raises(Dropped):
        upload(volume, FailingParts(LocalParts(volume, tmp_path / "staging"), fail_on=4), local_file, KEY,
               part_size=1024)
    data = bytearray(local_file.read_bytes())
    data[10] ^= 0xFF                                       # part 1 differs now, part 2 and 3 do not
    local_file.write_bytes(bytes(data))
    again = FailingParts(LocalParts(volume, tmp_path / "staging"))
    result = upload(volume, again, local_file, KEY, part_size=1024)
    assert again.puts == [1, 4, 5, 6] and result.reused == 2
    assert volume.read(KEY) == bytes(data)


def test_a_small_file_goes_up_in_one_write(tmp_path):
    volume = LocalVolume(tmp_path / "volume")
    small = tmp_path / "ae.safetensors"
    small.write_bytes(b"x" * 100)
    seen = []
    result = upload(volume, LocalParts(volume, tmp_path / "staging"), small, "models/vae/ae.safetensors",
                    part_size=1024, progress=seen.append)
    assert (result.parts, result.reused, result.size) == (1, 0, 100) and seen[-1].done == 100
    assert volume.read("models/vae/ae.safetensors") == b"x" * 100


def test_a_missing_local_file_says_so(tmp_path):
    volume = LocalVolume(tmp_path / "volume")
    with pytest.raises(VolumeError, match="cannot read .*nope.bin on the console machine"):
        upload(volume, LocalParts(volume, tmp_path / "s"), tmp_path / "nope.bin", KEY)


# --------------------------------------------------------------------------- RunPod S3 API (moto)


class Spy:
    """A boto3 client whose calls are counted and can be made to fail."""

    def __init__(self, client):
        self.client, self.calls, self.failures = client, [], {}

    def __getattr__(self, name):
        target = getattr(self.client, name)

        def call(**kwargs):
            self.calls.append(name)
            queue = self.failures.get(name)
            if queue:
                error = queue.pop(0)
                if error is not None:
                    raise error
            return target(**kwargs)
        return call

    def count(self, name):
        return self.calls.count(name)


def error(status, code):
    return ClientError({"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "UploadPart")


@pytest.fixture
def s3(tmp_path):
    with mock_aws():
        raw = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIDTEST",
                           aws_secret_access_key="rps_test_secret")
        raw.create_bucket(Bucket=BUCKET)
        spy = Spy(raw)
        volume = S3Volume(bucket=BUCKET, region="us-east-1", endpoint_url="https://s3.amazonaws.com",
                          access_key=Secret("AKIDTEST"), secret_key=Secret("rps_test_secret"), client=spy,
                          sleep=lambda s: None)
        yield volume, spy


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "flux1-dev.safetensors"
    path.write_bytes(os.urandom(3 * 5 * MiB + 1234))       # 4 parts of 5 MiB
    return path


def test_an_interrupted_s3_upload_resumes_from_the_parts_on_the_volume(s3, big_file):
    volume, spy = s3
    parts = S3Parts(spy, BUCKET, sleep=lambda s: None)
    spy.failures["upload_part"] = [None, None, error(403, "AccessDenied")]
    with pytest.raises(VolumeError, match="cannot upload part 3 of .*AccessDenied — the parts uploaded so far stay"):
        upload(volume, parts, big_file, KEY, part_size=5 * MiB)
    assert spy.count("abort_multipart_upload") == 0 and not volume.exists(KEY)
    spy.calls.clear()
    result = upload(volume, parts, big_file, KEY, part_size=5 * MiB)
    assert (result.parts, result.reused) == (4, 2)
    assert spy.count("create_multipart_upload") == 0 and spy.count("upload_part") == 2
    assert volume.read(KEY) == big_file.read_bytes()
    assert spy.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_transient_part_failures_are_retried_and_a_full_volume_is_named(s3, big_file):
    volume, spy = s3
    spy.failures["upload_part"] = [error(503, "ServiceUnavailable"), error(524, "Timeout")]
    result = upload(volume, S3Parts(spy, BUCKET, sleep=lambda s: None), big_file, KEY, part_size=5 * MiB)
    assert result.reused == 0 and spy.count("upload_part") == 6
    spy.failures["upload_part"] = [error(507, "InsufficientStorage")]
    with pytest.raises(VolumeError, match="the network volume is full — grow \\[volume\\] size_gb"):
        upload(volume, S3Parts(spy, BUCKET, sleep=lambda s: None), big_file, "models/unet/other.safetensors",
               part_size=5 * MiB)


def test_the_right_part_store_for_each_volume(tmp_path):
    settings = Settings(api_key=Secret(""), s3_access_key=Secret("AKIDTEST"), s3_secret_key=Secret("rps_x"))
    assert isinstance(parts_for(LocalVolume(tmp_path), staging=tmp_path / "s", settings=settings), LocalParts)
    with mock_aws():
        volume = S3Volume(bucket=BUCKET, region="EU-RO-1", endpoint_url="https://s3api-eu-ro-1.runpod.io",
                          access_key=Secret("AKIDTEST"), secret_key=Secret("rps_x"))
        parts = parts_for(volume, staging=tmp_path / "s", settings=settings)
        assert isinstance(parts, S3Parts) and parts.bucket == BUCKET
        assert parts.client.meta.endpoint_url == "https://s3api-eu-ro-1.runpod.io"
