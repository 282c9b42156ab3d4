"""A doc-exact RunPod stand-in for tests: job API + REST v2 + billing (FastAPI) and the S3 API of the
network volume (moto), on loopback ports, written from ../shared/reference/runpod-api.md.

    with StandIn(standard_account({"image": "ep-img"}, "vol-1")) as pod:
        env = pod.console_env()   # RUNPOD_API_KEY, RUNPOD_API_URL, RUNPOD_REST_URL, RUNPOD_S3_*
"""
from __future__ import annotations

import socket
import threading
import time

import boto3
import uvicorn
from moto.server import ThreadedMotoServer

from tests.standin.account import DATACENTER, Account, standard_account
from tests.standin.api import make_app
from tests.standin.s3 import make_s3_gate

__all__ = ["Account", "DATACENTER", "StandIn", "standard_account"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Served:
    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the RunPod stand-in did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class StandIn:
    def __init__(self, account: Account):
        # moto keeps one in-memory S3 per process, shared by every StandIn: give each stand-in its own
        # volume ids when their contents must differ.
        self.account = account
        self._moto_port = _free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self._moto_port, verbose=False)
        self._api = _Served(make_app(account))
        self._s3 = _Served(make_s3_gate(account, f"http://127.0.0.1:{self._moto_port}"))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._api.port}/v2"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._api.port}/rest/v2"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self._s3.port}"

    def console_env(self, *, api_key: str | None = None, s3_access_key: str | None = None) -> dict[str, str]:
        """The settings a console uses to reach this account (DESIGN.md names)."""
        return {"RUNPOD_API_KEY": api_key or self.account.api_key, "RUNPOD_API_URL": self.api_url,
                "RUNPOD_REST_URL": self.rest_url, "RUNPOD_S3_URL": self.s3_url,
                "RUNPOD_S3_ACCESS_KEY": s3_access_key or self.account.s3_access_key,
                "RUNPOD_S3_SECRET_KEY": self.account.s3_secret_key}

    def put(self, volume_id: str, key: str, data: bytes = b"x") -> None:
        """A file on the network volume, e.g. a model the workflows need."""
        self._moto_s3().put_object(Bucket=volume_id, Key=key, Body=data)

    def _moto_s3(self):
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self._moto_port}", region_name="us-east-1",
                            aws_access_key_id="moto", aws_secret_access_key="moto")

    def __enter__(self) -> "StandIn":
        self._moto.start()
        for volume_id in self.account.volumes:
            self._moto_s3().create_bucket(Bucket=volume_id)
        self._api.start()
        self._s3.start()
        return self

    def __exit__(self, *exc) -> None:
        self._s3.stop()
        self._api.stop()
        self._moto.stop()
