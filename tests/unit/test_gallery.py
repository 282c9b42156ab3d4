"""The Gallery across kinds: generated images, face swaps and sheet panels (lib/gallery.py)."""
import pytest

from lib import gallery
from lib.store import JobStore


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path)
    yield s
    s.close()


def finished(store, key, *, role, kind, meta):
    record = store.create(role=role, endpoint_id="e", kind=kind, user="ann@x", input={}, idempotency_key=key,
                          meta=meta)
    store.mark_submitted(record.local_id, f"rp-{key}", "IN_PROGRESS")
    store.update_from_runpod(record.local_id, status="COMPLETED", delay_ms=1, execution_ms=1, worker_id="w",
                             retries=0, output={}, error=None)
    store.save_output(record.local_id, f"{key}.png", b"\x89PNG", "image/png")
    return record


def test_face_swaps_and_sheet_panels_are_in_the_gallery_and_filter_by_kind(store):
    finished(store, "gen", role="image", kind="generate", meta={"character": "ava", "model": "FLUX", "seed": 1})
    finished(store, "swap", role="special", kind="faceswap",
             meta={"character": "ava", "source_name": "me.jpg", "target_name": "beach.jpg"})
    finished(store, "panel", role="special", kind="sheet_panel",
             meta={"character": "ava", "label": "front", "seed": 4})
    everything = gallery.pictures(store, kinds=list(gallery.KIND_FILTERS)).items
    assert {p.record.kind for p in everything} == {"generate", "faceswap", "sheet_panel"}
    swaps = gallery.pictures(store, kinds=[gallery.FACE_SWAPS]).items
    assert [p.caption for p in swaps] == ["Face swap · me.jpg → beach.jpg"] and not swaps[0].can_resend
    (panel,) = gallery.pictures(store, kinds=[gallery.SHEETS], character="ava").items
    assert panel.caption == "Sheet · ava · front · seed 4"
    assert gallery.facets(store) == (["ava"], ["FLUX"])


def test_filters_reach_past_the_newest_pictures(store):
    """A character filter is applied by the store, not to the newest `limit` pictures of everyone."""
    finished(store, "old-ava", role="image", kind="generate", meta={"character": "ava", "model": "FLUX"})
    for i in range(5):
        finished(store, f"bo-{i}", role="image", kind="generate", meta={"character": "bo", "model": "SDXL"})
    (ava,) = gallery.pictures(store, kinds=[gallery.GENERATED], character="ava", per_page=3).items
    assert ava.record.meta["character"] == "ava"
    assert len(gallery.pictures(store, kinds=[gallery.GENERATED], model="SDXL", per_page=3).items) == 3


def test_every_picture_is_on_some_page_newest_first(store):
    """A year of images is paged by the store (it used to stop at the newest 300 jobs); a job without a
    kept image takes no place on a page."""
    for i in range(7):
        finished(store, f"gen-{i}", role="image", kind="generate", meta={"character": "ava"})
    store.create(role="image", endpoint_id="e", kind="generate", user="ann@x", input={}, idempotency_key="no-image")
    pages = [gallery.pictures(store, kinds=[gallery.GENERATED], page=n, per_page=3) for n in (1, 2, 3)]
    assert [p.pages for p in pages] == [3, 3, 3] and {p.images for p in pages} == {7}
    names = [item.output.name for p in pages for item in p.items]
    assert names == [f"gen-{i}.png" for i in reversed(range(7))]
    # The simulator's seeded history counts images it never kept: it takes no place on a page either.
    seeded = store.create(role="image", endpoint_id="e", kind="generate", user="ann@x", input={},
                          idempotency_key="seeded", meta={"character": "ava"})
    store.mark_submitted(seeded.local_id, "rp-seeded", "IN_PROGRESS")
    store.update_from_runpod(seeded.local_id, status="COMPLETED", delay_ms=1, execution_ms=1, worker_id="w",
                             retries=0, output={}, error=None)
    with store._tx() as db:
        db.execute("UPDATE jobs SET simulated=1, images=2 WHERE local_id=?", (seeded.local_id,))
    first = gallery.pictures(store, kinds=[gallery.GENERATED], page=1, per_page=3)
    assert (first.images, len(first.items)) == (7, 3)
    past_the_end = gallery.pictures(store, kinds=[gallery.GENERATED], page=9, per_page=3)
    assert past_the_end.page == 3 and [i.output.name for i in past_the_end.items] == ["gen-0.png"]


def test_kinds_of_different_roles_have_different_names():
    """pictures() filters role IN (…) AND kind IN (…): that picks the chosen pairs only while no kind name
    is used by two roles."""
    roles_of: dict[str, set[str]] = {}
    for role, kinds in gallery.KIND_FILTERS.values():
        for kind in kinds:
            roles_of.setdefault(kind, set()).add(role)
    assert all(len(roles) == 1 for roles in roles_of.values())


def test_a_store_from_before_the_model_column_gets_its_filter_values(tmp_path):
    """Stores written by older consoles had the model in meta only: it is copied once on opening."""
    import sqlite3
    old = JobStore(tmp_path)
    finished(old, "gen", role="image", kind="generate", meta={"character": "ava", "model": "Z-Image"})
    old.close()
    with sqlite3.connect(tmp_path / "console.sqlite") as db:
        db.execute("DROP INDEX jobs_model")
        db.execute("ALTER TABLE jobs DROP COLUMN model")
    reopened = JobStore(tmp_path)
    try:
        assert gallery.facets(reopened) == (["ava"], ["Z-Image"])
    finally:
        reopened.close()
