"""Re-run, Vary seed and Retry check before they spend (lib/resend.py)."""
from dataclasses import replace

import pytest

from lib import inference as inf
from lib import resend
from lib.store import JobStore
from lib.volume import LocalVolume
from lib.workflows import load_template


@pytest.fixture
def volume(tmp_path, record):
    """A volume with every model file the job names, where the worker looks for it."""
    vol = LocalVolume(tmp_path / "volume")
    for problem in resend.check_payload(record, vol).problems:
        vol.write(problem.expected_path, b"x")
    return vol


@pytest.fixture
def record(tmp_path):
    store = JobStore(tmp_path / "data")
    planned = inf.plan_images(load_template("z_image_turbo_lora"),
                              {"prompt": "ava_tok at sea", "seed": 7, "lora_name": "ava_v1.safetensors"},
                              count=1, random_seed=False)[0]
    created = store.create(role="image", endpoint_id="e", kind="generate", user="ann@x", input=planned.input,
                           idempotency_key="k", meta=planned.meta)
    yield created
    store.close()


def test_a_job_whose_files_are_in_place_may_be_sent_again(record, volume):
    assert resend.before_resend(record, volume).ok


def test_a_renamed_lora_blocks_the_rerun_with_its_name(record, volume):
    volume.delete("models/loras/ava_v1.safetensors")
    verdict = resend.before_resend(record, volume)
    assert not verdict.ok and verdict.can_open_in_generate
    assert any("ava_v1.safetensors" in p for p in verdict.problems)


def test_retry_of_a_validation_failure_says_it_fails_again(record, volume):
    failed = replace(record, status="FAILED", error="Workflow validation failed:\n• Node 4 (errors): [...]")
    verdict = resend.before_retry(failed, volume)
    assert not verdict.ok and verdict.fails_again and "will fail again" in verdict.summary
    assert verdict.can_open_in_generate


def test_open_in_generate_fills_the_form_of_the_job(record):
    form = resend.generate_form(record)
    assert form["gen.model"] == record.meta["model"] and form["gen.prompt"] == "ava_tok at sea"
    assert form["gen.seed"] == 7 and form["gen.seed_mode"] == "fixed"
    assert form["gen.lora"] == "ava_v1.safetensors"
