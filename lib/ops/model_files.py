"""What the Models page does with the network volume: browse the cached index, flag, upload, move, delete.

Changes are for operators only, are written to the audit log through the `audit` callable
(JobStore.audit) and patch the cached index, so the next render shows them without a new listing.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from lib.auth import require
from lib.ops.flags import SCANNED_FOLDERS, Flag, all_flags, placement_flag
from lib.ops.usage import UsageIndex
from lib.ops.volume_index import ResultPage, VolumeIndex, VolumeIndexCache
from lib.volume import VolumeError, VolumeNotFound, safe_key

BROWSE_ROOTS = ("models/", "datasets/", "loras/")
Audit = Callable[..., None]  # JobStore.audit(user, action, target=None, detail=None)


def _check_model_destination(key: str) -> str:
    key = safe_key(key)
    parts = key.split("/")
    if parts[0] != "models" or len(parts) < 3:
        raise VolumeError(f"{key}: model files go in a folder under models/, e.g. models/loras/{parts[-1]}")
    if parts[1] not in SCANNED_FOLDERS:
        flag = placement_flag(key)
        hint = flag.message if flag else ""
        raise VolumeError(f"{key}: the worker does not read models/{parts[1]}/. {hint}".strip())
    return key


class ModelFiles:
    def __init__(self, volume, *, ttl_s: float = 300.0, audit: Audit | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.volume = volume
        self.cache = VolumeIndexCache(volume, ttl_s=ttl_s)
        self._audit = audit
        self._clock = clock
        self.seen_version = self._volume_version()   # the volume as this index knows it (see catch_up)

    # ---- reading ------------------------------------------------------------------------
    def index(self) -> VolumeIndex:
        return self.cache.get()

    def refresh(self) -> None:
        self.cache.invalidate()

    def _volume_version(self) -> int:
        return getattr(self.volume, "version", 0)   # a volume that does not count its changes never re-lists

    def catch_up(self, wait_s: float) -> None:
        """Re-list when another part of the console changed the volume (a promote, staged candidates),
        so counts and flags agree without a manual re-list."""
        if self._volume_version() != self.seen_version and self.cache.peek() is not None:
            self.seen_version = self._volume_version()
            self.cache.start_listing()
            self.cache.wait_listing(wait_s)

    def browse(self, query: str = "", *, folder: str | None = None, prefix: str = "", sort: str = "name",
               descending: bool = False, page: int = 0, page_size: int = 50) -> ResultPage:
        return self.index().search(query, folder=folder, prefix=prefix, sort=sort, descending=descending,
                                   page=page, page_size=page_size)

    def flags(self, usage: UsageIndex) -> list[Flag]:
        """All flags for the files as they are now; computed once per index and change (duplicates may read
        files)."""
        index = self.index()
        referenced = frozenset(usage.referenced_names())
        return index.derived("flags", referenced,
                             lambda: all_flags(index, referenced=referenced, now=self._clock(), volume=self.volume))

    # ---- changing (operators) -------------------------------------------------------------
    def upload(self, key: str, data, *, user, progress=None, overwrite: bool = False):
        """Write a model file under models/<scanned folder>/; refuses to replace a file unless overwrite."""
        require(user, "upload_model")
        key = _check_model_destination(key)
        if not overwrite and self.volume.exists(key):
            raise VolumeError(f"{key} already exists on the volume; delete it first or choose another name")
        try:
            obj = self.volume.write(key, data, progress=progress)
        except BaseException:
            self.refresh()  # even a failed multipart upload may have changed what is listed
            raise
        self.cache.apply(upserts=[obj])
        self.seen_version = self._volume_version()
        self._record(user, "volume.upload", key, {"size": obj.size})
        return obj

    def move(self, src: str, dst: str, *, user):
        """Move or rename a file into a folder the worker reads; never over an existing file."""
        require(user, "move")
        src, dst = safe_key(src), _check_model_destination(dst)
        if src == dst:
            raise VolumeError(f"{src} is already there")
        if self.volume.exists(dst):
            raise VolumeError(f"{dst} already exists; choose another name or delete that file first")
        size = self.volume.head(src).size  # VolumeNotFound with a clear message if it is gone
        try:
            obj = self.volume.move(src, dst)
        except BaseException:
            self.refresh()  # a copy may have happened without the delete
            raise
        self.cache.apply(removes=[src], upserts=[obj])
        self.seen_version = self._volume_version()
        self._record(user, "volume.move", src, {"to": dst, "size": size})
        return obj

    def delete(self, key: str, *, user) -> None:
        require(user, "delete")
        key = safe_key(key)
        try:
            size = self.volume.head(key).size
        except VolumeNotFound:
            self.refresh()
            raise
        try:
            self.volume.delete(key)
        except BaseException:
            self.refresh()
            raise
        self.cache.apply(removes=[key])
        self.seen_version = self._volume_version()
        self._record(user, "volume.delete", key, {"size": size})

    def _record(self, user, action: str, target: str, detail: dict) -> None:
        if self._audit is not None:
            self._audit(user.email, action, target, detail)
