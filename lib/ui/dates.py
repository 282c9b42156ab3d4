"""Date pickers that filter by time: a picked range of days is a window of whole UTC days."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st


def utc_day_window(picked: object) -> tuple[datetime, datetime] | None:
    """[first day 00:00 UTC, the day after the last day 00:00 UTC) of what a range `st.date_input`
    returned, so the last picked day counts in full. None while the range is not complete (the
    widget returns a single day after the first click, and nothing once cleared)."""
    if not isinstance(picked, tuple | list) or len(picked) != 2:
        return None
    first, last = picked
    if not isinstance(first, date) or not isinstance(last, date):
        return None
    return (datetime.combine(first, time.min, UTC),
            datetime.combine(last + timedelta(days=1), time.min, UTC))


def day_range_window(label: str, *, key: str, last_days: int, where=st) -> tuple[datetime, datetime] | None:
    """A range date input (in `where`, e.g. a column) preset to the `last_days` days up to today (UTC).

    Returns its UTC window; while only the first day is picked it says so and returns None."""
    today = datetime.now(UTC).date()
    picked = where.date_input(label, (today - timedelta(days=last_days - 1), today), max_value=today, key=key)
    window = utc_day_window(picked)
    if window is None:
        st.info("Pick the last day of the range too.", icon=":material/date_range:")
    return window
