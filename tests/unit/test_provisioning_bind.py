"""Writing new ids into console.toml: only the id line changes, or nothing does."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lib.config import ConsoleConfig
from lib.provisioning.bind import BindError, write_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def toml(tmp_path) -> Path:
    path = tmp_path / "console.toml"
    path.write_text((ROOT / "console.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_the_endpoint_id_line_changes_and_nothing_else(toml):
    before = toml.read_text().splitlines()
    write_id(toml, ("endpoints", "training"), "x1y2z3runpod00")
    after = toml.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=False) if a != b]
    assert len(before) == len(after) and changed == [('id = "training-sim01"', 'id = "x1y2z3runpod00"')]
    config = ConsoleConfig.load(toml)
    assert config.endpoint("training").id == "x1y2z3runpod00" and config.endpoint("image").id == "image-sim01"


def test_the_volume_id_keeps_its_comment(toml):
    write_id(toml, ("volume",), "agv6w2qcg7")
    line = next(x for x in toml.read_text().splitlines() if x.startswith("id = \"agv6w2qcg7\""))
    assert line.endswith("# network volume id = the S3 bucket name")
    assert ConsoleConfig.load(toml).volume.id == "agv6w2qcg7"


def test_a_table_without_an_id_gets_one(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[volume]\nname = 'v'\n\n[endpoints.image]\nurl = \"http://localhost:8000\"\n")
    write_id(path, ("endpoints", "image"), "abc123")
    assert tomllib.loads(path.read_text())["endpoints"]["image"] == {"id": "abc123", "url": "http://localhost:8000"}


@pytest.mark.parametrize("table, new_id, message", [
    (("endpoints", "video"), "abc123", "has no [endpoints.video] table"),
    (("endpoints", "image"), 'x" \nworkers_max = 99', "unusual id"),
])
def test_refusals_leave_the_file_untouched_and_say_what_to_do(toml, table, new_id, message):
    before = toml.read_bytes()
    with pytest.raises(BindError) as caught:
        write_id(toml, table, new_id)
    assert message in str(caught.value)
    assert "yourself" in str(caught.value)
    assert toml.read_bytes() == before


def test_a_failed_write_is_reported_and_the_file_kept(toml):
    # The temporary file's name taken by a folder: the write fails whoever runs the test.
    (toml.parent / f".{toml.name}.provisioning.tmp").mkdir()
    with pytest.raises(BindError, match=r'cannot write .*set id = "abc123" under \[endpoints.image\]'):
        write_id(toml, ("endpoints", "image"), "abc123")
    assert ConsoleConfig.load(toml).endpoint("image").id == "image-sim01"
