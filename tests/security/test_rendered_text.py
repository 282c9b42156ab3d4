"""Hole 5 (medium), second half: prompts, names and worker errors were rendered as Markdown — a prompt
holding ![](http://…/beacon.png) made every viewer's browser fetch that URL. They are shown as text."""
from __future__ import annotations

import uuid

import pytest
from markdown_it import MarkdownIt

from lib import inference as inf
from lib.auth import LOCAL_OPERATOR
from lib.ui.safe_text import escaped
from lib.workflows import load_template
from tests.app.conftest import _use_console, console, open_page  # noqa: F401

BEACON = "![](http://127.0.0.1:9/beacon.png)"
HOSTILE = [BEACON, "[click](http://evil.test)", "<img src=http://evil.test/x.png>", ":red[alarm]",
           "`code`", "**bold** ~~gone~~", "$x^2$", "# heading", "a | b\n--|--\n1 | 2", "<http://evil.test>",
           "back\\slash ![x][r]\n\n[r]: http://evil.test/r.png"]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_the_same_characters_and_nothing_else(text):
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(escaped(text))
    for tag in ("<img", "<a ", "<code", "<strong", "<em", "<s>", "<h1", "<table", "<del"):
        assert tag not in html
    assert "evil.test/r.png" not in html or "[r]:" in html


def test_a_prompt_with_an_image_is_shown_as_text_in_the_gallery(open_page, console):  # noqa: F811 (pytest fixtures imported from tests.app.conftest)
    prompt = f"ava_tok {BEACON} {uuid.uuid4().hex[:6]}"
    planned = inf.plan_images(load_template("z_image_turbo_lora"),
                              {"prompt": prompt, "seed": 7, "lora_name": "ava_v1.safetensors"}, count=1,
                              random_seed=False)
    record = inf.submit(console, planned, user_email=LOCAL_OPERATOR.email, request_key=uuid.uuid4().hex,
                        kind=inf.KIND_GENERATE).records[0]
    console.tracker.wait_for([record.local_id], timeout_s=60)
    at = open_page("pages/gallery.py")
    assert any(prompt in t.value for t in at.text)
    markdown = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any(BEACON in value for value in markdown)


def test_a_finding_about_a_hostile_file_name_is_a_table_of_text():
    from streamlit.testing.v1 import AppTest

    def table_of_findings(rows):
        from lib.ui import widgets
        widgets.text_table(rows)

    at = AppTest.from_function(table_of_findings, kwargs={"rows": [{"images": BEACON, "finding": None}]}).run()
    [cell] = at.table[0].value["images"]
    assert cell == escaped(BEACON) and "<img" not in MarkdownIt("commonmark").render(cell)
    assert list(at.table[0].value["finding"]) == [""]
