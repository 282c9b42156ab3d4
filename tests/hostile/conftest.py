"""Shared pieces of the hostile-input suite.

- `canary`            the canary credentials (API key, S3 secret) and `canary.find(text)`, which
                      names every canary found in a text (an empty list is what every test wants).
- `documented_cases`  the case ids listed in docs/robustness.md (first column, in backticks): each
                      catalogue test checks its cases are documented there.
- `guidance`          the phrases that tell a person what to do; a clear message holds one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CANARY_API_KEY = "rpa_CANARY_7F3C9D2E41B84A6F9E0D5C1B2A3F4E5D"
CANARY_S3_SECRET = "s3sk_CANARY_0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a"
CANARY_S3_ACCESS = "user_canaryaccess"

GUIDANCE = ("try again", "check ", "retry", "fix ", "wait", "set ", " use ", "upload the", "upload a",
            "upload it", "upload that", "upload them", "convert", "downscale", "remove", "give ", "name a",
            "pick ", "choose", "export", "ask ", "the api may have changed", "replace", "must be",
            "must declare", "needs ", "e.g.", "split", "in several")


@dataclass(frozen=True)
class Canary:
    api_key: str = CANARY_API_KEY
    s3_secret: str = CANARY_S3_SECRET
    s3_access: str = CANARY_S3_ACCESS

    def find(self, text: object) -> list[str]:
        """Which secrets (by name) appear in `text`, also as bytes or inside a repr."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8", "replace")
        text = str(text)
        found = []
        for name, value in (("api key", self.api_key), ("S3 secret", self.s3_secret)):
            # The distinctive middle part is enough: a truncated or re-quoted secret still leaks.
            if value in text or value.split("_", 2)[2][:16] in text:
                found.append(name)
        return found


@pytest.fixture(scope="session")
def canary() -> Canary:
    return Canary()


@pytest.fixture(scope="session")
def guidance() -> tuple[str, ...]:
    return GUIDANCE


@pytest.fixture(scope="session")
def documented_cases() -> set[str]:
    text = (ROOT / "docs" / "robustness.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*`([a-z0-9][a-z0-9.-]*)`\s*\|", text, flags=re.M))
