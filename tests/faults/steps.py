"""Shared pieces of the fault tests."""
from __future__ import annotations

from lib.auth import LOCAL_OPERATOR

USER = LOCAL_OPERATOR.email
