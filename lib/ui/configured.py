"""Pages of an endpoint role the team left out of console.toml say so, and how to add it; pages
that work on the network volume say which keys to set when the console has no S3 access."""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from lib.config import endpoint_snippet
from lib.volume_unset import VolumeWithoutKey

if TYPE_CHECKING:
    from lib.services import Services


def require_endpoint(services: Services, role: str, what: str) -> None:
    """Stop the page with a note when console.toml declares no [endpoints.<role>]."""
    if services.config.has(role):
        return
    st.info(f"The {role} endpoint is not configured, so {what} is not available in this console.",
            icon=":material/construction:")
    st.markdown(f"To add it, put these lines in `{services.settings.config_path}` and restart the console "
                "(README → Configuration reference):")
    st.code(endpoint_snippet(role), language="toml")
    st.stop()


def require_volume(services: Services, what: str) -> None:
    """Stop the page with the reason when the console runs without S3 access to the network volume."""
    if isinstance(services.volume, VolumeWithoutKey):
        st.warning(f"{what} works on the network volume, which this console cannot reach yet: "
                   f"{services.volume.reason}.", icon=":material/key_off:")
        st.stop()
