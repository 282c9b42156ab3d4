"""Cached resources and the signed-in user, for pages (the Streamlit adapter)."""
from __future__ import annotations

import atexit
import gc
import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from lib.access import allowed_hosts, host_allowed, local_operator_allowed, verified_email
from lib.auth import LOCAL_OPERATOR, User
from lib.config import Settings
from lib.services import DataDirInUse, Services, build_services
from lib.store import ForeignStore
from lib.ui.safe_text import escaped


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml at all is the normal local case
        return {}


def settings() -> Settings:
    """The settings this console process runs with (environment, then .streamlit/secrets.toml)."""
    return Settings.from_env(secrets=_secrets())


def _build() -> Services:
    services_ = build_services(settings())
    services_.access.local_operator = not _auth_configured()
    atexit.register(services_.close)
    # What has been built so far (Streamlit, pandas, plotly, the console's modules and services) lives as long as
    # the process: some 200,000 objects that every full garbage collection walked, 150–200 ms in the middle of a
    # page run every few runs. Frozen, they are left out of collections (bench/bench_pages.py). Once per process:
    # a later build (Provisioning's reload) would also freeze the sessions open then, and frozen cycles are never
    # freed.
    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()
    return services_


@st.cache_resource(show_spinner="Starting the console…")
def _shared_services() -> Services:
    return _build()


def services() -> Services:
    """One set of services per console process, shared by every browser session. A CONSOLE_DATA
    held by another console, or a store file that is not ours, stops every page with the reason."""
    try:
        return _shared_services()
    except (DataDirInUse, ForeignStore) as exc:
        st.error(f"The console cannot start: {exc}", icon=":material/block:")
        st.stop()


def reload_services() -> None:
    """Restart the shared services (tracker, client, simulator) on the console.toml now on disk."""
    old = services()
    _shared_services.clear()
    old.close()


def _auth_configured() -> bool:
    # Streamlit hands a secrets table over as AttrDict: a Mapping, not a dict.
    return isinstance(_secrets().get("auth"), Mapping)


_PAGE_FILES = Path(__file__).resolve().parents[2] / "pages"


def _gate(render) -> NoReturn:
    """Show only `render` and stop. It is served through st.navigation, even alone: an app that
    stops before calling st.navigation makes Streamlit serve every file in pages/ by its URL, which
    would skip this gate. Every page's URL shows `render` too, instead of a "page not found"."""
    urls = ["sign-in", *sorted(p.stem for p in _PAGE_FILES.glob("*.py"))]
    st.navigation([st.Page(render, title="Serverless Console", url_path=url, default=url == "sign-in")
                   for url in urls], position="hidden").run()
    st.stop()


def _ask_to_sign_in() -> None:
    st.title("Serverless Console")
    st.write("Sign in with your company account to continue.")
    st.button("Sign in", icon=":material/login:", on_click=st.login, type="primary")


def _refuse_stranger() -> None:
    st.error("This account is not allowed in this console. Ask an operator to add you to [access] in "
             "console.toml, or sign out and sign in with another account.")
    if services().access.problem:
        st.warning(services().access.problem)
    st.text(str(st.user.get("email") or ""))
    st.button("Sign out", on_click=st.logout)


def _refuse_unverified() -> None:
    st.error("Your identity provider says this e-mail address is not verified, so the console cannot "
             "trust it. Verify the address with your provider, then sign out and sign in again.")
    st.text(str(st.user.get("email") or ""))
    st.button("Sign out", on_click=st.logout)


def _refuse_remote() -> None:
    st.error("No sign-in is configured, so this console only runs for a local operator on "
             "127.0.0.1. Configure [auth] in .streamlit/secrets.toml (OpenID Connect) or start it "
             "with --server.address 127.0.0.1.")


def _console_hosts() -> list[str]:
    auth = _secrets().get("auth")
    redirect_uri = auth.get("redirect_uri") if isinstance(auth, Mapping) else None
    return allowed_hosts(st.get_option("server.address"), configured=st.get_option("server.allowedHosts") or (),
                         urls=(redirect_uri, st.get_option("browser.serverAddress")))


def _refuse_foreign_host() -> None:
    hosts = _console_hosts()
    st.error("This console answers only to the names it was started for, and this page reached it "
             "under another name — which is how a foreign website taking over the console through DNS "
             f"rebinding looks. Open it as http://{hosts[0] if hosts else '127.0.0.1'}:"
             f"{st.get_option('server.port')}/ instead; to serve it under another name, add that name "
             "to server.allowedHosts in .streamlit/config.toml.")
    st.caption("Name used by this page, and the names this console answers to:")
    st.text(str(st.context.headers.get("Host")))
    st.text(", ".join(hosts))


def _mark_gate_passed(user: User) -> User:
    """Remember, for this script run only, that the request passed the gate as `user`."""
    st.session_state["auth.user"] = user
    _show_pending_toasts()
    ctx = get_script_run_ctx()
    if ctx is not None:
        # parallel_coordinator is created anew for every script run: it names this run.
        setattr(ctx, _GATE_ATTR, (ctx.parallel_coordinator, user))
    return user


_GATE_ATTR = "_console_gate_passed"
_PENDING_TOASTS = "ui.pending_toasts"


def toast_and_rerun(message: str) -> NoReturn:
    """Say `message` as a toast and run the whole page again. Streamlit drops a toast sent just before
    st.rerun(), so the message waits in the session for the next run, which shows it once it passed the gate."""
    st.session_state.setdefault(_PENDING_TOASTS, []).append(message)
    st.rerun()


def _show_pending_toasts() -> None:
    for message in st.session_state.pop(_PENDING_TOASTS, []):
        st.toast(escaped(message))   # names of files, runs and jobs are the user's text


def sign_in_gate(services_: Services) -> User:
    """Who is here, or stop the page: only for the host names the console was started for; then OpenID
    Connect sign-in when [auth] is in secrets, otherwise a single local operator — but only while the
    console listens on loopback."""
    if not host_allowed(st.context.headers.get("Host"), _console_hosts()):
        _gate(_refuse_foreign_host)
    signing_in = _auth_configured()
    services_.access.local_operator = not signing_in
    if signing_in:
        if not st.user.is_logged_in:
            _gate(_ask_to_sign_in)
        email = verified_email(st.user.to_dict())
        if email is None:
            _gate(_refuse_unverified if st.user.get("email") else _refuse_stranger)
        user = services_.access.user(email, str(st.user.get("name") or ""))
        if user is None:
            _gate(_refuse_stranger)
        return _mark_gate_passed(user)
    preset = st.session_state.get("auth.user")
    if preset is not None:
        return _mark_gate_passed(preset)
    if not local_operator_allowed(st.get_option("server.address")):
        _gate(_refuse_remote)
    return _mark_gate_passed(LOCAL_OPERATOR)


def require_gate() -> User:
    """The first statement of every page: the page renders only for a request that passed the sign-in
    gate in this very script run, and returns who that is.

    Streamlit serves pages/<name>.py by its URL, without app.py and so without the gate, until some
    session of the process has reached st.navigation (its file-name routing, "MPA v1"). A page opened
    that way switches the process to app.py's routing and reruns, so the same URL goes through app.py:
    its gate, its navigation, and only then this page."""
    ctx = get_script_run_ctx()
    passed = getattr(ctx, _GATE_ATTR, None)
    if passed is not None and ctx is not None and passed[0] is ctx.parallel_coordinator:
        return passed[1]
    if PagesManager.uses_pages_directory:
        # End file-name routing for the whole process (as st.navigation would). On a session's first
        # contact the rerun keeps this URL's page and runs app.py: the gate, then app.py's own
        # navigation to this page. (AppTest restores file-name routing before every run; there the
        # session has passed the gate before, and a rerun would lose the widget that was clicked.)
        PagesManager.uses_pages_directory = False
        if "auth.user" not in st.session_state:
            st.rerun()
    # The page runs without app.py (a page test, or `streamlit run pages/<name>.py`): gate it here.
    return sign_in_gate(services())


def navigation(pages: dict[str, list]) -> StreamlitPage:
    """app.py's navigation in the sidebar. .streamlit/config.toml hides sidebar navigation so that
    Streamlit's file-name navigation never shows; from here on the process routes through app.py."""
    PagesManager.uses_pages_directory = False
    st.set_option("client.showSidebarNavigation", True)
    return st.navigation(pages, expanded=True)  # all 13 pages: collapsed, the Admin ones would hide


def auth_configured() -> bool:
    return _auth_configured()


def current_user() -> User:
    """The user the gate let in (pages call require_gate first)."""
    user = st.session_state.get("auth.user")
    return user if user is not None else require_gate()


def idempotency_key(scope: str, form_values: object) -> str:
    """The same key for the same form in the same browser session until `new_request(scope)`.

    A rerun or a double click of an unchanged form yields the same key, and the store refuses to
    send a job twice for one key; "submit again" buttons call new_request to mean it.
    """
    nonce = st.session_state.setdefault("idem.nonce", uuid.uuid4().hex)
    generation = st.session_state.setdefault(f"idem.{scope}", 0)
    text = json.dumps([nonce, scope, generation, form_values], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def new_request(scope: str) -> None:
    st.session_state[f"idem.{scope}"] = st.session_state.get(f"idem.{scope}", 0) + 1
