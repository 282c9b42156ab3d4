"""Hole 4 (medium): one 4096 MB upload limit for every uploader (viewers included) and model files
through Streamlit's in-memory uploader. Each uploader now has the limit its content needs, the server's
cap is the largest of those, nobody below staff gets an uploader, and model files stream from disk."""
from __future__ import annotations

import json
import tomllib

import pytest

from lib.upload_limits import IMAGE, SERVER_MAX_UPLOAD_MB, TRAINING_SET, WORKFLOW
from tests.app.conftest import OPERATOR, ROOT, STAFF, VIEWER, _use_console, console, open_page  # noqa: F401

UPLOAD_PAGES = {"pages/generate.py": [WORKFLOW], "pages/special.py": [IMAGE, IMAGE, IMAGE, IMAGE],
                "pages/datasets.py": [TRAINING_SET]}


def test_the_server_takes_no_upload_larger_than_the_largest_legitimate_one():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] == SERVER_MAX_UPLOAD_MB <= 512


@pytest.mark.parametrize("path", list(UPLOAD_PAGES))
def test_a_viewer_gets_no_uploader(open_page, path):  # noqa: F811 (pytest fixture imported from tests.app.conftest)
    at = open_page(path, user=VIEWER)
    assert not at.get("file_uploader")
    assert any("uploading needs the staff role" in i.value for i in at.info)


@pytest.mark.parametrize("path, kinds", list(UPLOAD_PAGES.items()))
def test_each_uploader_carries_the_limit_of_its_content(open_page, path, kinds):  # noqa: F811 (pytest fixture imported from tests.app.conftest)
    at = open_page(path, user=STAFF)
    assert [u.proto.max_upload_size_mb for u in at.get("file_uploader")] == [k.limit_mb for k in kinds]


def test_a_workflow_over_its_limit_is_refused_even_when_the_browser_check_is_skipped(open_page):  # noqa: F811 (pytest fixture imported from tests.app.conftest)
    at = open_page("pages/generate.py", user=STAFF)
    big = json.dumps({"1": {"class_type": "SaveImage", "inputs": {"pad": "x" * (6 * 1024 * 1024)}}}).encode()
    at.file_uploader(key="own.file").upload("huge.json", big).run()  # bytes as a client could send them
    assert any("may be at most 5 MB" in e.value for e in at.error)


def test_model_files_never_use_the_in_memory_uploader(open_page):  # noqa: F811 (pytest fixture imported from tests.app.conftest)
    at = open_page("pages/models.py", user=OPERATOR)
    at.session_state["models.tab"] = "Upload"
    at.run()
    assert not at.get("file_uploader")
    assert at.text_input(key="models.up_path")
