"""Small shared pieces of page chrome."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import streamlit as st

from lib.auth import Forbidden
from lib.devworkers import DEV, routes
from lib.errors import ConsoleError
from lib.jobstate import JobState
from lib.ui.safe_text import escaped

if TYPE_CHECKING:
    from lib.services import Services

T = TypeVar("T")

# Material icons (Streamlit's own font), not emoji: Debian ships no emoji font, so emoji showed as
# empty boxes. An icon never stands alone: every use puts the status in words beside it.
STATUS_ICONS: dict[str, str] = {
    JobState.PENDING: ":material/schedule_send:", JobState.IN_QUEUE: ":material/hourglass_top:",
    JobState.IN_PROGRESS: ":material/progress_activity:", JobState.COMPLETED: ":material/check_circle:",
    JobState.FAILED: ":material/error:", JobState.CANCELLED: ":material/cancel:",
    JobState.TIMED_OUT: ":material/timer_off:", JobState.SUBMIT_FAILED: ":material/block:",
    JobState.UNKNOWN: ":material/help:", JobState.EXPIRED: ":material/delete_history:",
}


# Job tables (Jobs, Overview): each column as wide as its values, and together as wide as the page beside the
# sidebar on a laptop (1400 px), so nothing is cut at the edge; times in UTC without zone or fractions.
JOB_TABLE_COLUMNS = {
    "job": st.column_config.TextColumn(width=132),
    "when": st.column_config.DatetimeColumn("when (UTC)", format="MM-DD HH:mm:ss", width=105),
    "endpoint": st.column_config.TextColumn(width=70),
    "kind": st.column_config.TextColumn(width=75),
    "status": st.column_config.TextColumn(width=100),
    "who": st.column_config.TextColumn(width=160),
    "character": st.column_config.TextColumn(width=80),
    "queue s": st.column_config.NumberColumn(width=60),
    "run s": st.column_config.NumberColumn(width=55),
    "cost $": st.column_config.NumberColumn(format="$%.4f", width=70),
}
# The worker and whether the job was simulated are in the selected job's details below the table.
JOB_TABLE_ORDER = list(JOB_TABLE_COLUMNS)


def text_table(rows: list[dict]) -> None:
    """Rows with sentences in them (findings, advice): a static table whose cells wrap, so nothing is cut
    at a column's edge. st.table renders Markdown, so every cell is escaped: file names and messages
    stay text."""
    st.table([{escaped(key): escaped("" if value is None else value) for key, value in row.items()} for row in rows],
             border="horizontal")


def status_words(status: str) -> str:
    """'Timed out' for TIMED_OUT: the status as a person reads it (and a screen reader says it)."""
    return status.replace("_", " ").capitalize()


def backend_banner(services: Services) -> None:
    where = routes(services)
    if any(route.target == DEV for route in where):
        st.info("Where jobs go:  \n" + "  \n".join(f"**{r.role}** → {r.target} `{r.where}`" for r in where),
                icon=":material/developer_mode:")
    elif services.simulated:
        st.info(f"**Local simulator** — no RunPod key is set, so every job runs on localpod "
                f"(cold starts compressed ×{services.config.simulator.time_scale:g}). "
                "Historic traffic and billing are simulated.", icon=":material/science:")
    else:
        st.success("Connected to **RunPod** — jobs run on real GPUs and cost money.",
                   icon=":material/cloud:")


def show_error(exc: Exception, doing: str) -> None:
    """A clear message naming what failed and what to do; never a traceback."""
    if isinstance(exc, Forbidden):
        st.error(escaped(exc), icon=":material/lock:")
    elif isinstance(exc, ConsoleError) and len(exc.problems) > 1:
        # what failed may quote a worker, RunPod or a file name: shown as text, never Markdown
        st.error(f"Could not {escaped(doing)}:\n" + "\n".join(f"- {escaped(p)}" for p in exc.problems)
                 + (f"\n\n{escaped(exc.what_to_do)}" if exc.what_to_do else ""), icon=":material/error:")
    else:
        what_to_do = f" {exc.what_to_do}" if isinstance(exc, ConsoleError) and exc.what_to_do else ""
        st.error(f"Could not {escaped(doing)}: {escaped(str(exc) + what_to_do)}", icon=":material/error:")


def tracking_health(health) -> None:
    """Overview's word on job tracking (lib.tracker.TrackingHealth): silent while healthy."""
    if not health.degraded:
        return
    if not health.running:
        st.error("**Job tracking has stopped** — finished jobs are not recorded until the console restarts.",
                 icon=":material/sync_problem:")
    else:
        st.warning("**Job tracking is degraded** — every job is kept and retried, and tracking catches up by "
                   "itself once the cause below is gone.", icon=":material/sync_problem:")
    st.text("\n".join(health.problems))  # paths and error texts: shown as text, never Markdown


DEV_WORKER_NOTE = ("Runs on a worker under development (runpod --rp_serve_api): it reports no progress, so the "
                   "job shows as running until its handler returns.")


def dev_worker_note(record) -> None:
    """Say so when an unfinished job runs on a dev worker, whose status cannot show progress."""
    if record.on_dev_worker and not record.is_final:
        st.caption(DEV_WORKER_NOTE)


def lazy_expander(label: str, key: str, draw: Callable[[], T], *, keep_drawing: bool = False,
                  icon: str | None = None) -> T | None:
    """An expander whose content is drawn only while it is open (opening it reruns the page), or always
    with `keep_drawing` (content whose widgets must keep their values): a collapsed expander's content is
    otherwise sent and rendered on every visit. draw()'s result, None when it was not drawn."""
    box = st.expander(label, key=key, on_change="rerun", icon=icon)
    if not (box.open or keep_drawing):
        return None
    with box:
        return draw()


def lazy_tabs(sections: Mapping[str, Callable[[], object]], key: str) -> None:
    """Tabs of which only the open one is drawn (choosing another reruns the page), so a visit sends one
    section's charts and tables, not all of them. The open tab is remembered by its label: keep labels fixed."""
    for tab, draw in zip(st.tabs(list(sections), key=key, on_change="rerun"), sections.values(), strict=True):
        if tab.open:
            with tab:
                draw()
