"""Who is using the console and what they may do (viewer < staff < operator)."""
from __future__ import annotations

from dataclasses import dataclass

from lib.errors import ConsoleError

ROLES = ("viewer", "staff", "operator")
_RANK = {role: rank for rank, role in enumerate(ROLES)}

# What each action needs; checked on the server side before anything is sent.
ACTION_ROLE = {
    "view": "viewer",
    "submit": "staff",
    "cancel": "staff",
    "retry": "staff",
    "dataset": "staff",
    "train": "staff",
    "scale": "operator",
    "purge": "operator",
    "delete": "operator",
    "move": "operator",
    "upload_model": "operator",
    "promote": "operator",
    "apply": "operator",
    "audit": "operator",
}


@dataclass(frozen=True)
class User:
    email: str
    role: str
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.email

    def can(self, action: str) -> bool:
        needed = ACTION_ROLE.get(action, "operator")
        return _RANK.get(self.role, -1) >= _RANK[needed]


class Forbidden(ConsoleError, PermissionError):
    def __init__(self, user: User, action: str):
        needed = ACTION_ROLE.get(action, "operator")
        who = (f"{user.label} is a {user.role}" if user.role in ROLES
               else f"{user.label} is not listed in [access] of console.toml")
        super().__init__(f"{who}; '{action}' needs the {needed} role. "
                         f"Ask an operator to change your role in console.toml.")
        self.user, self.action = user, action


def require(user: User, action: str) -> None:
    if not user.can(action):
        raise Forbidden(user, action)


LOCAL_OPERATOR = User(email="local-operator@localhost", role="operator", name="Local operator")
