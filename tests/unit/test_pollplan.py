"""The per-endpoint /status budget (issue 18, goal 4): under RunPod's limit, in queue order."""
import pytest

from lib.pollplan import STARVING_AFTER_S, Lane, PollPlan
from lib.runpod import PollPolicy

POLICY = PollPolicy(first_s=0.25, factor=1.6, cap_s=3.0)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def plan_with(jobs: int, *, running: int = 0, endpoint: str = "ep"):
    clock = Clock()
    plan = PollPlan(clock)
    for i in range(jobs):
        plan.follow(f"j{i:04d}", Lane(endpoint, order=float(i), work="image"))
        plan.observe(f"j{i:04d}", "IN_PROGRESS" if i < running else "IN_QUEUE")
    return plan, clock


def test_polls_stay_under_the_limit_in_every_ten_seconds_however_many_are_due():
    plan, clock = plan_with(2000)
    due = {f"j{i:04d}": clock.now for i in range(2000)}
    sent: list[float] = []
    for _ in range(300):  # 30 s in 0.1 s steps, every job due all the time
        granted, _wake = plan.grant(due.items())
        sent += [clock.now] * len(granted)
        clock.now += 0.1
    worst = max(sum(1 for t in sent if start <= t < start + 10.0) for start in sent)
    assert 1000 < worst <= 0.8 * 2000


def test_running_jobs_go_first_then_the_queue_oldest_first():
    plan, clock = plan_with(500, running=40)
    due = [(f"j{i:04d}", clock.now) for i in reversed(range(500))]
    granted, wake = plan.grant(due)
    assert 40 < len(granted) < 500
    assert granted == [f"j{i:04d}" for i in range(len(granted))]
    assert wake is not None and clock.now < wake <= clock.now + 0.1


def test_a_poll_held_back_long_enough_still_goes_from_the_starving_share():
    plan, clock = plan_with(500)
    overdue = clock.now - STARVING_AFTER_S - 1
    front = [(f"j{i:04d}", clock.now) for i in range(400)]
    granted, _ = plan.grant([*front, ("j0499", overdue)])
    assert "j0499" in granted and "j0450" not in granted


def test_each_endpoint_has_its_own_budget():
    plan, clock = plan_with(300, endpoint="a")
    for i in range(300):
        plan.follow(f"b{i}", Lane("b", order=float(i)))
    granted, _ = plan.grant([(f"j{i:04d}", clock.now) for i in range(300)] + [(f"b{i}", clock.now) for i in range(300)])
    assert sum(g.startswith("j") for g in granted) == sum(g.startswith("b") for g in granted) > 0


def test_a_429_empties_the_endpoints_budget():
    plan, clock = plan_with(100)
    plan.rate_limited("j0000")
    granted, wake = plan.grant([(f"j{i:04d}", clock.now) for i in range(100)])
    assert granted == [] and wake is not None


def test_jobs_it_does_not_know_are_never_held():
    plan, clock = plan_with(0)
    assert plan.grant([("stranger", clock.now)]) == (["stranger"], None)


def test_a_started_job_is_next_looked_at_near_the_usual_run_time():
    plan, _ = plan_with(30)
    for i in range(20, 25):  # five earlier jobs of this kind ran 8 s
        plan.observe(f"j{i:04d}", "COMPLETED", execution_ms=8000)
    delay, interval = plan.next_poll("j0000", was="IN_QUEUE", now_status="IN_PROGRESS", interval=1.0,
                                     policy=POLICY, running_for_s=0.5)
    assert delay == pytest.approx(0.9 * 8 - 0.5)
    # still running at that look, near its end: the next comes after the shortest pause, then the backoff grows
    delay, interval = plan.next_poll("j0000", was="IN_PROGRESS", now_status="IN_PROGRESS", interval=interval,
                                     policy=POLICY)
    assert delay == pytest.approx(POLICY.first_s)
    assert plan.next_poll("j0000", was="IN_PROGRESS", now_status="IN_PROGRESS", interval=interval,
                          policy=POLICY) == (pytest.approx(0.4), pytest.approx(0.4))


def test_without_run_times_or_for_long_runs_a_started_job_backs_off_from_the_start():
    plan, _ = plan_with(30)
    assert plan.next_poll("j0000", was="IN_QUEUE", now_status="IN_PROGRESS", interval=3.0,
                          policy=POLICY) == (0.25, 0.25)
    plan.observe("j0029", "COMPLETED", execution_ms=3_600_000)  # an hour: no prediction
    assert plan.next_poll("j0001", was="IN_QUEUE", now_status="IN_PROGRESS", interval=3.0,
                          policy=POLICY) == (0.25, 0.25)


def test_the_front_of_the_queue_is_looked_at_more_often_than_the_back():
    plan, _ = plan_with(100, running=10)
    front = plan.next_poll("j0012", was="IN_QUEUE", now_status="IN_QUEUE", interval=3.0, policy=POLICY)
    back = plan.next_poll("j0090", was="IN_QUEUE", now_status="IN_QUEUE", interval=3.0, policy=POLICY)
    assert front == (1.0, 1.0) and back == (3.0, 3.0)


def test_forgotten_jobs_leave_the_queue():
    plan, _ = plan_with(3, running=1)
    plan.forget("j0001")
    # j0002 is now first in line behind the one running job
    assert plan.next_poll("j0002", was="IN_QUEUE", now_status="IN_QUEUE", interval=3.0, policy=POLICY)[0] == 1.0
    # and j0001 itself, if looked at again, is on the plain backoff, not first in line
    assert plan.next_poll("j0001", was="IN_QUEUE", now_status="IN_QUEUE", interval=3.0, policy=POLICY)[0] == 3.0
