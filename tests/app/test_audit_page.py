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
