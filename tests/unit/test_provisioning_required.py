"""Required models: what templates and presets need, its state on the volume, where to find it locally."""
from __future__ import annotations

import os

import pytest

from lib.provisioning.required import (
    FILE,
    FOLDER,
    MISPLACED,
    MISSING,
    PRESENT,
    LocalFolderError,
    Requirement,
    check,
    hf_cache_folder,
    hf_repos,
    readiness_rows,
    requirements,
    scan_local,
    sources,
)
from lib.training.config import PRESETS
from lib.workflows.templates import list_templates

FLUX = "models/unet/flux1-dev.safetensors"


def test_every_template_model_and_preset_repository_is_required_once():
    reqs = {r.path: r for r in requirements()}
    for template in list_templates():
        for model in template.required_models:
            assert template.role in reqs[model.path].roles and template.title in reqs[model.path].used_by
    assert reqs[FLUX].kind == FILE and reqs[FLUX].roles == ("image", "special")
    for preset in PRESETS.values():
        assert hf_repos(preset.model), f"preset {preset.key} names no model to put on the volume"
        for repo in hf_repos(preset.model):
            req = reqs[hf_cache_folder(repo)]
            assert req.kind == FOLDER and req.roles == ("training",) and preset.label in req.used_by
    assert ".cache/huggingface/hub/models--black-forest-labs--FLUX.1-dev/" in reqs
    assert ".cache/huggingface/hub/models--ostris--zimage_turbo_training_adapter/" in reqs


def test_staff_templates_add_their_models(tmp_path):
    (tmp_path / "mine.json").write_text((list_templates()[1].source).read_text().replace(
        "models/unet/flux1-dev.safetensors", "models/unet/my_model.safetensors"))
    assert "models/unet/my_model.safetensors" in {r.path for r in requirements(tmp_path)}


@pytest.mark.parametrize("model, repos", [
    ({"name_or_path": "black-forest-labs/FLUX.1-dev"}, ["black-forest-labs/FLUX.1-dev"]),
    ({"name_or_path": "/runpod-volume/models/flux"}, []),
    ({"name_or_path": "Tongyi-MAI/Z-Image-Turbo",
      "assistant_lora_path": "ostris/zimage_turbo_training_adapter/adapter_v2.safetensors"},
     ["Tongyi-MAI/Z-Image-Turbo", "ostris/zimage_turbo_training_adapter"]),
])
def test_hugging_face_repositories_of_a_model_block(model, repos):
    assert hf_repos(model) == repos


def test_present_missing_and_misplaced():
    reqs = [Requirement(FLUX, FILE, ("image",), ("FLUX",)),
            Requirement("models/clip/clip_l.safetensors", FILE, ("image",), ("FLUX",)),
            Requirement("models/vae/ae.safetensors", FILE, ("image",), ("FLUX",)),
            Requirement(".cache/huggingface/hub/models--a--b/", FOLDER, ("training",), ("A",)),
            Requirement(".cache/huggingface/hub/models--c--d/", FOLDER, ("training",), ("C",))]
    files = {"models/diffusion_models/flux1-dev.safetensors": 10, "models/clip/clip_l.safetensors": 5,
             "checkpoints/ae.safetensors": 3,
             ".cache/huggingface/hub/models--a--b/snapshots/1/model.safetensors": 7}
    states = {s.requirement.path: s for s in check(reqs, files)}
    flux = states[FLUX]
    assert flux.status == MISPLACED and flux.found_at == ("models/diffusion_models/flux1-dev.safetensors",)
    assert "does not scan models/diffusion_models/" in flux.advice and FLUX in flux.advice
    assert states["models/clip/clip_l.safetensors"].status == PRESENT
    vae = states["models/vae/ae.safetensors"]
    assert vae.status == MISPLACED and vae.advice == (
        "ae.safetensors is at checkpoints/ae.safetensors, but the workflows load it from models/vae/ae.safetensors; "
        "move it there on the Models page")
    assert states[".cache/huggingface/hub/models--a--b/"].status == PRESENT
    assert states[".cache/huggingface/hub/models--a--b/"].size == 7
    missing = states[".cache/huggingface/hub/models--c--d/"]
    assert missing.status == MISSING and "first training run" in missing.advice
    rows = readiness_rows(check(reqs, files), "training")
    assert [r["state"] for r in rows] == [PRESENT, MISSING]


def test_a_local_copy_of_the_volume_layout_wins_over_a_loose_file(tmp_path):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "ae.safetensors").write_bytes(b"loose")
    (tmp_path / "backup" / "models" / "vae").mkdir(parents=True)
    (tmp_path / "backup" / "models" / "vae" / "ae.safetensors").write_bytes(b"laid out")
    req = Requirement("models/vae/ae.safetensors", FILE, ("image",), ("x",))
    [(path, key)] = sources(req, scan_local(tmp_path))
    assert path.read_bytes() == b"laid out" and key == "models/vae/ae.safetensors"
    assert sources(Requirement(FLUX, FILE, ("image",), ("x",)), scan_local(tmp_path)) == []


def test_a_hugging_face_cache_folder_goes_up_without_its_blobs(tmp_path):
    repo = tmp_path / "hub" / "models--a--b"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "f00d").write_bytes(b"weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("rev1")
    (repo / "snapshots" / "rev1").mkdir(parents=True)
    os.symlink("../../blobs/f00d", repo / "snapshots" / "rev1" / "model.safetensors")
    req = Requirement(".cache/huggingface/hub/models--a--b/", FOLDER, ("training",), ("A",))
    pairs = sources(req, scan_local(tmp_path / "hub"))
    assert [key for _, key in pairs] == [".cache/huggingface/hub/models--a--b/refs/main",
                                         ".cache/huggingface/hub/models--a--b/snapshots/rev1/model.safetensors"]
    assert pairs[1][0].read_bytes() == b"weights"


def test_unusable_local_folders_are_refused(tmp_path, monkeypatch):
    with pytest.raises(LocalFolderError, match="is not a folder"):
        scan_local(tmp_path / "nope")
    with pytest.raises(LocalFolderError, match="give the path"):
        scan_local(" ")
    monkeypatch.setattr("lib.provisioning.required.MAX_LOCAL_ENTRIES", 3)
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(LocalFolderError, match="more than 3 files"):
        scan_local(tmp_path)
