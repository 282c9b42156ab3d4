import pytest

from lib.jobstate import ACTIVE, FAILED, FINAL, LOCAL, RUNPOD, JobState
from lib.runpod import BadResponse, JobStatus
from lib.runpod.models import parse_status


def test_the_client_parses_runpods_six_states_and_no_console_state():
    assert {parse_status(s.value) for s in RUNPOD} == RUNPOD
    assert JobStatus is JobState
    for local in LOCAL:
        with pytest.raises(BadResponse):
            parse_status(local.value)


def test_every_state_is_either_active_final_or_waiting_on_the_console():
    waiting = set(JobState) - FINAL - ACTIVE
    assert waiting == {JobState.PENDING, JobState.UNKNOWN}
    assert not FINAL & ACTIVE
    assert LOCAL | RUNPOD == set(JobState)


def test_failures_are_final_and_a_users_cancel_is_not_a_failure():
    assert FAILED <= FINAL
    assert JobState.CANCELLED in FINAL and not JobState.CANCELLED.is_failed
    assert JobState("TIMED_OUT").is_failed and JobState.TIMED_OUT == "TIMED_OUT"
