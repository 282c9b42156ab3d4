"""Minimal console.toml files and a doc-exact RunPod stand-in (tests/standin) holding what they name."""
from __future__ import annotations

from pathlib import Path

import pytest

from lib.provisioning import required
from tests.standin import StandIn, standard_account

IDS = {"image": "ep-image-1", "training": "ep-train-1", "special": "ep-special-1"}
VOLUME = "vol-minimal"


def minimal_config(roles=("image", "training", "special"), *, ids=None, datacenter: str = "EU-RO-1",
                   volume: str = VOLUME) -> str:
    """What a new user knows: the volume id and datacenter and the endpoint ids."""
    ids = {**IDS, **(ids or {})}
    text = f'[volume]\nid = "{volume}"\ndatacenter = "{datacenter}"\n'
    for role in roles:
        text += f'\n[endpoints.{role}]\nid = "{ids[role]}"\n'
    return text


def put_required_models(pod: StandIn, volume: str = VOLUME) -> None:
    for req in required.requirements():
        if req.kind == required.FILE:
            pod.put(volume, req.path)


@pytest.fixture
def write_config(tmp_path):
    def _write(text: str) -> Path:
        path = tmp_path / "console.toml"
        path.write_text(text, encoding="utf-8")
        return path
    return _write


@pytest.fixture(scope="module")
def standin():
    """A healthy account with the three endpoints, the volume and every required model; a few jobs wait."""
    account = standard_account(IDS, VOLUME)
    account.enqueue(IDS["image"], 3)
    account.enqueue(IDS["special"], 1)
    with StandIn(account) as pod:
        put_required_models(pod)
        yield pod
