"""What the realpod page tests share: opening a page of the real app.py and reading what it shows."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR

ROOT = Path(__file__).resolve().parents[2]


def open_page(page: str) -> AppTest:
    """app.py run as the local operator, then switched to `page`; neither run may raise."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["auth.user"] = LOCAL_OPERATOR
    at.run()
    assert not at.exception, at.exception
    if page != "pages/overview.py":
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {at.exception}"
    return at


def everything_shown(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "code", "text", "metric"):
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "value", "")) + " " + str(getattr(element, "label", "")))
    return "\n".join(parts)
