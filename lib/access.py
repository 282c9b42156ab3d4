"""Sign-in roles from console.toml and the server-side check every action goes through.

[access]
operators = ["ops@example.com"]          # e-mail addresses, or "@example.com" for a whole domain
staff = ["@example.com"]
viewers = ["@partner.example"]

The most specific match wins (an address beats a domain); someone matching nothing is not let in.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lib.auth import LOCAL_OPERATOR, User, require
from lib.config import ConfigError

_LISTS = (("operators", "operator"), ("staff", "staff"), ("viewers", "viewer"))


@dataclass(frozen=True)
class AccessPolicy:
    addresses: Mapping[str, str] = field(default_factory=dict)  # e-mail -> role
    domains: Mapping[str, str] = field(default_factory=dict)    # "@domain" -> role

    @classmethod
    def from_config(cls, raw: Mapping) -> AccessPolicy:
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
        return cls(addresses, domains)

    def role_for(self, email: str | None) -> str | None:
        if not email:
            return None
        email = email.strip().lower()
        if email == LOCAL_OPERATOR.email:
            return LOCAL_OPERATOR.role
        if email in self.addresses:
            return self.addresses[email]
        domain = "@" + email.rsplit("@", 1)[-1]
        return self.domains.get(domain)

    def user(self, email: str, name: str = "") -> User | None:
        role = self.role_for(email)
        return None if role is None else User(email=email.strip().lower(), role=role, name=name)

    def authorize(self, email: str, action: str) -> User:
        """Raise Forbidden unless this person's role allows the action."""
        user = self.user(email) or User(email=email, role="none")
        require(user, action)
        return user


LOOPBACK_ADDRESSES = {"127.0.0.1", "localhost", "::1"}


def local_operator_allowed(server_address: str | None) -> bool:
    """Without sign-in the console is a single local operator, but only on a loopback address."""
    return (server_address or "").strip() in LOOPBACK_ADDRESSES
