"""How big each kind of browser upload may be, checked again on the server after the upload.

Streamlit keeps an upload whole in memory, and a per-uploader `max_upload_size` is enforced only by
the browser; the server enforces just `server.maxUploadSize` (.streamlit/config.toml), which is set to
the largest limit here. Model files never come through the browser: they stream from a file on the
console's machine (Models page, Provisioning page).
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.training.images import MAX_IMAGE_BYTES

MB = 1024 * 1024


@dataclass(frozen=True)
class UploadKind:
    what: str
    limit_mb: int
    action: str  # the role check (lib.auth.ACTION_ROLE) an upload of this kind needs


WORKFLOW = UploadKind("a ComfyUI workflow (JSON)", 5, "submit")
IMAGE = UploadKind("a photo", MAX_IMAGE_BYTES // MB, "submit")
TRAINING_SET = UploadKind("training photos, captions or a .zip of them", 512, "dataset")
KINDS = (WORKFLOW, IMAGE, TRAINING_SET)
SERVER_MAX_UPLOAD_MB = max(kind.limit_mb for kind in KINDS)  # = server.maxUploadSize


class UploadTooLarge(ValueError):
    pass


def check_size(kind: UploadKind, name: str, size: int) -> None:
    """Refuse a file over its kind's limit (a client can skip the browser's own check)."""
    if size > kind.limit_mb * MB:
        raise UploadTooLarge(f"{name} is {size / MB:.1f} MB; {kind.what} may be at most {kind.limit_mb} MB. "
                             "Nothing was kept — upload a smaller file.")
