"""Store reads kept until the store changes (lib/store_memo) and the store queries they use."""
from lib.store import JobStore
from lib.store_memo import memo


def _job(store, n, **meta):
    return store.create(role="image", endpoint_id="ep", kind="generate", user="u@example.com",
                        input={"n": n}, idempotency_key=f"k{n}", meta=meta)


def test_a_memo_is_reused_until_the_store_is_written(tmp_path):
    store = JobStore(tmp_path)
    calls = []

    def count():
        calls.append(1)
        return len(store.list())

    assert memo(store, "count", count) == 0
    assert memo(store, "count", count) == 0
    assert len(calls) == 1
    _job(store, 1)
    assert memo(store, "count", count) == 1
    assert len(calls) == 2


def test_a_memo_expires_with_age(tmp_path):
    store = JobStore(tmp_path)
    calls = []
    memo(store, "age", lambda: calls.append(1), max_age_s=0)
    memo(store, "age", lambda: calls.append(1), max_age_s=0)
    assert len(calls) == 2


def test_meta_values_are_distinct_sorted_and_skip_empty(tmp_path):
    store = JobStore(tmp_path)
    _job(store, 1, character="milo", model="FLUX")
    _job(store, 2, character="ava", model="FLUX")
    _job(store, 3, character="ava")
    _job(store, 4)
    store.create(role="special", endpoint_id="ep", kind="faceswap", user="u@example.com", input={},
                 idempotency_key="s", meta={"character": "zoe"})
    assert store.meta_values("character", role="image", kinds=["generate"]) == ["ava", "milo"]
    assert store.meta_values("model", role="image", kinds=["generate", "grid"]) == ["FLUX"]
