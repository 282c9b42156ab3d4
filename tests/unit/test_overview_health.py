"""The Overview's live health of every endpoint."""
import threading
from types import SimpleNamespace

from lib import overview
from lib.runpod import NotFound, RunPodError


def test_every_endpoint_is_asked_at_once_and_one_failure_hides_no_other():
    # One after the other, the page waited for the sum of RunPod's round trips, every 5 s. Asked at once, the
    # three requests meet at the barrier; asked in turn, the first would wait there alone and fail.
    met = threading.Barrier(3, timeout=10)

    def health(role):
        def ask():
            met.wait()
            if role == "special":
                raise NotFound("no endpoint ep-special", status=404)
            if role == "training":
                raise RunPodError("HTTP 503 from RunPod")
            return f"healthy {role}"
        return ask

    spec = {role: SimpleNamespace(id=f"ep-{role}", url=None, label=role.title(), is_dev_worker=False)
            for role in ("image", "training", "special")}
    services = SimpleNamespace(config=SimpleNamespace(endpoints=spec),
                               jobs=lambda role: SimpleNamespace(health=health(role)))
    rows = overview.endpoint_health(services)
    assert [(r.role, r.health, r.problem, r.missing) for r in rows] == [
        ("image", "healthy image", None, False),
        ("training", None, "HTTP 503 from RunPod", False),
        ("special", None, "no endpoint ep-special", True)]
