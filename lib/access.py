"""Sign-in roles from console.toml, the server-side check every action goes through, and which Host
names the console answers to.

[access]
operators = ["ops@example.com"]          # e-mail addresses, or "@example.com" for a whole domain
staff = ["@example.com"]
viewers = ["@partner.example"]

The most specific match wins (an address beats a domain); someone matching nothing is not let in.
The table is re-read whenever console.toml changes on disk, so removing someone takes effect at their
next click. The local operator exists only while no sign-in is configured.
"""
from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from lib.auth import LOCAL_OPERATOR, User, require
from lib.config import ConfigError

log = logging.getLogger(__name__)

_LISTS = (("operators", "operator"), ("staff", "staff"), ("viewers", "viewer"))


def _parse_table(raw: Mapping) -> tuple[dict[str, str], dict[str, str]]:
    table = raw.get("access") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("console.toml: [access] must be a table")
    addresses: dict[str, str] = {}
    domains: dict[str, str] = {}
    # Later lists are weaker roles: setdefault keeps the strongest role for a name listed twice.
    for key, role in _LISTS:
        entries = table.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ConfigError(f"console.toml: [access] {key} must be a list of e-mail addresses or @domains")
        for entry in entries:
            entry = entry.strip().lower()
            (domains if entry.startswith("@") else addresses).setdefault(entry, role)
    return addresses, domains


def _stamp(path: Path | None) -> tuple | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return ("missing",)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class AccessPolicy:
    """Who has which role. Thread-safe; with a `path`, follows that file's [access] table."""

    def __init__(self, addresses: Mapping[str, str] | None = None, domains: Mapping[str, str] | None = None,
                 *, path: str | os.PathLike | None = None, local_operator: bool = True):
        self._addresses = dict(addresses or {})
        self._domains = dict(domains or {})
        self._path = Path(path) if path is not None else None
        self._stamp = _stamp(self._path)
        self._lock = threading.Lock()
        # Set by the sign-in gate: False as soon as sign-in is configured.
        self.local_operator = local_operator
        self.problem: str | None = None  # why the current file's [access] could not be used

    @classmethod
    def from_config(cls, raw: Mapping, path: str | os.PathLike | None = None) -> AccessPolicy:
        addresses, domains = _parse_table(raw)
        return cls(addresses, domains, path=path)

    def _follow_file(self, path: Path) -> None:
        stamp = _stamp(path)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
                self._addresses, self._domains = _parse_table(raw)
                self.problem = None
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ConfigError) as exc:
                # Fail closed: a half-edited file must not keep someone in who was just removed.
                self._addresses, self._domains = {}, {}
                self.problem = (f"{path} could not be read ({exc}), so nobody is let in until "
                                "its [access] table is fixed")
                log.warning("access list: %s", self.problem)
            self._stamp = stamp

    def role_for(self, email: str | None) -> str | None:
        if not email:
            return None
        email = email.strip().lower()
        if email == LOCAL_OPERATOR.email:
            # Never a sign-in identity: a provider that lets a user pick this address gets nothing.
            return LOCAL_OPERATOR.role if self.local_operator else None
        if self._path is not None:
            self._follow_file(self._path)
        if email in self._addresses:
            return self._addresses[email]
        domain = "@" + email.rsplit("@", 1)[-1]
        return self._domains.get(domain)

    def user(self, email: str, name: str = "") -> User | None:
        role = self.role_for(email)
        return None if role is None else User(email=email.strip().lower(), role=role, name=name)

    def authorize(self, email: str, action: str) -> User:
        """Raise Forbidden unless this person's role allows the action."""
        user = self.user(email) or User(email=email, role="none")
        require(user, action)
        return user


def verified_email(claims: Mapping) -> str | None:
    """The e-mail address of a signed-in identity, or None when the provider says it is not verified.

    Providers that send `email_verified` (Google, Okta, Auth0, Keycloak, the OIDC mock in the tests)
    must send true (or "true"); a provider that omits the claim (Microsoft Entra ID by default) is
    trusted for its own addresses, so list only your own domains for it in [access]."""
    email = str(claims.get("email") or "").strip()
    if not email:
        return None
    verified = claims.get("email_verified", True)
    if verified is True or (isinstance(verified, str) and verified.strip().lower() == "true"):
        return email
    return None


LOOPBACK_ADDRESSES = {"127.0.0.1", "localhost", "::1"}
_ALL_INTERFACES = {"", "0.0.0.0", "::"}


def local_operator_allowed(server_address: str | None) -> bool:
    """Without sign-in the console is a single local operator, but only on a loopback address."""
    return (server_address or "").strip() in LOOPBACK_ADDRESSES


def _host_header_name(value: str) -> str | None:
    """The host name of a Host header, lower-case, without port or trailing dot; None if malformed."""
    try:
        parts = urlsplit(f"//{value}")
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname.lower().rstrip(".")


def _url_host(url: str) -> str | None:
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def allowed_hosts(server_address: str | None, *, configured: Iterable[str] = (),
                  urls: Iterable[str | None] = ()) -> list[str]:
    """The names the console answers to: the address it listens on (with every loopback name when that
    is loopback or all interfaces), Streamlit's server.allowedHosts, and the hosts of its own URLs
    (the sign-in redirect_uri, browser.serverAddress)."""
    address = (server_address or "").strip().strip("[]").lower()
    names = []
    if address in LOOPBACK_ADDRESSES or address in _ALL_INTERFACES:
        names += sorted(LOOPBACK_ADDRESSES)
    if address not in _ALL_INTERFACES:
        names.append(address)
    names += [str(h).strip().lower().rstrip(".") for h in configured if str(h).strip()]
    names += [h for h in (_url_host(u) for u in urls if u) if h]
    return list(dict.fromkeys(names))


def host_allowed(host_header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host header names this console (not, e.g., a rebinding attacker's domain).

    No Host header at all is not a browser (browsers always send one), so it is not refused here."""
    if host_header is None:
        return True
    host = _host_header_name(host_header.strip())
    if host is None:
        return False
    for pattern in allowed:
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False
