"""Upload a model file from the console machine's disk, streamed to the volume (never held in memory).

Model files are gigabytes; Streamlit's browser uploader keeps a whole upload in memory, so the Models
page names a file on the console machine instead (as the Provisioning page names a folder)."""
from __future__ import annotations

from pathlib import Path

from lib.ops import actions
from lib.volume import VolumeError


def upload_model_from_path(services, email: str, folder: str, path: str, name: str = "", *, progress=None):
    """Stream the file at `path` to models/<folder>/<name or the file's name> (operators only)."""
    services.authorize(email, "upload_model")
    source = Path(path.strip()).expanduser()
    if not path.strip() or not source.is_file():
        raise VolumeError(f"{source} is not a file on the console machine — give the full path of the model file")
    with source.open("rb") as data:
        return actions.upload_model(services, email, f"models/{folder}/{name.strip() or source.name}", data,
                                    progress=progress)
