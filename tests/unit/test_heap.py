"""The console's start-up leaves what it built out of later garbage collections."""
import atexit
import gc
from types import SimpleNamespace

from lib.ui import deps


def test_what_the_console_builds_at_start_is_frozen_out_of_full_collections(monkeypatch):
    # Streamlit, pandas, plotly and the services are ~200,000 objects alive for the whole process: a full
    # collection walked them all, 150–200 ms in the middle of a page run every few runs.
    gc.unfreeze()
    built = SimpleNamespace(access=SimpleNamespace(local_operator=None), close=lambda: None)
    monkeypatch.setattr(deps, "build_services", lambda settings: built)
    monkeypatch.setattr(deps, "settings", lambda: None)
    monkeypatch.setattr(atexit, "register", lambda fn: fn)
    try:
        assert deps._build() is built
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        sessions_open_then = [{"session": i} for i in range(1_000)]
        deps._build()   # a reload (Provisioning): the sessions open then are not frozen with it
        assert gc.get_freeze_count() == frozen and sessions_open_then
    finally:
        gc.unfreeze()
