"""Hole 5 (medium), first half: a worker's `s3_url` made the console fetch any http(s) URL, following
redirects — a compromised worker could make it read internal addresses. Outputs come only from the
network volume's S3 endpoint (or the simulator), redirects stay among those, within a deadline and a
size cap."""
from __future__ import annotations

import time

import httpx
import pytest

from lib import outputs
from lib.outputs import OutputError, allow_output_hosts, fetch_image

S3 = "https://s3api-eu-ro-1.runpod.io"
BUCKET = "vol123abc"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(autouse=True)
def configured_hosts():
    allow_output_hosts(s3_endpoint=S3, bucket=BUCKET, simulator_urls=["http://127.0.0.1:8010/v2"])
    yield
    allow_output_hosts(s3_endpoint=None)


def client(handler, seen: list[str]) -> httpx.Client:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)
    return httpx.Client(transport=httpx.MockTransport(record), follow_redirects=True)


def entry(url: str) -> dict:
    return {"filename": "out.png", "type": "s3_url", "data": url}


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:8501/_stcore/health",
    "https://s3api-eu-ro-1.runpod.io.evil.test/x.png",
    "https://evil.test/out.png",
])
def test_an_output_url_on_another_host_is_refused_without_a_request(url):
    seen: list[str] = []
    with client(lambda r: httpx.Response(200, content=PNG), seen) as http, pytest.raises(OutputError) as caught:
        fetch_image(entry(url), http=http)
    assert seen == []
    assert "the console fetches worker outputs only from those" in str(caught.value)


@pytest.mark.parametrize("url", [f"{S3}/{BUCKET}/outputs/out.png", f"https://{BUCKET}.s3api-eu-ro-1.runpod.io/o.png",
                                 "http://127.0.0.1:8010/v2/files/out.png"])
def test_an_output_on_the_volume_endpoint_or_the_simulator_is_kept(url):
    seen: list[str] = []
    with client(lambda r: httpx.Response(200, content=PNG), seen) as http:
        assert fetch_image(entry(url), http=http).data == PNG
    assert seen == [url]


def test_a_redirect_to_an_internal_address_is_not_followed():
    seen: list[str] = []
    internal = "http://10.0.0.5/admin"

    def handler(request):
        if request.url.host == "10.0.0.5":
            return httpx.Response(200, content=b"secret")
        return httpx.Response(302, headers={"location": internal})

    with client(handler, seen) as http, pytest.raises(OutputError):
        fetch_image(entry(f"{S3}/{BUCKET}/out.png"), http=http)
    assert internal not in seen


def test_an_output_larger_than_the_cap_is_not_kept(monkeypatch):
    monkeypatch.setattr(outputs, "MAX_DOWNLOAD_BYTES", 1000)
    seen: list[str] = []
    stream = httpx.ByteStream(b"\0" * 5000)
    with client(lambda r: httpx.Response(200, stream=stream), seen) as http, pytest.raises(OutputError) as caught:
        fetch_image(entry(f"{S3}/{BUCKET}/big.png"), http=http)
    assert "not kept" in str(caught.value)


def test_a_download_that_drips_past_the_deadline_is_abandoned(monkeypatch):
    monkeypatch.setattr(outputs, "DOWNLOAD_DEADLINE_S", 0.3)

    class Drip(httpx.SyncByteStream):
        def __iter__(self):
            for _ in range(40):
                time.sleep(0.05)
                yield b"\0" * 10

    seen: list[str] = []
    started = time.monotonic()
    with client(lambda r: httpx.Response(200, stream=Drip()), seen) as http, pytest.raises(OutputError) as caught:
        fetch_image(entry(f"{S3}/{BUCKET}/slow.png"), http=http)
    assert "not downloaded within" in str(caught.value)
    assert time.monotonic() - started < 1.5
