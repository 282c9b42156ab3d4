"""What the stand-in's RunPod account holds: endpoints, network volumes, queued jobs, keys.

Shapes are those of ../shared/reference/runpod-api.md (REST v2 §3.2, job API §1), written from the
reference, not from the console's client. Faults are made by building an account that differs from
console.toml: another API key, an endpoint id it does not have, a volume in another datacenter, an S3
key it refuses.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

DATACENTER = "EU-RO-1"
S3_ACCESS_KEY = "user_standin"          # reference §4: the access key id is the user id "user_..."
S3_SECRET_KEY = "rps_standinsecret0000"


def endpoint_json(endpoint_id: str, name: str, *, image: str, pools: list[str], volume_id: str | None,
                  datacenters: list[str], min_cuda: str | None = None, workers_min: int = 0,
                  workers_max: int = 3) -> dict:
    """One endpoint as REST v2 returns it (reference §3.2)."""
    gpu: dict = {"pools": pools, "excludedTypes": [], "count": 1, "allowedCudaVersions": []}
    if min_cuda:
        gpu["minCudaVersion"] = min_cuda
    base = f"https://api.runpod.ai/v2/{endpoint_id}"
    return {
        "id": endpoint_id, "name": name, "type": "QUEUE", "image": image, "gpu": gpu,
        "workers": {"min": workers_min, "max": workers_max, "idleTimeout": 5},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4}, "timeout": 600000, "flashboot": "FLASHBOOT",
        "dataCenterIds": datacenters, "networkVolumes": [volume_id] if volume_id else [], "env": {},
        "requestUrls": {op: f"{base}/{path}" for op, path in (
            ("run", "run"), ("runSync", "runsync"), ("status", "status"), ("stream", "stream"),
            ("cancel", "cancel"), ("retry", "retry"), ("purgeQueue", "purge-queue"), ("health", "health"))},
    }


@dataclass
class Account:
    api_key: str = "rpa_STANDINKEY0000000000000000"
    endpoints: dict[str, dict] = field(default_factory=dict)
    volumes: dict[str, dict] = field(default_factory=dict)
    s3_access_key: str = S3_ACCESS_KEY
    s3_secret_key: str = S3_SECRET_KEY
    jobs: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_volume(self, volume_id: str, *, datacenter: str = DATACENTER, name: str = "characters",
                   size: int = 100) -> None:
        self.volumes[volume_id] = {"id": volume_id, "name": name, "size": size, "dataCenter": datacenter,
                                   "type": "STANDARD"}

    def add_endpoint(self, endpoint_id: str, name: str, **kwargs) -> None:
        self.endpoints[endpoint_id] = endpoint_json(endpoint_id, name, **kwargs)

    def enqueue(self, endpoint_id: str, count: int = 1, payload: dict | None = None) -> list[str]:
        """Jobs that wait in the endpoint's queue (the stand-in has no workers)."""
        ids = []
        with self.lock:
            for _ in range(count):
                job_id = f"{uuid.uuid4()}-e1"
                self.jobs[job_id] = {"id": job_id, "endpoint": endpoint_id, "status": "IN_QUEUE",
                                     "input": (payload or {}).get("input", {})}
                ids.append(job_id)
        return ids

    def counts(self, endpoint_id: str) -> dict[str, int]:
        with self.lock:
            statuses = [j["status"] for j in self.jobs.values() if j["endpoint"] == endpoint_id]
        return {"completed": statuses.count("COMPLETED"), "failed": statuses.count("FAILED"),
                "inProgress": statuses.count("IN_PROGRESS"), "inQueue": statuses.count("IN_QUEUE"),
                "retried": 0}


def standard_account(config_ids: dict[str, str], volume_id: str, *, datacenter: str = DATACENTER) -> Account:
    """An account that holds exactly what a console.toml names: each role's endpoint on the stock
    worker image, mounting the volume, in the volume's datacenter."""
    account = Account()
    account.add_volume(volume_id, datacenter=datacenter)
    for role, endpoint_id in config_ids.items():
        image = ("serverless-console/lora-trainer:latest" if role == "training"
                 else "runpod/worker-comfyui:5.8.5-base")
        account.add_endpoint(endpoint_id, f"console-{role}", image=image,
                             pools=["AMPERE_80"] if role == "training" else ["ADA_24"], volume_id=volume_id,
                             datacenters=[datacenter], min_cuda="13.0" if role == "training" else None)
    return account
