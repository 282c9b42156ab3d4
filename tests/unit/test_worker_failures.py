"""Worker failures shown in full: FAILED jobs keep their output, and every view reads it once, readably.

The shapes are worker-comfyui's and runpod's (reference worker-contracts §1.9): a failure while the
graph runs is `error: "Job processing failed"` with `output: {"details": [...]}`.
"""
from __future__ import annotations

import base64
import time

import pytest

from lib.overview import failure_view, status_line
from lib.runpod import RunPod
from lib.store import JobStore
from lib.workflows.worker_errors import describe_job_error

BROKEN_IMAGE = {"workflow": {
    "1": {"class_type": "LoadImage", "inputs": {"image": "broken.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}},
    "images": [{"name": "broken.png", "image": base64.b64encode(b"not a picture").decode()}]}
EXECUTION_DETAIL = ("Workflow execution error: Node Type: LoadImage, Node ID: 1, Message: cannot identify image "
                    "file '/comfyui/input/broken.png'")


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def failed(store, error, output=None):
    rec = store.create(role="image", endpoint_id="ep1", kind="zimage", user="ana@example.com",
                       input={"workflow": {}}, idempotency_key=f"k{time.time_ns()}")
    store.mark_submitted(rec.local_id, "rp-1", "IN_QUEUE")
    rec, _ = store.update_from_runpod(rec.local_id, status="FAILED", delay_ms=10, execution_ms=20,
                                      worker_id="w1", retries=0, output=output, error=error)
    return rec


def test_the_simulator_fails_a_running_graph_like_the_real_worker(localpod):
    client = RunPod("test-key", api_url=localpod.api_url, rest_url=localpod.rest_url)  # conftest TEST_API_KEY
    jobs = client.endpoint("image-sim01")
    job = jobs.wait(jobs.run(BROKEN_IMAGE).id, timeout_s=60)
    assert job.status.value == "FAILED" and job.error == "Job processing failed"
    assert job.output == {"details": [EXECUTION_DETAIL]}


def test_a_failed_jobs_output_is_kept_and_read(store):
    rec = failed(store, "Job processing failed", {"details": [EXECUTION_DETAIL]})
    assert store.get(rec.local_id).output == {"details": [EXECUTION_DETAIL]}
    view = failure_view(store.get(rec.local_id))
    assert (view.node_id, view.node_type) == ("1", "LoadImage")
    assert view.summary == ("Node 1 (LoadImage) failed while running: cannot identify image file "
                            "'/comfyui/input/broken.png'")
    assert view.raw == f"Job processing failed\n{EXECUTION_DETAIL}"
    line = status_line(store.get(rec.local_id))
    assert line == f"failed: {view.summary}"
    assert "Workflow execution error" not in line and "{" not in line


def test_out_of_memory_gets_its_hint(store):
    detail = ("Workflow execution error: Node Type: KSampler, Node ID: 9, Message: CUDA out of memory. Tried to "
              "allocate 9.00 GiB.")
    view = failure_view(failed(store, "Job processing failed", {"details": [detail]}))
    assert view.summary.startswith("Node 9 (KSampler) failed while running: CUDA out of memory")
    assert view.lines[0].startswith("The GPU ran out of memory")


def test_without_an_output_the_view_says_so(store):
    view = failure_view(failed(store, "Job processing failed", None))
    assert "produced no image" in view.summary and view.raw == "Job processing failed"


def test_the_history_race_is_named_and_retryable(store):
    view = failure_view(failed(store, "Job processing failed, prompt ID not found in history."))
    assert view.retryable
    assert "known race in worker-comfyui" in view.summary and "Retry the job" in view.summary


def test_a_value_outside_a_non_model_list_names_comfyuis_list():
    text = ("Workflow validation failed:\n• Node 9 (errors): [{'type': 'value_not_in_list', 'message': 'Value not "
            "in list', 'details': \"sampler_name: 'euler_magic' not in (list of length 41)\", 'extra_info': "
            "{'input_name': 'sampler_name', 'input_config': None, 'received_value': 'euler_magic'}}]\n"
            "• Node 9 (dependent_outputs): ['11']\n• Node 9 (class_type): KSampler")
    summary = describe_job_error(text).summary
    assert summary.endswith("Node 9 (KSampler): sampler_name 'euler_magic' is not one of ComfyUI's samplers "
                            "(euler, euler_ancestral, dpmpp_2m, res_multistep, …)")
    assert "files are available" not in summary
    short = text.replace("(list of length 41)", "['default', 'fp8_e4m3fn']").replace("sampler_name", "weight_dtype")
    assert describe_job_error(short).summary.endswith(
        "weight_dtype 'euler_magic' is not one of ComfyUI's weight types (default, fp8_e4m3fn)")


def test_a_link_of_the_wrong_type_reads_plainly():
    text = ("Workflow validation failed:\n• Node 9 (errors): [{'type': 'return_type_mismatch', 'message': 'Return "
            "type mismatch between linked nodes', 'details': 'model, received_type(LATENT) mismatch "
            "input_type(MODEL)', 'extra_info': {}}]\n• Node 9 (class_type): KSampler")
    assert describe_job_error(text).summary.endswith(
        "Node 9 (KSampler): the input model takes MODEL but is linked to an output of type LATENT")
