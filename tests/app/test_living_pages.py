"""Pages keep their state (issue 19 §1): unsaved training-set changes survive a reload as a draft."""
from tests.app.steps import button


def test_unsaved_training_set_changes_come_back_after_a_reload(open_page):
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value("ava").run()
    gen = at.session_state["ds.gen"]
    at.text_input(key=f"ds.find.{gen}").input("ava_tok").run()
    at.text_input(key=f"ds.replace.{gen}").input("ava_tok").run()
    button(at, "Replace in all captions").click().run()
    assert any("unsaved changes" in c.value for c in at.caption)

    again = open_page("pages/datasets.py")   # a reload: a new session of the same user
    assert again.selectbox(key="ds.set").value == "ava"
    assert any("unsaved changes" in c.value for c in again.caption)
    assert any("Restored your unsaved changes" in t.value for t in again.toast)
    button(again, "Discard unsaved changes").click().run()
    assert not any("unsaved changes" in c.value for c in again.caption)
    assert not any("unsaved changes" in c.value for c in open_page("pages/datasets.py").caption)
