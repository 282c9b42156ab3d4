"""Base-model awareness of LoRAs (lib/lora_base.py) and the safetensors header (lib/safetensors_info.py)."""
import json
import struct

import pytest

from lib import lora_base
from lib.safetensors_info import NotSafetensors, parse
from lib.store import JobStore


def safetensors(tensors: dict, metadata: dict | None = None, data: int = 64) -> bytes:
    header = dict(tensors)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"\0" * data


def test_a_header_gives_tensor_count_dtypes_and_metadata():
    blob = safetensors({"a": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]},
                        "b": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [32, 64]}},
                       {"modelspec.architecture": "flux-1-dev/lora"})
    info = parse(blob, len(blob))
    assert (info.tensors, info.dtypes, info.dtype_text) == (2, {"BF16": 2}, "BF16 ×2")
    assert lora_base.family_from_metadata(info.metadata) == "flux"


@pytest.mark.parametrize("blob, reason", [
    (b"PK\x03\x04 a zip, renamed", "plausible header length"),
    (struct.pack("<Q", 50) + b"{}", "past the end"),
    (safetensors({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4096]}}), "outside the file"),
])
def test_anything_else_is_refused_with_the_reason(blob, reason):
    with pytest.raises(NotSafetensors, match=reason):
        parse(blob, len(blob))


def test_training_runs_and_statements_name_the_base_and_a_mismatch_is_explained(tmp_path):
    store = JobStore(tmp_path)
    run = store.create(role="training", endpoint_id="t", kind="training", user="ann@x", input={},
                       idempotency_key="run", meta={"character": "ava", "preset": "zimage-turbo"})
    store.audit("ann@x", "promote", run.local_id, {"target": "models/loras/ava_v2.safetensors"})
    store.audit("ann@x", "stage_checkpoints", run.local_id, {"loras": ["_candidates/ava/r1/ava_500.safetensors"]})
    lora_base.LoraBases(tmp_path).record("bob_v1.safetensors", "sdxl", "stated on upload")
    bases = lora_base.known(store, tmp_path)
    assert bases["ava_v2.safetensors"] == lora_base.BaseModel("z-image", "training run")
    assert bases["_candidates/ava/r1/ava_500.safetensors"].family == "z-image"
    assert lora_base.picker_label("bob_v1.safetensors", bases) == "bob_v1.safetensors · SDXL"
    assert "trained for Z-Image" in lora_base.mismatch("flux", "ava_v2.safetensors", bases)
    assert lora_base.mismatch("z-image", "ava_v2.safetensors", bases) is None
    assert lora_base.mismatch("flux", "unknown.safetensors", bases) is None
    store.close()


def test_candidates_are_hidden_unless_asked_or_handed_over():
    names = ["_candidates/ava/r1/a.safetensors", "_candidates/ava/r1/b.safetensors", "ava_v1.safetensors"]
    assert lora_base.visible(names, show_candidates=False) == ["ava_v1.safetensors"]
    assert lora_base.visible(names, show_candidates=False, keep=[names[0]]) == [names[0], "ava_v1.safetensors"]
    assert lora_base.visible(names, show_candidates=True) == names


def test_compare_in_a_grid_picks_the_runs_base_preset():
    class T:
        def __init__(self, title, family):
            self.title, self.family = title, family
    templates = [T("FLUX.1-dev + LoRA", "flux"), T("Z-Image Turbo + LoRA", "z-image")]
    assert lora_base.preset_title_for_run({"preset": "zimage-turbo"}, templates) == "Z-Image Turbo + LoRA"
    assert lora_base.preset_title_for_run({}, templates) is None


def test_moving_or_deleting_a_used_file_says_what_breaks():
    from types import SimpleNamespace as Ref

    from lib.volume_guard import used_warning
    refs = [Ref(kind="template", id="flux_dev_lora"), Ref(kind="job", id="a"), Ref(kind="job", id="b"),
            Ref(kind="job", id="b")]
    text = used_warning(refs, "move")
    assert text.startswith("Used by 1 saved workflow and 2 jobs: after this move,")
    assert "re-runs of those jobs" in text
    assert used_warning([], "delete") is None
