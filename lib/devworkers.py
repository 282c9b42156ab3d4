"""Endpoints that go to a worker under development (`url = "http://…"` in console.toml, served by
`python handler.py --rp_serve_api`): where each role's jobs go, whether a dev worker answers, and
what its jobs' model files are checked against.

runpod's local test API has no queue, /health, scaling or settings (reference §2.5), so the console
offers no purge, warm-up or min-workers action for such an endpoint and says why.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lib.runpod import RunPodError
from lib.volume import VolumeObject
from lib.workflows.preflight import ModelsNotChecked

if TYPE_CHECKING:
    from lib.services import Services

NO_OPERATIONS = ("it is a worker under development (runpod's local test API, --rp_serve_api), which has no "
                 "queue, health, scaling or settings: purge, warm-up and min workers exist only on a RunPod "
                 "endpoint (or the simulator)")
DEV, SIMULATOR, RUNPOD = "worker under development", "local simulator", "RunPod"


@dataclass(frozen=True)
class Route:
    role: str
    target: str     # DEV | SIMULATOR | RUNPOD
    where: str      # the dev worker's URL or the endpoint id


def routes(services: Services) -> list[Route]:
    """Where each configured role's jobs go."""
    return [Route(role, DEV if spec.is_dev_worker else SIMULATOR if services.simulated else RUNPOD,
                  spec.id or spec.url or role)
            for role, spec in services.config.endpoints.items()]


@dataclass(frozen=True)
class Reach:
    reachable: bool
    detail: str


def reachability(services: Services, role: str) -> Reach:
    spec = services.config.endpoint(role)
    assert spec.url, f"{role} is not a worker under development"  # callers ask only for those
    try:
        services.client.dev_worker(spec.url).reachable()
    except RunPodError as exc:
        return Reach(False, f"not answering at {spec.url}: {exc}")
    return Reach(True, f"answers at {spec.url}")


class ModelsFolder:
    """A dev worker's ComfyUI models folder, listed as the volume keys the worker would load
    (`models/<folder>/<name>`), read-only."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[VolumeObject]:
        if not ("models/".startswith(prefix) or prefix.startswith("models/")):
            return
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            key = "models/" + path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                yield VolumeObject(key=key, size=stat.st_size,
                                   modified=datetime.fromtimestamp(stat.st_mtime, UTC), etag=None)


def model_source(services: Services, role: str):
    """What preflight checks this role's model files against: the network volume, a dev worker's
    models_dir, or nothing — with the reason, so the page can say it could not check."""
    spec = services.config.endpoints.get(role)
    if spec is None or not spec.is_dev_worker:
        return services.volume
    if spec.models_dir and Path(spec.models_dir).expanduser().is_dir():
        return ModelsFolder(spec.models_dir)
    if spec.models_dir:
        return ModelsNotChecked(f"models_dir {spec.models_dir} of the {role} dev worker is not a folder")
    return ModelsNotChecked(f"the {role} endpoint is a worker under development; name its ComfyUI models folder "
                            f'with models_dir = "/path/to/ComfyUI/models" under [endpoints.{role}] to check them')
