"""AppTest: the shell, Overview and Jobs pages on the in-process simulator."""
import time
from datetime import UTC, datetime


def test_every_page_renders_without_exception(open_page):
    for page in ("pages/overview.py", "pages/jobs.py"):
        at = open_page(page)
        assert not at.exception, (page, at.exception)


def test_banner_says_simulator(open_page):
    at = open_page("pages/overview.py")
    assert any("Local simulator" in i.value for i in at.info)


def test_overview_shows_each_endpoint_health(open_page):
    at = open_page("pages/overview.py")
    subheaders = [s.value for s in at.subheader]
    for name in ("console-image", "console-training", "console-special"):
        assert name in subheaders
    labels = [m.label for m in at.metric]
    assert labels.count("In queue") == 3 and "Spend today (estimated)" in labels


def test_jobs_page_shows_a_submitted_job_and_its_detail(open_page, console, users):
    rec = console.tracker.submit("image", {"sleep_ms": 10, "echo": "hi"}, kind="test",
                                 user=users["staff"].email, idempotency_key=f"apptest-{time.time()}")
    console.tracker.wait_for([rec.local_id], timeout_s=30)
    at = open_page("pages/jobs.py")
    frame = at.dataframe[0].value
    assert rec.local_id in set(frame["job"])
    assert not at.exception


def test_jobs_page_dates_are_whole_utc_days_and_a_half_picked_range_asks_for_the_last_day(open_page, console,
                                                                                       users):
    rec = console.tracker.submit("image", {"sleep_ms": 10, "echo": "today"}, kind="test",
                                 user=users["staff"].email, idempotency_key=f"apptest-dates-{time.time()}")
    today = datetime.now(UTC).date()
    at = open_page("pages/jobs.py")
    at.date_input(key="jobs.dates").set_value((today, today)).run()
    assert rec.local_id in set(at.dataframe[0].value["job"])      # the last day counts in full
    at.date_input(key="jobs.dates").set_value((today,)).run()
    assert not at.exception
    assert any("Pick the last day" in i.value for i in at.info)
    assert not at.dataframe


def test_viewer_sees_signed_in_role(open_page, users):
    at = open_page("pages/overview.py", user=users["viewer"])
    assert any("viewer" in c.value for c in at.sidebar.caption)


def test_the_overviews_alert_history_is_drawn_once_opened(open_page):
    # A collapsed section's table was sent and drawn on every visit of the page.
    at = open_page("pages/overview.py")
    history = "No alert has fired yet. Rules live in console.toml ([[alerts]])."
    tables, captions = len(at.dataframe), [c.value for c in at.caption]
    assert history not in captions
    at.session_state["overview.alerts"] = True   # the user opens "Alerts: … history"
    at.run()
    assert not at.exception
    assert history in [c.value for c in at.caption] or len(at.dataframe) == tables + 1
