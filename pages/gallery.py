"""Gallery: every image the console kept, with its settings, filters, download, re-run, vary seed."""
from datetime import date, datetime, time, timedelta, timezone

import streamlit as st

from lib import inference as inf
from lib.ui import deps, widgets
from lib.ui import live as live_view
from lib.workflows import ParamError, TemplateError

svc = deps.services()
user = deps.current_user()
PER_PAGE = 24

st.title("Gallery")
characters, models = inf.gallery_facets(svc)
f1, f2, f3 = st.columns(3)
character = f1.selectbox("Character / LoRA", ["all", *characters], key="gal.character")
model = f2.selectbox("Model", ["all", *models], key="gal.model")
days = f3.date_input("Dates", (date.today() - timedelta(days=30), date.today()), key="gal.dates")
start, end = (days if isinstance(days, tuple) and len(days) == 2 else (days, days)) if days else (None, None)
items = inf.gallery(svc, character=None if character == "all" else character,
                    model=None if model == "all" else model,
                    since=datetime.combine(start, time.min, timezone.utc) if start else None,
                    until=datetime.combine(end, time.max, timezone.utc) if end else None)
pages = max(1, -(-len(items) // PER_PAGE))
page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="gal.page")) if pages > 1 else 1
st.caption(f"{len(items)} images — kept by the console, so they outlive RunPod's 30-minute results.")
if not items:
    st.info("No images yet. Make some on the Generate page.", icon=":material/image:")


def send(action, item: inf.GalleryItem, verb: str) -> None:
    scope = f"gallery.{verb}.{item.record.local_id}"
    try:
        result = action(svc, item.record.local_id, user_email=user.email,
                        request_key=deps.idempotency_key(scope, item.output.name))
    except (ValueError, ParamError, TemplateError) as exc:
        widgets.show_error(exc, verb)
        return
    for error in result.errors:
        st.error(error, icon=":material/error:")
    if result.records and not result.errors:
        deps.new_request(scope)  # sent: the next click is a new request
        st.session_state["gal.sent"] = result.local_ids
        st.toast(f"{verb.capitalize()} sent — the new image appears here when it is done.")


cols = st.columns(4)
for i, item in enumerate(items[(page - 1) * PER_PAGE: page * PER_PAGE]):
    with cols[i % 4]:
        st.image(str(item.output.path), caption=item.caption, width="stretch")
        with st.expander("Details"):
            st.write(item.details)
        # Three buttons side by side do not fit a quarter of the page: their labels were cut to "D…".
        st.download_button("Download", item.output.path.read_bytes(), item.output.name, item.output.mime,
                           key=f"gal.dl.{item.record.local_id}.{item.output.name}", icon=":material/download:",
                           width="stretch")
        b, c = st.columns(2)
        uid = f"{item.record.local_id}.{item.output.name}"
        if b.button("Re-run", key=f"gal.rerun.{uid}", disabled=not user.can("submit"), width="stretch",
                    help="Send the identical job again (only the output name changes)"):
            send(inf.rerun, item, "re-run")
        if c.button("Vary seed", key=f"gal.vary.{uid}", disabled=not user.can("submit"), width="stretch",
                    help="Same settings, a new random seed"):
            send(inf.vary_seed, item, "vary seed")

if st.session_state.get("gal.sent"):
    st.subheader("Just sent")
    live_view.live_fragment(svc, "gal.sent", lambda key: live_view.job_list(svc, user, key))
