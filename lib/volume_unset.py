"""The network volume of a console started against RunPod without an S3 API key.

Jobs, health, queues and costs do not need the volume's S3 API, so the console starts anyway; each
volume operation raises VolumeError naming the keys to set, and the pages show that message where
they would show files."""
from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path

from lib.volume import Volume, VolumeError, VolumeObject


class VolumeWithoutKey(Volume):
    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return "VolumeWithoutKey()"

    def _refuse(self) -> VolumeError:
        return VolumeError(self.reason)

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[VolumeObject]:
        raise self._refuse()

    def list_dir(self, prefix: str = "") -> tuple[builtins.list[str], builtins.list[VolumeObject]]:
        raise self._refuse()

    def head(self, key: str) -> VolumeObject:
        raise self._refuse()

    def read(self, key: str) -> bytes:
        raise self._refuse()

    def download(self, key: str, dest: Path, progress=None) -> Path:
        raise self._refuse()

    def write(self, key: str, data, *, progress=None) -> VolumeObject:
        raise self._refuse()

    def delete(self, key: str) -> None:
        raise self._refuse()

    def copy(self, src: str, dst: str) -> VolumeObject:
        raise self._refuse()
