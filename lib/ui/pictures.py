"""Kept images drawn on a page through their previews (lib/previews.py), with unreadable files named."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import streamlit as st

from lib import previews
from lib.ui.safe_text import escaped

if TYPE_CHECKING:
    from lib.services import Services


def show(svc: Services, paths: Sequence[Path], captions: Sequence[str], *, width: int | Literal["stretch"],
         stretched_to: int = previews.GRID_WIDTH) -> None:
    """Draw the images at `paths` (one st.image for all), `width` pixels wide or as wide as their column,
    each from a copy sharp on a 2× screen: twice `width`, or `stretched_to` for a stretched image.
    `captions` are shown as text."""
    cache = previews.folder(svc.data_dir)
    preview_width = 2 * width if isinstance(width, int) else stretched_to
    shown = [(p, previews.preview(p, cache, preview_width), c) for p, c in zip(paths, captions, strict=True)]
    readable = [(str(small), escaped(caption)) for _, small, caption in shown if small is not None]
    if readable:
        st.image([s for s, _ in readable], caption=[c for _, c in readable], width=width)
    for path, small, _ in shown:
        if small is None:
            st.warning(f"{escaped(path.name)} is not a readable image (the file may be damaged or missing); "
                       "its job is kept on the Jobs page.", icon=":material/broken_image:")
