"""Cached resources and the signed-in user, for pages (the Streamlit adapter)."""
from __future__ import annotations

import atexit
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import NoReturn

import streamlit as st

from lib.access import local_operator_allowed
from lib.auth import LOCAL_OPERATOR, User
from lib.config import Settings
from lib.services import DataDirInUse, Services, build_services
from lib.store import ForeignStore


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml at all is the normal local case
        return {}


def _build() -> Services:
    services_ = build_services(Settings.from_env(secrets=_secrets()))
    atexit.register(services_.close)
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


def _gate(render) -> NoReturn:
    """Show only `render` and stop. It is served through st.navigation, even alone: an app that
    stops before calling st.navigation makes Streamlit serve every file in pages/ by its URL,
    which would skip this gate."""
    st.navigation([st.Page(render, title="Serverless Console", url_path="sign-in", default=True)],
                  position="hidden").run()
    st.stop()


def _ask_to_sign_in() -> None:
    st.title("Serverless Console")
    st.write("Sign in with your company account to continue.")
    st.button("Sign in", icon=":material/login:", on_click=st.login, type="primary")


def _refuse_stranger() -> None:
    st.error(f"{st.user.get('email')} is not allowed in this console. Ask an operator to add "
             "you to [access] in console.toml.")
    st.button("Sign out", on_click=st.logout)


def _refuse_remote() -> None:
    st.error("No sign-in is configured, so this console only runs for a local operator on "
             "127.0.0.1. Configure [auth] in .streamlit/secrets.toml (OpenID Connect) or start it "
             "with --server.address 127.0.0.1.")


def sign_in_gate(services_: Services) -> User:
    """Who is here, or stop the page: OpenID Connect sign-in when [auth] is in secrets,
    otherwise a single local operator — but only while the console listens on loopback."""
    if _auth_configured():
        if not st.user.is_logged_in:
            _gate(_ask_to_sign_in)
        user = services_.access.user(str(st.user.get("email") or ""), str(st.user.get("name") or ""))
        if user is None:
            _gate(_refuse_stranger)
        st.session_state["auth.user"] = user
        return user
    preset = st.session_state.get("auth.user")
    if preset is not None:
        return preset
    if not local_operator_allowed(st.get_option("server.address")):
        _gate(_refuse_remote)
    return LOCAL_OPERATOR


def auth_configured() -> bool:
    return _auth_configured()


def current_user() -> User:
    return st.session_state.get("auth.user") or LOCAL_OPERATOR


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
