"""The one root of every error the console shows a user: what is wrong (`problems`, one complete
sentence each) and, where there is one, what to do about it (`what_to_do`).

Pages catch `ConsoleError` (and the client's `RunPodError`) and hand it to `lib.ui.widgets.show_error`;
anything else is a bug and goes to the log, not the page. Subclasses keep `ValueError` (or
`PermissionError`) as a second base where callers already rely on it.
"""
from __future__ import annotations

from collections.abc import Sequence


class ConsoleError(Exception):
    """A user-facing failure: one or more problems, and what to do (may be empty)."""

    what_to_do: str = ""

    def __init__(self, problems: Sequence[str] | str, *, what_to_do: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else [str(p) for p in problems]
        if what_to_do is not None:
            self.what_to_do = what_to_do
        super().__init__("; ".join(self.problems))
