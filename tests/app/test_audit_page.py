import time

import pytest


def test_operator_sees_audit_entries_and_csv(open_page, console):
    marker = f"target-{time.time()}"
    console.store.audit("ops@example.com", "purge", marker, {"removed": 2})
    at = open_page("pages/audit.py")
    frame = at.dataframe[0].value
    assert marker in set(frame["target"])
    assert not at.exception


def test_audit_is_not_in_staff_navigation(open_page, users):
    at = open_page("pages/overview.py", user=users["staff"])
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/audit.py")


def test_audit_page_refuses_a_non_operator_server_side(console, users):
    from lib.auth import Forbidden
    with pytest.raises(Forbidden, match="needs the operator role"):
        console.authorize(users["staff"].email, "audit")


def test_actions_read_as_words_and_details_as_a_table(open_page, console):
    from lib import audit
    marker = f"models/loras/audit-{time.time()}.safetensors"
    console.store.audit("ops@example.com", "volume.move", marker, {"to": "models/loras/x.safetensors", "size": 10})
    at = open_page("pages/audit.py")
    frame = at.dataframe[0].value
    row = frame[frame["target"] == marker].iloc[0]
    assert row["action"] == "Moved a model file" and row["details"] == "size: 10, to: models/loras/x.safetensors"
    entry = console.store.audit_entries(action="volume.move", limit=1)[0]
    assert audit.detail_frame(entry).to_dict("records") == [
        {"field": "size", "value": "10"}, {"field": "to", "value": "models/loras/x.safetensors"}]


def test_creating_a_training_set_is_audited(open_page, console):
    at = open_page("pages/datasets.py")
    at.selectbox(key="ds.set").set_value("➕ New training set").run()
    name = f"audit{int(time.time())}"
    at.text_input[0].input(name)
    at.text_input[1].input("audit_tok")
    next(b for b in at.button if b.label == "Create set").click().run()
    assert not at.exception
    created = console.store.audit_entries(action="dataset.create", limit=1)[0]
    assert created.target == f"datasets/{name}" and created.detail == {"trigger_word": "audit_tok"}
