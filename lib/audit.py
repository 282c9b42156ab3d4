"""The audit trail as a table and a CSV export (who did what, when, at what estimated cost), with action
names a person reads and each entry's details as a table of fields."""
from __future__ import annotations

import pandas as pd

from lib.store import AuditEntry

ACTION_NAMES = {
    "submit": "Sent a job", "cancel": "Cancelled a job", "retry": "Retried a job",
    "promote": "Promoted a checkpoint", "stage_checkpoints": "Staged checkpoints for a grid",
    "volume.upload": "Uploaded a model file", "volume.move": "Moved a model file",
    "volume.delete": "Deleted a model file", "endpoint.apply": "Changed endpoint settings",
    "endpoint.purge_queue": "Purged an endpoint queue", "endpoint.warm_hold": "Raised min workers",
    "endpoint.warm_restore": "Restored min workers", "provision": "Provisioned a model",
    "apply": "Applied console.toml", "delete": "Deleted (provisioning)", "upload": "Uploaded (provisioning)",
    "dataset.create": "Created a training set", "dataset.save": "Saved a training set version",
    "workflow.save": "Saved an own workflow",
}


def action_name(action: str) -> str:
    return ACTION_NAMES.get(action) or action.replace(".", " ").replace("_", " ").capitalize()


def audit_frame(entries: list[AuditEntry]) -> pd.DataFrame:
    return pd.DataFrame([{
        "when": e.at, "who": e.user, "action": action_name(e.action), "target": e.target or "",
        # text, so that an action without a cost reads as blank rather than "None"
        "est. cost": "" if e.est_cost_usd is None else f"${e.est_cost_usd:.4f}",
        "details": ", ".join(f"{k.replace('_', ' ')}: {_short(v)}" for k, v in sorted(e.detail.items())),
    } for e in entries], columns=["when", "who", "action", "target", "est. cost", "details"])


def detail_frame(entry: AuditEntry) -> pd.DataFrame:
    """One entry's details as field / value rows (lists and objects spelled out, never raw JSON)."""
    return pd.DataFrame([{"field": k.replace("_", " "), "value": _spelled(v)} for k, v in sorted(entry.detail.items())],
                        columns=["field", "value"])


def _spelled(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_spelled(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_spelled(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.4g}"
    return "—" if value is None else str(value)


def _short(value: object) -> str:
    text = _spelled(value) if isinstance(value, (list, dict, float)) or value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "…"


def audit_csv(entries: list[AuditEntry]) -> bytes:
    """The table as CSV, the estimated cost as a number in dollars (blank when the action had none)."""
    frame = audit_frame(entries)
    frame.insert(frame.columns.get_loc("est. cost"), "est. cost $", [e.est_cost_usd for e in entries])
    return frame.drop(columns="est. cost").to_csv(index=False).encode()
