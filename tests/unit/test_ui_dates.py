"""A picked range of days becomes a window of whole UTC days, the last day included."""
from datetime import UTC, date, datetime

import pytest

from lib.ui.dates import utc_day_window


def test_the_last_picked_day_counts_in_full():
    start, end = utc_day_window((date(2026, 3, 1), date(2026, 3, 7)))
    assert start == datetime(2026, 3, 1, tzinfo=UTC)
    assert end == datetime(2026, 3, 8, tzinfo=UTC)      # exclusive: 23:59:59.999 on the 7th is inside
    assert start <= datetime(2026, 3, 7, 23, 59, 59, 999999, tzinfo=UTC) < end


def test_one_day_picked_twice_is_that_whole_day():
    start, end = utc_day_window((date(2026, 12, 31), date(2026, 12, 31)))
    assert (start, end) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("picked", [(date(2026, 3, 1),), (), None, date(2026, 3, 1)])
def test_an_incomplete_range_has_no_window(picked):
    assert utc_day_window(picked) is None
