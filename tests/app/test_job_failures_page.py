"""AppTest: a job that failed on the worker reads once, readably, with the raw text only in an expander."""
from __future__ import annotations

import base64
import re
import time

from tests.app.steps import button

BROKEN_IMAGE = {"workflow": {
    "1": {"class_type": "LoadImage", "inputs": {"image": "broken.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}},
    "images": [{"name": "broken.png", "image": base64.b64encode(b"not a picture").decode()}]}
READABLE = "Node 1 (LoadImage) failed while running: cannot identify image file '/comfyui/input/broken.png'"
RAW = "Workflow execution error: Node Type: LoadImage"


def page_texts(at) -> list[str]:
    """Everything a person reads outside the expanders (Markdown escapes removed, as rendered)."""
    shown = [t.value for t in at.text] + [e.value for e in at.error] + [m.value for m in at.markdown]
    return [re.sub(r"\\(.)", r"\1", str(value)) for value in shown]


def sent_to_gallery(open_page, local_id):
    at = open_page("pages/gallery.py")
    at.session_state["gal.sent"] = [local_id]
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_failed_run_shows_the_node_and_message_once(open_page, console, users):
    rec = console.tracker.submit("image", BROKEN_IMAGE, kind="test", user=users["staff"].email,
                                 idempotency_key=f"apptest-fail-{time.time()}")
    console.tracker.wait_for([rec.local_id], timeout_s=60)
    assert console.store.get(rec.local_id).output == {"details": [
        f"{RAW}, Node ID: 1, Message: cannot identify image file '/comfyui/input/broken.png'"]}
    at = sent_to_gallery(open_page, rec.local_id)
    texts = page_texts(at)
    assert sum(READABLE in text for text in texts) == 1
    assert not any(RAW in text for text in texts)
    [expander] = [e for e in at.expander if e.label == "The worker's message (raw, for debugging)"]
    assert RAW in expander.code[0].value


def test_the_history_race_offers_retry(open_page, console, users):
    rec = console.tracker.submit("image", BROKEN_IMAGE, kind="test", user=users["staff"].email,
                                 idempotency_key=f"apptest-race-{time.time()}")
    console.tracker.wait_for([rec.local_id], timeout_s=60)
    console.store.update_from_runpod(rec.local_id, status="FAILED", delay_ms=None, execution_ms=None,
                                     worker_id=None, retries=None, output=None,
                                     error="Job processing failed, prompt ID not found in history.")
    at = sent_to_gallery(open_page, rec.local_id)
    assert any("known race in worker-comfyui" in text for text in page_texts(at))
    assert button(at, "Retry")
