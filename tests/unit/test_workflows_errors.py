"""describe_worker_error on worker-comfyui's real error texts (reference §1.3, §1.9)."""
from __future__ import annotations

import json

from lib.workflows import describe_worker_error

# Verbatim from reference §1.9 (worker-comfyui 5.8.5 + ComfyUI), `...` filled in as ComfyUI sends it.
CHECKPOINT_MISSING = (
    "Workflow validation failed:\n"
    "• Node 4 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': "
    "\"ckpt_name: 'nope.safetensors' not in []\", 'extra_info': {'input_name': 'ckpt_name', "
    "'input_config': ([], {}), 'received_value': 'nope.safetensors'}}]\n"
    "• Node 4 (dependent_outputs): ['9']\n"
    "• Node 4 (class_type): CheckpointLoaderSimple\n\n"
    "No checkpoint models appear to be available. Please check your model installation.")
UNKNOWN_NODE = (
    'Cannot execute because node NoSuchNode does not exist.. Raw response: {"error": {"type": '
    '"invalid_prompt", "message": "Cannot execute because node NoSuchNode does not exist.", "details": '
    '"Node ID \'#1\'", "extra_info": {}}, "node_errors": {}}')


def test_missing_checkpoint_reads_as_node_field_and_availability():
    view = describe_worker_error(CHECKPOINT_MISSING)
    assert (view.node_id, view.node_type) == ("4", "CheckpointLoaderSimple")
    assert view.summary == ("ComfyUI rejected the workflow before running it: Node 4 (CheckpointLoaderSimple) "
                            "ckpt_name: 'nope.safetensors' is not on the worker; no files of that kind "
                            "are available")
    assert view.lines == ["No checkpoint models appear to be available. Please check your model installation."]


def test_several_nodes_and_long_lists():
    text = (
        "Workflow validation failed:\n"
        "• Node 4 (errors): [{'type': 'value_not_in_list', 'message': 'Value not in list', 'details': "
        "\"lora_name: 'ava_v9.safetensors' not in (list of length 37)\", 'extra_info': {}}]\n"
        "• Node 4 (dependent_outputs): ['11']\n"
        "• Node 4 (class_type): LoraLoaderModelOnly\n"
        "• Node 9 (errors): [{'type': 'required_input_missing', 'message': 'Required input is missing', "
        "'details': 'latent_image', 'extra_info': {'input_name': 'latent_image'}}, {'type': "
        "'value_smaller_than_min', 'message': 'Value 0 smaller than min of 1', 'details': 'steps', "
        "'extra_info': {}}]\n"
        "• Node 9 (dependent_outputs): ['11']\n"
        "• Node 9 (class_type): KSampler")
    view = describe_worker_error(text)
    assert view.summary.endswith("Node 4 (LoraLoaderModelOnly) lora_name: 'ava_v9.safetensors' is not on "
                                 "the worker; 37 files are available there")
    assert view.lines == [
        "Node 9 (KSampler): the required input 'latent_image' is not connected or set",
        "Node 9 (KSampler): steps is 0, beyond ComfyUI's minimum of 1"]


def test_available_options_are_listed_and_truncated():
    options = [f"lora_{i}.safetensors" for i in range(12)]
    text = ("Workflow validation failed:\n"
            f"• Node 4 (errors): [{{'type': 'value_not_in_list', 'message': 'Value not in list', "
            f"'details': \"lora_name: 'x.safetensors' not in {options}\", 'extra_info': {{}}}}]\n"
            "• Node 4 (class_type): LoraLoader")
    summary = describe_worker_error(text).summary
    assert "available: lora_0.safetensors, lora_1.safetensors" in summary
    assert summary.endswith("lora_7.safetensors and 4 more")


def test_unknown_node_type_names_the_missing_custom_node():
    view = describe_worker_error(UNKNOWN_NODE)
    assert (view.node_id, view.node_type) == ("1", "NoSuchNode")
    assert "has no node type 'NoSuchNode'" in view.summary and "comfy-node-install" in view.summary


def test_execution_error_in_details_gives_node_type_and_id():
    details = ["Workflow execution error: Node Type: KSampler, Node ID: 9, Message: CUDA out of memory. "
               "Tried to allocate 3.00 GiB."]
    view = describe_worker_error({"error": "Job processing failed", "details": details})
    assert (view.node_id, view.node_type) == ("9", "KSampler")
    assert view.summary == "Node 9 (KSampler) failed while running: CUDA out of memory. Tried to allocate 3.00 GiB."
    assert view.lines[0].startswith("The GPU ran out of memory")
    assert describe_worker_error("Job processing failed", details) == view


def test_job_processing_failed_without_details_says_where_to_look():
    view = describe_worker_error("Job processing failed")
    assert "produced no image" in view.summary and view.node_id is None


def test_runpod_sdk_crash_report_hides_the_traceback():
    report = json.dumps({"error_type": "<class 'AttributeError'>", "error_message": "'list' object has no "
                         "attribute 'get'", "error_traceback": "Traceback (most recent call last): SECRET",
                         "hostname": "x"})
    view = describe_worker_error(report)
    assert view.summary == "The worker's handler crashed: 'list' object has no attribute 'get'"
    assert view.lines == ["Error type: AttributeError"]
    assert "Traceback" not in view.summary + "".join(view.lines)


def test_other_texts_pass_through_readably():
    assert describe_worker_error(None).summary.startswith("The job failed on the worker without")
    no_outputs = ('Prompt has no outputs. Raw response: {"error": {"type": "prompt_no_outputs", "message": '
                  '"Prompt has no outputs", "details": "", "extra_info": {}}, "node_errors": {}}')
    assert describe_worker_error(no_outputs).summary == (
        "ComfyUI refused the workflow: the workflow has no output node: add a SaveImage node.")
    upload = describe_worker_error("Failed to upload one or more input images",
                                   ["Error decoding base64 for a.png: Incorrect padding"])
    assert upload.lines == ["Error decoding base64 for a.png: Incorrect padding"]
    plain = describe_worker_error("Missing 'workflow' parameter")
    assert plain.summary == "Missing 'workflow' parameter" and plain.lines == []
