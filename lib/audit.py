"""The audit trail as a table and a CSV export (who did what, when, at what estimated cost)."""
from __future__ import annotations

import json

import pandas as pd

from lib.store import AuditEntry

def audit_frame(entries: list[AuditEntry]) -> pd.DataFrame:
    return pd.DataFrame([{
        "when": e.at, "who": e.user, "action": e.action, "target": e.target or "",
        "details": ", ".join(f"{k}={_short(v)}" for k, v in sorted(e.detail.items())),
        "est. cost $": e.est_cost_usd,
    } for e in entries], columns=["when", "who", "action", "target", "details", "est. cost $"])


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "…"


def audit_csv(entries: list[AuditEntry]) -> bytes:
    return audit_frame(entries).to_csv(index=False).encode()
