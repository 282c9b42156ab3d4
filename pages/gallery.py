"""Gallery: every image the console kept, with its settings, filters, download, re-run, vary seed."""
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from lib import gallery, resend
from lib import inference as inf
from lib.errors import ConsoleError
from lib.runpod import RunPodError
from lib.ui import deps, persist, pictures, resend_view, widgets
from lib.ui import live as live_view

deps.require_gate()
svc = deps.services()
user = deps.current_user()
PER_PAGE = 24
GRID_IMAGE_PX = 224   # four to a row on a laptop, more on a wide screen

st.title("Gallery")
persist.remember("gal.kinds", "gal.character", "gal.model", "gal.sent")
characters, models = gallery.facets(svc.store)
f0, f1, f2, f3 = st.columns([2, 1, 1, 1])
kinds = f0.multiselect("Kind", list(gallery.KIND_FILTERS), list(gallery.KIND_FILTERS), key="gal.kinds")
character = f1.selectbox("Character / LoRA", ["all", *characters], key="gal.character")
model = f2.selectbox("Model", ["all", *models], key="gal.model")
days = f3.date_input("Dates", (date.today() - timedelta(days=30), date.today()), key="gal.dates")
# While a range is being picked the input holds only its first day: show that day until the second is picked.
picked = days if isinstance(days, tuple) else (days,)
start, end = (picked[0], picked[-1]) if picked else (None, None)
found = gallery.pictures(svc.store, kinds=kinds, character=None if character == "all" else character,
                         model=None if model == "all" else model,
                         since=datetime.combine(start, time.min, UTC) if start else None,
                         until=datetime.combine(end, time.max, UTC) if end else None,
                         page=st.session_state.get("gal.page", 1), per_page=PER_PAGE)
st.session_state["gal.page"] = found.page   # a narrower filter may have fewer pages
if found.pages > 1:
    st.number_input(f"Page (of {found.pages:,})", 1, found.pages, key="gal.page")
st.caption(f"{found.images:,} images — kept by the console, so they outlive RunPod's 30-minute results.")


def send(action, item: gallery.Picture, verb: str) -> None:
    """Re-run's and Vary seed's callback. It runs before the page does, so what was sent (or why not) is
    drawn above the grid in this same run."""
    scope = f"gallery.{verb}.{item.record.local_id}"
    verdict = resend.before_resend(item.record, svc.volume)   # the same preflight as Generate
    if not verdict.ok:
        st.session_state["gal.refused"] = item.record.local_id
        return
    st.session_state.pop("gal.refused", None)
    try:
        result = action(svc, item.record.local_id, user_email=user.email,
                        request_key=deps.idempotency_key(scope, item.output.name))
    except (ConsoleError, RunPodError) as exc:
        st.session_state["gal.failed"] = (exc, verb)
        return
    st.session_state["gal.errors"] = result.errors
    if result.records and not result.errors:
        deps.new_request(scope)  # sent: the next click is a new request
        st.session_state["gal.sent"] = result.local_ids
        st.toast(f"{verb.capitalize()} sent — the new image appears above the pictures when it is done.")


with st.container(key="gal.notice"):   # above the grid, where it is seen
    if failed := st.session_state.pop("gal.failed", None):
        widgets.show_error(*failed)
    for error in st.session_state.pop("gal.errors", []):
        st.error(error, icon=":material/error:")
    if refused := st.session_state.get("gal.refused"):
        record = svc.store.get(refused)
        st.subheader("Not sent")
        resend_view.show_refusal(resend.before_resend(record, svc.volume), record, "gal.refused")
    if st.session_state.get("gal.sent"):
        st.subheader("Just sent")
        live_view.live_fragment(svc, "gal.sent", lambda key: live_view.job_list(svc, user, key))


if not found.items:
    st.info("No images here yet. Make some on the Generate or Face swap & sheets page.", icon=":material/image:")
    st.stop()
# One picture's actions at a time, for the picture chosen here: 24 cards of an image, details, a download and
# three buttons each took the browser 0.3 s to redraw on every visit and rerun, and read every file for its
# download. The grid below is one element; its captions carry the numbers chosen here.
by_uid = {item.uid: item for item in found.items}
numbered = found.numbered
if st.session_state.get("gal.picked") not in by_uid:   # its picture is on another page, or a filter hid it
    st.session_state.pop("gal.picked", None)
pick, download, rerun, vary, opening = st.columns([4, 1.3, 1.1, 1.3, 2.2], vertical_alignment="bottom")
uid = pick.selectbox("Picture", list(by_uid), format_func=numbered.__getitem__, key="gal.picked",
                     help="The picture the buttons beside act on: its number is at the start of its caption")
item = by_uid[uid]
download.download_button("Download", item.output.path.read_bytes(), item.output.name, item.output.mime,
                         key=f"gal.dl.{uid}", icon=":material/download:", width="stretch")
if item.can_resend:
    rerun.button("Re-run", key=f"gal.rerun.{uid}", disabled=not user.can("submit"), width="stretch",
                 help="Send the identical job again (only the output name changes)",
                 on_click=send, args=(inf.rerun, item, "re-run"))
    vary.button("Vary seed", key=f"gal.vary.{uid}", disabled=not user.can("submit"), width="stretch",
                help="Same settings, a new random seed", on_click=send, args=(inf.vary_seed, item, "vary seed"))
    if opening.button("Open in Own workflow", key=f"gal.open.{uid}", width="stretch", icon=":material/account_tree:",
                      help="The exact workflow this image was made with, to save, edit and run as your own"):
        try:
            st.session_state["own.opened"] = inf.sent_workflow(svc, item.record.local_id)
        except ConsoleError as exc:
            widgets.show_error(exc, "open its workflow")
        else:
            st.switch_page("pages/generate.py")
st.text(item.details)
pictures.show(svc, [i.output.path for i in found.items], list(numbered.values()), width=GRID_IMAGE_PX)
