"""Shared pieces of the fault tests."""
from __future__ import annotations

import pytest

from lib.auth import LOCAL_OPERATOR
from lib.tracker import SubmitRefused

USER = LOCAL_OPERATOR.email


def refused_submit(tracker, echo: str, idempotency_key: str):
    """A submit RunPod refuses: the console raises SubmitRefused and records it SUBMIT_FAILED."""
    with pytest.raises(SubmitRefused) as refused:
        tracker.submit("basic", {"echo": echo}, kind="test", user=USER, idempotency_key=idempotency_key)
    record = refused.value.record
    assert record.status == "SUBMIT_FAILED"
    return record
