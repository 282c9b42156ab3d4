"""Simulated workers: cold start, warm reuse, idle stop, FlashBoot, scaling, faults.

time_scale is 0.002: the basic role's 120 s cold start takes 240 ms, a FlashBoot revival (4 s)
8 ms, the default 5 s idle timeout 10 ms and the 4 s QUEUE_DELAY 8 ms.
"""
from __future__ import annotations

import time

from tests.support.waiting import wait_until

COLD_START_MS = 240


def statuses(api) -> list[str]:
    return sorted(w["status"] for w in api.workers()["workers"])


def test_cold_start_then_warm_reuse_then_idle_stop(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"idleTimeout": 150}, "flashboot": "OFF"})   # idle 0.3 s
    first = api.wait(api.run({"echo": 1}))
    assert first["delayTime"] >= COLD_START_MS - 5            # queued through the cold start
    second = api.wait(api.run({"echo": 2}))
    assert second["workerId"] == first["workerId"]             # warm worker reused
    assert second["delayTime"] < 60                             # started within milliseconds
    assert statuses(api) == ["IDLE"]
    wait_until(lambda: api.workers()["summary"]["total"] == 0, timeout_s=3, what="idle stop")
    third = api.wait(api.run({"echo": 3}))
    assert third["workerId"] != first["workerId"]
    assert third["delayTime"] >= COLD_START_MS - 5              # FlashBoot off: full cold start


def test_flashboot_revival_is_faster_than_a_cold_start(basic_pod, api_for):
    api = api_for(basic_pod)
    first = api.wait(api.run({"echo": 1}))
    wait_until(lambda: api.workers()["summary"]["total"] == 0, what="idle stop")
    revived = api.wait(api.run({"echo": 2}))
    assert first["delayTime"] >= COLD_START_MS - 5
    assert revived["delayTime"] < COLD_START_MS / 2


def test_extra_cold_start_fault_delays_the_first_job(basic_pod, api_for):
    api = api_for(basic_pod)
    api.faults(extra_cold_start_s=200)                          # +0.4 s
    body = api.wait(api.run({"echo": 1}))
    assert body["delayTime"] >= COLD_START_MS + 400 - 5


def test_min_workers_stay_up_and_count_as_active(basic_pod, api_for):
    api = api_for(basic_pod)
    view = api.patch({"workers": {"min": 2, "max": 3}})
    assert view["workers"] == {"min": 2, "max": 3, "idleTimeout": 5}
    assert api.workers()["summary"]["total"] == 2
    assert statuses(api) == ["INITIALIZING", "INITIALIZING"]
    wait_until(lambda: statuses(api) == ["IDLE", "IDLE"], what="workers ready")
    time.sleep(0.1)                                             # 10x the idle timeout
    assert statuses(api) == ["IDLE", "IDLE"]
    health = api.health()["workers"]
    assert health["idle"] == 2 and health["ready"] == 2
    api.patch({"workers": {"min": 0}})
    wait_until(lambda: api.workers()["summary"]["total"] == 0, what="flex workers idle out")


def test_jobs_spread_across_idle_workers(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 2, "max": 2}})
    wait_until(lambda: statuses(api) == ["IDLE", "IDLE"], what="workers ready")
    ids = [api.run({"sleep_ms": 200}) for _ in range(2)]
    bodies = [api.wait(i) for i in ids]
    assert bodies[0]["workerId"] != bodies[1]["workerId"]
    assert all(b["delayTime"] < 60 for b in bodies)


def test_lowering_max_workers_stops_workers_and_holds_jobs(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 2, "max": 3}})
    assert api.workers()["summary"]["total"] == 2
    api.patch({"workers": {"min": 0, "max": 0}})
    assert api.workers()["summary"]["total"] == 0
    job_id = api.run({"echo": 1})
    time.sleep(0.3)
    assert api.status(job_id)["status"] == "IN_QUEUE"
    api.patch({"workers": {"max": 1}})
    assert api.wait(job_id)["status"] == "COMPLETED"


def test_running_worker_above_new_max_stops_after_its_job(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 1, "max": 1}})
    job_id = api.run({"sleep_ms": 400})
    api.wait(job_id, ("IN_PROGRESS",))
    api.patch({"workers": {"min": 0, "max": 0}})
    assert statuses(api) == ["RUNNING"]                         # not killed mid-job
    assert api.wait(job_id)["status"] == "COMPLETED"
    wait_until(lambda: api.workers()["summary"]["total"] == 0, what="worker stop")


def test_queue_delay_scaler_adds_workers_for_waiting_jobs(basic_pod, api_for):
    api = api_for(basic_pod)
    for _ in range(3):
        api.run({"sleep_ms": 1000})
    # one worker at once (none was up), more once jobs waited longer than the delay
    wait_until(lambda: api.workers()["summary"]["total"] == 3, timeout_s=2, what="scale-up to max")


def test_request_count_scaler(basic_pod, api_for):
    api = api_for(basic_pod)
    view = api.patch({"scaling": {"type": "REQUEST_COUNT", "requestCount": 2},
                      "workers": {"max": 3}})
    assert view["scaling"] == {"type": "REQUEST_COUNT", "requestCount": 2}
    total = lambda: api.workers()["summary"]["total"]             # noqa: E731
    for _ in range(4):
        api.run({"sleep_ms": 800})
    wait_until(lambda: total() >= 2, what="workers for four jobs")
    assert total() == 2                                          # ceil(4 / 2), not one a job
    api.run({"sleep_ms": 800})
    wait_until(lambda: total() >= 3, what="a worker for the fifth job")
    assert total() == 3                                          # ceil(5 / 2)


def test_failure_rate_fault_fails_jobs(basic_pod, api_for):
    api = api_for(basic_pod)
    api.faults(failure_rate=1.0)
    body = api.wait(api.run({"echo": 1}))
    assert body["status"] == "FAILED" and "failure_rate" in body["error"]
    api.faults(failure_rate=0.0)
    assert api.wait(api.run({"echo": 1}))["status"] == "COMPLETED"


def test_worker_crash_requeues_once_then_fails(basic_pod, api_for):
    api = api_for(basic_pod)
    api.faults(crash_rate=1.0)
    job_id = api.run({"sleep_ms": 100})
    wait_until(lambda: api.health()["workers"]["unhealthy"] >= 1, what="crashed worker")
    body = api.wait(job_id)
    assert body["status"] == "FAILED"
    assert body["error"] == "worker exited unexpectedly"
    assert body["retries"] == 1
    assert api.health()["jobs"]["retried"] == 1
    listed = api.workers()
    assert listed["summary"]["unhealthy"] >= 1
    api.faults(crash_rate=0.0)
    assert api.wait(api.run({"echo": 1}))["status"] == "COMPLETED"   # replaced by a healthy one


def test_crash_then_success_on_the_requeued_run(basic_pod, api_for):
    api = api_for(basic_pod)
    # The replacement worker needs a full cold start (+0.5 s): time to switch the fault off.
    api.patch({"workers": {"max": 1}, "flashboot": "OFF"})
    api.faults(crash_rate=1.0, extra_cold_start_s=250)
    job_id = api.run({"sleep_ms": 300})
    wait_until(lambda: api.health()["jobs"]["retried"] == 1, what="first crash")
    api.faults(crash_rate=0.0)
    body = api.wait(job_id)
    assert body["status"] == "COMPLETED" and body["retries"] == 1


def test_warm_worker_answers_runsync_within_milliseconds(basic_pod, api_for):
    api = api_for(basic_pod)
    api.patch({"workers": {"min": 1}})
    wait_until(lambda: statuses(api) == ["IDLE"], what="active worker ready")
    took = []
    for i in range(20):
        started = time.perf_counter()
        body = api.post("runsync", {"input": {"echo": i}}).json()
        took.append(time.perf_counter() - started)
        assert body["status"] == "COMPLETED" and body["delayTime"] < 20
    took.sort()
    assert took[len(took) // 2] < 0.05          # event-driven: no polling interval in the way
