from lib.jobstate import ACTIVE, FAILED, FINAL, LOCAL, RUNPOD, JobState
from lib.runpod import JobStatus


def test_runpod_states_are_exactly_the_clients():
    assert {s.value for s in RUNPOD} == {s.value for s in JobStatus}


def test_every_state_is_either_active_final_or_waiting_on_the_console():
    waiting = set(JobState) - FINAL - ACTIVE
    assert waiting == {JobState.PENDING, JobState.UNKNOWN}
    assert not FINAL & ACTIVE
    assert LOCAL | RUNPOD == set(JobState)


def test_failures_are_final_and_a_users_cancel_is_not_a_failure():
    assert FAILED <= FINAL
    assert JobState.CANCELLED in FINAL and not JobState.CANCELLED.is_failed
    assert JobState("TIMED_OUT").is_failed and JobState.TIMED_OUT == "TIMED_OUT"
