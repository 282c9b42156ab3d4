"""The audit trail as a table and as CSV (lib/audit.py)."""
from datetime import UTC, datetime

from lib.audit import AuditEntry, audit_csv, audit_frame

AT = datetime(2026, 12, 3, 5, 20, tzinfo=UTC)
ENTRIES = [AuditEntry(1, AT, "ana@example.com", "job.submit", "abc", {"endpoint": "image-sim01"}, 0.00091),
           AuditEntry(2, AT, "ana@example.com", "volume.move", "models/loras/a.safetensors", {"to": "b"}, None)]


def test_the_table_shows_a_missing_cost_as_blank_and_puts_the_long_details_last():
    frame = audit_frame(ENTRIES)
    assert list(frame.columns) == ["when", "who", "action", "target", "est. cost", "details"]
    assert list(frame["est. cost"]) == ["$0.0009", ""]
    assert frame["action"][1] == "Moved a model file"


def test_the_csv_keeps_the_cost_a_number():
    lines = audit_csv(ENTRIES).decode().splitlines()
    assert lines[0] == "when,who,action,target,est. cost $,details"
    assert ",0.00091," in lines[1] and ",models/loras/a.safetensors,," in lines[2]
