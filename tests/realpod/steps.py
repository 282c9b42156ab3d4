"""What the realpod page tests share: opening a page of the real app.py and reading what it shows."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.support.pages import open_app_page


def open_page(page: str) -> AppTest:
    """app.py run as the local operator, then switched to `page`; neither run may raise."""
    return open_app_page(page, timeout=60)


def everything_shown(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success",
                 "code", "text", "metric"):
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "value", "")) + " " + str(getattr(element, "label", "")))
    return "\n".join(parts)
