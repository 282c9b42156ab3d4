"""Hole 6 (low): the RunPod client cut a response body to 300 characters before removing the API key,
so a key that straddled the cut left all but its last characters in the error message."""
from __future__ import annotations

import httpx
import pytest

from lib.runpod import RunPodError
from lib.runpod.http import HttpCore, Retry

KEY = "rpa_" + "K7f3e9c1d2b4a8e6f0a1b2c3d4e5f6a7b8c9d0e1f2"  # 46 characters, like a real key
AROUND_THE_CUT = range(300 - len(KEY) - 2, 302)


def core_answering(status: int, body: str) -> HttpCore:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text=body))
    return HttpCore(KEY, timeout=None, limits=None, max_retries=0, retry_cap_s=0, transport=transport,
                    sleep=lambda s: None, clock=lambda: 0.0)


def leaked(text: str) -> list[str]:
    """Every piece of the key of 6 or more characters that appears in `text`."""
    return [KEY[i:i + 6] for i in range(len(KEY) - 5) if KEY[i:i + 6] in text]


@pytest.mark.parametrize("offset", AROUND_THE_CUT)
@pytest.mark.parametrize("status", [200, 500, 400])
def test_no_part_of_the_key_survives_in_an_error_whatever_its_offset(offset, status):
    body = "<html>" + "x" * (offset - 6) + KEY + " echoed back" + "y" * 400  # not JSON
    core = core_answering(status, body)
    with pytest.raises(RunPodError) as caught:
        core.request("GET", "https://api.test/v2/e/health", operation="health", retry=Retry.IDEMPOTENT)
    core.close()
    error = caught.value
    assert leaked(str(error)) == []
    assert leaked(repr(getattr(error, "body", ""))) == []
