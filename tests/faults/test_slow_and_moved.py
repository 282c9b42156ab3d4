"""One slow thing never stalls the others: a drip-fed output download, a Retry-After on one job's
/status. And jobs are followed where they were sent: an endpoint id changed between restarts,
a proxy's HTML 404."""
from __future__ import annotations

import time

from lib.outputs import allow_output_hosts
from lib.runpod import Job, JobStatus, NotFound, RateLimited
from lib.services import build_services
from tests.faults.breakers import DripServer
from tests.faults.conftest import config_of, config_text
from tests.faults.steps import USER
from tests.support.waiting import wait_until


class Endpoint:
    """A RunPod endpoint whose /status answers per job from `answers`: a Job, an exception to raise,
    or a callable returning either."""

    def __init__(self):
        self.answers: dict[str, object] = {}
        self.polls: dict[str, int] = {}

    def run(self, input, *, policy=None, webhook=None):
        return Job(id=f"rp-{input['name']}", status=JobStatus.IN_QUEUE)

    def status(self, job_id):
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        answer = self.answers.get(job_id, Job(id=job_id, status=JobStatus.IN_PROGRESS))
        if callable(answer):
            answer = answer()
        if isinstance(answer, Exception):
            raise answer
        return answer


def completed(job_id: str, **output) -> Job:
    return Job(id=job_id, status=JobStatus.COMPLETED, execution_time_ms=100, output=output or {"ok": True})


def test_a_drip_fed_download_never_holds_other_jobs(make_tracker):
    drip = DripServer(every_s=1.0)  # 72 bytes: over a minute to download
    allow_output_hosts(s3_endpoint=drip.url)   # the drip server stands in for the volume's S3 endpoint
    endpoint = Endpoint()
    tracker = make_tracker(endpoint)
    store = tracker.store
    try:
        slow = tracker.submit("image", {"name": "slow"}, kind="test", user=USER, idempotency_key="slow")
        endpoint.answers["rp-slow"] = completed(
            "rp-slow", images=[{"filename": "drip.png", "type": "s3_url", "data": drip.url}])
        wait_until(lambda: store.get(slow.local_id).outputs_pending, what="the slow download to start")
        started = time.monotonic()
        others = [tracker.submit("image", {"name": f"o{i}"}, kind="test", user=USER, idempotency_key=f"o{i}")
                  for i in range(5)]
        for i in range(5):
            endpoint.answers[f"rp-o{i}"] = completed(f"rp-o{i}")
        records = tracker.wait_for([r.local_id for r in others], timeout_s=5)
        assert [r.status for r in records] == ["COMPLETED"] * 5
        assert time.monotonic() - started < 5, "other jobs were tracked while one download dripped"
        assert not store.get(slow.local_id).is_final, "the slow job is not final before its output is kept"
    finally:
        drip.close()


def in_client_retry_after(seconds: float):
    """The client honours a Retry-After up to its cap by sleeping inside the request."""
    def answer():
        time.sleep(seconds)
        return RateLimited("slow down", status=429, retry_after=seconds)
    return answer


def test_one_jobs_retry_after_never_delays_another_jobs_poll(make_tracker):
    endpoint = Endpoint()
    tracker = make_tracker(endpoint)
    endpoint.answers["rp-waiting"] = in_client_retry_after(3.0)
    endpoint.answers["rp-limited"] = RateLimited("slow down", status=429, retry_after=60)  # beyond the cap
    waiting = tracker.submit("image", {"name": "waiting"}, kind="test", user=USER, idempotency_key="waiting")
    limited = tracker.submit("image", {"name": "limited"}, kind="test", user=USER, idempotency_key="limited")
    wait_until(lambda: endpoint.polls.get("rp-limited", 0) >= 1 and endpoint.polls.get("rp-waiting", 0) >= 1,
               what="both rate-limited polls")
    other = tracker.submit("image", {"name": "other"}, kind="test", user=USER, idempotency_key="other")
    wait_until(lambda: endpoint.polls.get("rp-other", 0) >= 5, timeout_s=2, what="the other job's polls")
    endpoint.answers["rp-other"] = completed("rp-other")
    assert tracker.wait_for([other.local_id], timeout_s=2)[0].status == "COMPLETED"
    assert endpoint.polls["rp-limited"] == 1, "the limited job waits its 60 s, alone"
    assert endpoint.polls["rp-waiting"] == 1, "still inside its own Retry-After wait"
    assert {tracker.store.get(r.local_id).status for r in (waiting, limited)} == {"IN_QUEUE"}


def test_a_proxys_html_404_never_expires_a_job(make_tracker):
    endpoint = Endpoint()
    tracker = make_tracker(endpoint, retention_s=0)
    endpoint.answers["rp-p"] = NotFound("404", status=404, body="<html><h1>404 Not Found</h1></html>")
    record = tracker.submit("image", {"name": "p"}, kind="test", user=USER, idempotency_key="proxied")
    wait_until(lambda: endpoint.polls.get("rp-p", 0) >= 4, what="several 404s")
    assert tracker.store.get(record.local_id).status == "IN_QUEUE"
    endpoint.answers["rp-p"] = completed("rp-p")
    assert tracker.wait_for([record.local_id], timeout_s=3)[0].status == "COMPLETED"


def test_endpoint_id_changed_between_restarts_keeps_following_the_old_one(admin, console_settings):
    first = build_services(console_settings, config=config_of(console_settings))
    try:
        record = first.tracker.submit("basic", {"sleep_ms": 1500, "echo": "moved"}, kind="test", user=USER,
                                      idempotency_key="moved")
        wait_until(lambda: first.store.get(record.local_id).status == "IN_PROGRESS", what="job running")
    finally:
        first.close()
    console_settings.config_path.write_text(config_text().replace('id = "basic-sim01"', 'id = "basic-new02"'),
                                            encoding="utf-8")
    second = build_services(console_settings, config=config_of(console_settings))
    try:
        assert second.config.endpoint("basic").id == "basic-new02"
        final, = second.tracker.wait_for([record.local_id], timeout_s=15)
        assert final.status == "COMPLETED" and final.output["echo"] == "moved"
        assert final.endpoint_id == "basic-sim01"
    finally:
        second.close()
    assert [job["id"] for job in admin.jobs()] == [record.runpod_id], "nothing submitted twice"
