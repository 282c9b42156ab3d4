"""Everything a console process shares, built once: settings, config, the RunPod client, the
volume, the job store and the tracker — on real RunPod, or on an in-process local simulator."""
from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lib.access import AccessPolicy
from lib.auth import User
from lib.config import ConsoleConfig, Settings
from lib.costs.model import estimate_job_cost
from lib.ops.model_files import ModelFiles
from lib.ops.monitor import OpsMonitor, check_alert_config
from lib.outputs import allow_output_hosts
from lib.runpod import DevWorkerJobs, EndpointJobs, RunPod
from lib.store import JobStore
from lib.tracker import JobsFor, PollSchedule, Tracker
from lib.volume import Volume, VolumeError, volume_from_settings
from lib.volume_unset import VolumeWithoutKey

if TYPE_CHECKING:
    from lib.localpod.server import LocalPod

log = logging.getLogger(__name__)

REAL_COLD_START_THRESHOLD_MS = 10_000.0
MONITOR_INTERVAL_S = 15.0
DEMO_PHOTOS = "demo/photos/ava/"
DEMO_USER = "demo-seed@localhost"


class DataDirInUse(RuntimeError):
    """Another console process works on the same CONSOLE_DATA."""


class DataDirLock:
    """An exclusive lock on CONSOLE_DATA for the life of a console process.

    Two consoles on one folder would both start a simulator on the same state, both follow every
    job and mark each other's submissions UNKNOWN. The lock is flock(2) on `console.lock`: the
    kernel drops it when the process ends, even by kill -9, so a crash never leaves it stale.
    """

    FILE = "console.lock"

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / self.FILE
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataDirInUse(f"CONSOLE_DATA {Path(data_dir).resolve()} is in use by another console ({holder}). "
                               f"Stop that console first, or start this one with CONSOLE_DATA set to another "
                               f"folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}, started "
                     f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def jobs_at(client: RunPod) -> JobsFor:
    """The job API where a job was sent: its endpoint id, or the url of a dev worker."""
    def at(target: str) -> EndpointJobs | DevWorkerJobs:
        if target.startswith(("http://", "https://")):
            return client.dev_worker(target)
        return client.endpoint(target)
    return at


@dataclass
class Services:
    settings: Settings
    config: ConsoleConfig
    client: RunPod
    volume: Volume
    store: JobStore
    tracker: Tracker
    monitor: OpsMonitor  # alert rules, health log, warm-up restores
    access: AccessPolicy = field(default_factory=AccessPolicy)
    localpod: LocalPod | None = None  # when simulated
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    data_lock: DataDirLock | None = None
    _model_files: ModelFiles | None = field(default=None, init=False, repr=False)
    _model_files_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def simulated(self) -> bool:
        return self.localpod is not None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def backend_label(self) -> str:
        return "local RunPod simulator" if self.simulated else "RunPod"

    def authorize(self, email: str, action: str) -> User:
        """The server-side role check every action goes through (raises lib.auth.Forbidden)."""
        return self.access.authorize(email, action)

    def jobs(self, role: str) -> EndpointJobs | DevWorkerJobs:
        return self.client.for_spec(self.config.endpoint(role))

    @property
    def model_files(self) -> ModelFiles:
        """The volume index and file actions every session shares. Made on first use, so it starts
        from the volume as the first Models page finds it (after the simulator's demo set is adopted)."""
        with self._model_files_lock:
            if self._model_files is None:
                self._model_files = ModelFiles(self.volume, audit=self.store.audit)
            return self._model_files

    def close(self) -> None:
        self.tracker.stop()
        self.monitor.close()
        self.client.close()
        self.store.close()
        if self.localpod is not None:
            self.localpod.stop()
        if self.data_lock is not None:
            self.data_lock.release()


def build_services(settings: Settings, *, start_tracker: bool = True,
                   config: ConsoleConfig | None = None) -> Services:
    config = config or ConsoleConfig.load(settings.config_path)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_lock = DataDirLock(data_dir)
    try:
        return _build(settings, config, data_dir, data_lock, start_tracker)
    except BaseException:
        data_lock.release()
        raise


def _build(settings: Settings, config: ConsoleConfig, data_dir: Path, data_lock: DataDirLock,
           start_tracker: bool) -> Services:
    # Every table of console.toml is read before anything starts: nothing runs half-configured.
    access = AccessPolicy.from_config(config.raw, path=config.path)
    check_alert_config(config)
    store = JobStore(data_dir)
    localpod = None
    if settings.uses_simulator:
        from lib.localpod.server import LocalPod  # only needed without a RunPod key

        # A fresh random key per process: the simulator is reachable on loopback only, and
        # nothing else on the machine should drive it with a guessable key.
        key = secrets.token_urlsafe(24)
        # LOCALPOD_EMPTY=1 starts a simulated account with nothing created yet (provisioning demos).
        localpod = LocalPod(data_dir / "localpod", config, api_key=key,
                            empty=os.environ.get("LOCALPOD_EMPTY") == "1").start()
        settings = replace(settings, api_url=localpod.api_url, rest_url=localpod.rest_url)
        client = RunPod(key, api_url=localpod.api_url, rest_url=localpod.rest_url)
        volume = volume_from_settings(settings, config, local_root=localpod.volume_dir)
        _import_demo_history(store, config, localpod.seed_info)
        _adopt_demo_photos(store, volume)
        scale = config.simulator.time_scale

        def threshold(role: str) -> float:
            return 0.5 * config.simulator.cold_start_s.get(role, 60.0) * scale * 1000

        # Simulated jobs are compressed in time, so the tracker looks more often.
        schedule = PollSchedule(first_s=0.1, factor=1.5, cap_s=1.0, training_cap_s=1.0)
    else:
        client = RunPod.from_settings(settings)
        try:
            volume = volume_from_settings(settings, config, local_root=None)
        except VolumeError as exc:  # no S3 key yet: start anyway, volume pages say which keys to set
            volume = VolumeWithoutKey(str(exc))

        def threshold(role: str) -> float:
            return REAL_COLD_START_THRESHOLD_MS

        schedule = PollSchedule()

    allow_output_hosts(s3_endpoint=settings.s3_endpoint_for(config.volume.datacenter), bucket=config.volume.id,
                       simulator_urls=(localpod.api_url, localpod.rest_url) if localpod else ())
    def jobs_for(role: str) -> EndpointJobs | DevWorkerJobs:
        return client.for_spec(config.endpoint(role))

    tracker = Tracker(store, config, jobs_for,
                      jobs_at=jobs_at(client), schedule=schedule, cold_start_threshold_ms=threshold,
                      authorize=access.authorize, local_volume_root=localpod.volume_dir if localpod else None)
    monitor = OpsMonitor(config, data_dir, jobs=jobs_for, store=store, rest=client.rest)
    if start_tracker:
        # The tracker thread evaluates the alert rules and restores warm-up holds on schedule.
        tracker.add_periodic(monitor.tick_live, MONITOR_INTERVAL_S)
        tracker.start()
    return Services(settings=settings, config=config, client=client, volume=volume, store=store,
                    tracker=tracker, monitor=monitor, access=access, localpod=localpod, data_lock=data_lock)


def _import_demo_history(store: JobStore, config: ConsoleConfig, seed_info: dict | None) -> None:
    """Copy the simulator's seeded 30 days of traffic into the job history, once, marked simulated.

    The same deterministic demo_traffic(…) the simulator billed, at the simulator's own seed time,
    so job history and billing agree."""
    if store.flag("demo_history_imported") or not seed_info:
        return
    from lib.localpod.seed import demo_traffic

    now = datetime.fromisoformat(seed_info["now"])
    rows = []
    for job in demo_traffic(config, now=now, days=int(seed_info.get("days", 30)),
                            seed=int(seed_info.get("seed", 7))):
        start = job.submitted_at.timestamp()
        rows.append({
            "local_id": f"seed-{job.id}", "runpod_id": job.id, "role": job.role,
            "endpoint_id": job.endpoint_id, "status": job.status, "kind": job.kind, "user": job.user,
            "character": job.character, "created_at": start,
            "finished_at": start + (job.delay_ms + job.execution_ms) / 1000,
            "delay_ms": job.delay_ms, "execution_ms": job.execution_ms, "worker_id": job.worker_id,
            "images": job.images, "cold_start": job.cold_start,
            "cost_usd": estimate_job_cost(config, job.role, job.execution_ms, cold_start=job.cold_start),
            "meta": {"character": job.character, "simulated": True},
        })
    store.import_history(rows)
    store.set_flag("demo_history_imported", now.isoformat())
    log.info("imported %d simulated past jobs", len(rows))


def _adopt_demo_photos(store: JobStore, volume: Volume) -> None:
    """Turn the simulator's demo photos into the training set "ava" (v1), once, as staff would."""
    if store.flag("demo_training_set") or not volume.exists(f"{DEMO_PHOTOS}ava_01.png"):
        return
    from lib.localpod.seed import TRIGGER
    from lib.training.datasets import DatasetError, TrainingSets
    from lib.training.uploads import read_files

    sets = TrainingSets(volume)
    try:
        sets.create("ava", TRIGGER, DEMO_USER)
        draft = sets.draft("ava")
        draft.add(read_files((obj.name, volume.read(obj.key)) for obj in volume.list(DEMO_PHOTOS)))
        sets.save(draft, DEMO_USER, note="simulated demo set")
    except DatasetError as exc:  # someone made an "ava" set already: leave theirs alone
        log.info("demo training set not created: %s", exc)
    store.set_flag("demo_training_set", "done")
