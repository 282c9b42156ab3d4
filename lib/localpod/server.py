"""LocalPod: the simulator as an object — started in-process (console, tests) or by __main__."""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from lib.localpod import seed
from lib.localpod.config import PodConfig
from lib.localpod.routes import build_app
from lib.localpod.simulator import Simulator
from lib.localpod.state import Store

log = logging.getLogger("localpod")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class LocalPod:
    """A running (or startable) local RunPod Serverless simulator.

    `LocalPod(data_dir, config).start()` serves on a free loopback port from a daemon thread and
    returns once it accepts requests; `stop()` shuts it down and keeps its state in
    data_dir/localpod.sqlite for the next start.

    `empty=True` is a fresh RunPod account: no endpoint, no network volume and no demo seed until
    they are created through REST v2 (what the Provisioning page does); what was created before on
    the same data_dir is still there.

    `config` is a PodConfig, a path to console.toml, or that file's parsed table (see PodConfig.of).
    """

    def __init__(self, data_dir: Path, config: PodConfig | object, *, api_key: str | None = None,
                 time_scale: float | None = None, seed_demo: bool = True, empty: bool = False):
        self.data_dir = Path(data_dir)
        self.config = config = PodConfig.of(config)
        self._api_key = api_key
        self.time_scale = config.time_scale if time_scale is None else time_scale
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, not {self.time_scale}")
        self.empty = empty
        self.seed_demo = seed_demo and not empty
        self.volume_dir = self.data_dir / "volume"
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._sim: Simulator | None = None

    def __repr__(self) -> str:
        return f"LocalPod(url={self.url!r}, data_dir={str(self.data_dir)!r})"

    @property
    def api_url(self) -> str:
        return f"{self._require_url()}/v2"

    @property
    def rest_url(self) -> str:
        return f"{self._require_url()}/rest/v2"

    @property
    def seed_info(self) -> dict | None:
        """{now, days, seed, jobs} of the seeded demo history (for demo_traffic), or None."""
        return seed.seed_info(self.data_dir)

    def _require_url(self) -> str:
        if self.url is None:
            raise RuntimeError("LocalPod is not running: call start() first")
        return self.url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> LocalPod:
        if self._thread is not None:
            raise RuntimeError(f"LocalPod already running on {self.url}")
        self.volume_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.data_dir / "localpod.sqlite")
        try:
            if self.seed_demo and seed.seed_info(self.data_dir) is None:
                seed.seed_data_dir(self.data_dir, self.volume_dir, store, self.config,
                                   datetime.now(UTC))
            sim = Simulator(self.config, store, self.volume_dir, time_scale=self.time_scale,
                            empty=self.empty)
            sim.load()
            sock = _bind(host, port)
        except BaseException:
            store.close()
            raise
        app = build_app(sim, self._api_key, lambda: seed.seed_info(self.data_dir))
        # log_config=None: leave the host process's logging (e.g. Streamlit's) alone.
        server = uvicorn.Server(uvicorn.Config(
            app, loop="uvloop", http="httptools", lifespan="on", access_log=False,
            log_config=None, log_level="warning", timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                  name="localpod-server")
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(STOP_TIMEOUT_S)
                store.close()
                raise RuntimeError(f"localpod could not start on {host}:{port} "
                                   "(see the log above for the cause)")
            time.sleep(0.005)
        bound_port = sock.getsockname()[1]
        self.url = f"http://{_url_host(host)}:{bound_port}"
        self._server, self._thread, self._store, self._sim = server, thread, store, sim
        return self

    def stop(self) -> None:
        """Shut down: waiting /runsync calls get their current state, workers are billed."""
        if self._thread is None:
            return
        loop = self._sim.loop
        if loop is not None and not loop.is_closed():
            async def begin() -> None:
                self._sim.begin_shutdown()
            try:
                asyncio.run_coroutine_threadsafe(begin(), loop).result(STOP_TIMEOUT_S)
            except RuntimeError:
                pass      # the loop ended on its own meanwhile
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("localpod server thread did not stop within %.0f s", STOP_TIMEOUT_S)
        self._store.close()
        self._server = self._thread = self._store = self._sim = None
        self.url = None

    def __enter__(self) -> LocalPod:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
