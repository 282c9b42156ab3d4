"""The console's file uploader: a size limit per kind of content and a role check before it shows."""
from __future__ import annotations

import streamlit as st

from lib.ui import deps
from lib.ui.safe_text import escaped
from lib.upload_limits import UploadKind, UploadTooLarge, check_size


def file_uploader(kind: UploadKind, label: str, *, accept_multiple_files: bool = False, where=None, **kwargs):
    """st.file_uploader limited to `kind`: hidden from anyone whose role may not use the upload, and
    any file over the kind's limit is dropped with a message (the browser's own limit can be skipped).
    `where` is the column or container to draw in (default: the page)."""
    where = where or st
    if not deps.current_user().can(kind.action):
        where.info(f"{label}: uploading needs the staff role. Ask an operator to change your role.")
        return [] if accept_multiple_files else None
    uploaded = where.file_uploader(label, accept_multiple_files=accept_multiple_files,
                                max_upload_size=kind.limit_mb, **kwargs)
    files = uploaded if isinstance(uploaded, list) else [uploaded] if uploaded is not None else []
    kept = []
    for file in files:
        try:
            check_size(kind, file.name, file.size)
        except UploadTooLarge as exc:
            where.error(escaped(str(exc)), icon=":material/error:")
        else:
            kept.append(file)
    return kept if accept_multiple_files else (kept[0] if kept else None)
