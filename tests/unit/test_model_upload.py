"""Model uploads are checked before they reach the volume (lib/model_upload.py)."""
import pytest

from lib.model_upload import ModelNotes, NotAModel, check
from tests.unit.test_lora_base import safetensors


def test_a_lora_upload_reports_size_tensors_dtype_and_its_base():
    blob = safetensors({"w": {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}},
                       {"ss_base_model_version": "sdxl_base_v1-0"})
    found = check("ava_v3.safetensors", blob)
    assert found.lines == [f"safetensors · {len(blob)} B · 1 tensors · F16 ×1"]
    assert found.base_family == "sdxl"


@pytest.mark.parametrize("name, data, reason", [
    ("x.safetensors", b"<!DOCTYPE html><html>login</html>", "web page"),
    ("x.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "not a readable safetensors"),
    ("x.ckpt", b"hello", "not a PyTorch checkpoint"),
    ("x.gguf", b"GGML", "GGUF signature"),
    ("x.pt", b"", "empty"),
])
def test_a_file_that_is_not_what_its_name_says_is_refused(name, data, reason):
    with pytest.raises(NotAModel, match=reason):
        check(name, data)


def test_notes_follow_a_move(tmp_path):
    notes = ModelNotes(tmp_path)
    notes.record("models/loras/a.safetensors", ["safetensors · 1 kB"])
    notes.moved("models/loras/a.safetensors", "models/loras/b.safetensors")
    assert notes.get("models/loras/b.safetensors") == ["safetensors · 1 kB"]
    assert notes.get("models/loras/a.safetensors") == []
