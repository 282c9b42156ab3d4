"""Running the real app.py in AppTest: opening one page as a user."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.auth import LOCAL_OPERATOR, User

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEFAULT_PAGE = "pages/overview.py"


def open_app_page(page: str = DEFAULT_PAGE, *, user: User | None = None, timeout: float = 30) -> AppTest:
    """app.py run as `user` (default: the local operator a loopback console gets), then switched to `page`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["auth.user"] = user or LOCAL_OPERATOR
    at.run()
    assert not at.exception, at.exception
    if page != DEFAULT_PAGE:
        # AppTest runs a switched-to page on its own, without app.py's chrome around it.
        at.switch_page(page).run()
        assert not at.exception, f"{page}: {at.exception}"
    return at
