"""AppTest: the Gallery's date range while it is being picked (only its first day chosen yet)."""
from __future__ import annotations

from datetime import date


def test_a_half_picked_date_range_shows_that_day_instead_of_failing(open_page):
    at = open_page("pages/gallery.py")
    at.run()
    at.date_input(key="gal.dates").set_value((date.today(),)).run()
    assert not at.exception, at.exception
    assert at.date_input(key="gal.dates").value == (date.today(),)
