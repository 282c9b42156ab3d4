"""Previews of uploaded photos with the faces boxed and numbered (face swap)."""
from __future__ import annotations

import streamlit as st

from lib.face_preview import boxed_preview


@st.cache_data(max_entries=32, show_spinner=False)
def _preview(data: bytes) -> tuple[bytes, int]:
    return boxed_preview(data)


def face_previews(uploads, container) -> None:
    for upload in uploads:
        try:
            png, count = _preview(upload.getvalue())
        except (OSError, ValueError):
            continue   # not an image: the swap's own checks say so when it is started
        faces = "no face found" if not count else f"{count} face(s), numbered left to right from 0"
        container.image(png, caption=f"{upload.name}: {faces}", width=240)
