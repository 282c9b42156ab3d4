"""What moving or deleting a model file breaks, said before the operator confirms it."""
from __future__ import annotations

from collections.abc import Sequence


def saved_workflows(refs: Sequence) -> list[str]:
    """Names of the staff-saved workflows among usage references (built-in templates cannot be edited)."""
    return sorted({r.label for r in refs if r.kind == "template" and not r.builtin})


def moved_message(key: str, workflows_updated: Sequence[str]) -> str:
    if not workflows_updated:
        return f"Moved to {key}"
    return f"Moved to {key}; {len(workflows_updated)} saved workflow(s) now use it: {', '.join(workflows_updated)}"


def used_warning(refs: Sequence, action: str) -> str | None:
    """'Used by 1 saved workflow and 2 jobs: …' from usage references (kind "template" or "job")."""
    templates = len({r.id for r in refs if r.kind == "template"})
    jobs = len({r.id for r in refs if r.kind == "job"})
    if not templates and not jobs:
        return None
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((templates, "saved workflow"), (jobs, "job"))
             if n]
    effects = []
    if templates:
        effects.append("the saved workflows will fail preflight until they name the new path" if action == "move"
                       else "the saved workflows will fail preflight")
    if jobs:
        effects.append("re-runs of those jobs (and their Gallery images) will fail")
    return f"Used by {' and '.join(parts)}: after this {action}, " + "; ".join(effects) + "."
