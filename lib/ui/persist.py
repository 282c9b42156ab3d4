"""Form values that survive navigation and reload: a page names the keys it keeps, and each run stores
what the user entered and puts back what Streamlit forgot (it drops a widget's value when its page is
left, and the whole session on a reload)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from lib.form_state import FormState, storable
from lib.ui import deps

_SAVED = "persist.saved"  # what this session last wrote, so an unchanged form writes nothing


@st.cache_resource(show_spinner=False)
def _form_state(data_dir: str) -> FormState:
    return FormState(Path(data_dir))


def form_state() -> FormState:
    return _form_state(str(deps.services().data_dir))


def _kept(key: str, prefixes: tuple[str, ...], skip: frozenset[str]) -> bool:
    return key not in skip and any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def remember(*prefixes: str, skip: tuple[str, ...] = ()) -> None:
    """Keep the keys named by `prefixes` (exact keys, or prefixes ending in "."), except `skip`.

    Call at the top of a page, before its widgets: the values the browser sent for this run are
    stored, then any kept key this session lacks is filled from the store."""
    user = deps.current_user().email
    store, skipped = form_state(), frozenset(skip)
    saved: dict = st.session_state.setdefault(_SAVED, {})
    current = {k: v for k, v in st.session_state.items()
               if isinstance(k, str) and _kept(k, prefixes, skipped) and storable(v)}
    changed = {k: v for k, v in current.items() if saved.get(k) != v}
    if changed:
        store.save(user, changed)
        saved.update(changed)
    for prefix in prefixes:
        for key, value in store.load(user, prefix).items():
            if _kept(key, prefixes, skipped) and key not in st.session_state:
                st.session_state[key] = value
                saved[key] = value


def forget(*keys: str) -> None:
    """Drop kept values on purpose (e.g. a draft that was saved or discarded)."""
    form_state().forget(deps.current_user().email, keys)
    for key in keys:
        st.session_state.get(_SAVED, {}).pop(key, None)
        st.session_state.pop(key, None)
