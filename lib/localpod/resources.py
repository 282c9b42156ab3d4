"""REST v2 resources of the simulated account: endpoints, network volumes, faults, views."""
from __future__ import annotations

import math
import secrets
import string
import time

from lib.localpod import hosts
from lib.localpod.models import (
    IDLE,
    INITIALIZING,
    RUNNING,
    THROTTLED,
    UNHEALTHY,
    Endpoint,
    Faults,
    iso_z,
)
from lib.localpod.resource_validation import (
    creation,
    role_of,
    validated_extras,
    validated_settings,
)
from lib.localpod.state import BillingHour


class Resources:
    """Create, change and delete endpoints and volumes; read views (mixin of Simulator)."""

    def update_endpoint(self, ep: Endpoint, changes: dict) -> None:
        """Apply a REST PATCH (already shape-checked); raises ValueError with the reason."""
        new = validated_settings(ep, changes, self.config)
        extras = validated_extras(changes, self)
        if self.worker_quota is not None and new.get("workers_max", ep.workers_max) > ep.workers_max:
            used = sum(e.workers_max for e in self.endpoints.values() if e is not ep)
            if used + new["workers_max"] > self.worker_quota:
                raise ValueError(f"workers.max: the account's serverless worker quota is {self.worker_quota} "
                                 f"and its other endpoints already use {used}")
        if extras:
            self.extras[ep.id] = {**self.endpoint_extras(ep), **extras}
            self.store.save_extras(ep.id, self.extras[ep.id])
        now = time.time()
        for w in ep.workers.values():     # bill at the old price up to the change
            self._accrue(ep, w, now)
        self._flush_billing()
        for key, value in new.items():
            setattr(ep, key, value)
        self.store.save_endpoint(ep)
        for w in hosts.stranded(ep.workers.values()):
            self._stop_worker(ep, w, now)     # the scaler starts them again under the new constraint
        self._enforce_max(ep, now)
        self._assign_active(ep)
        for w in ep.workers.values():
            if w.status == IDLE:
                self._arm_idle(ep, w)
        self._pump(ep)

    def create_endpoint(self, body: dict) -> Endpoint:
        """POST /rest/v2/serverless (body already a JSON object); ValueError says what is wrong."""
        settings, extras = creation(body, self)
        quota = self.worker_quota
        if quota is not None:
            used = sum(ep.workers_max for ep in self.endpoints.values())
            if used + settings["workers_max"] > quota:
                raise ValueError(f"workers.max: the account's serverless worker quota is {quota} and its "
                                 f"endpoints already use {used}; lower max workers or raise the quota "
                                 "(RunPod raises it with the account balance)")
        ep = Endpoint(id=self._new_endpoint_id(), role=role_of(settings["name"]),
                      created_at=time.time(), **settings)
        self.endpoints[ep.id] = ep
        self.extras[ep.id] = {**extras, "created": True}
        self.store.save_endpoint(ep)
        self.store.save_extras(ep.id, self.extras[ep.id])
        self._pump(ep)      # min workers start at once
        return ep

    def _new_endpoint_id(self) -> str:
        """A new endpoint id in RunPod's shape (14 lower-case alphanumerics)."""
        alphabet = string.ascii_lowercase + string.digits
        while True:
            ident = "".join(secrets.choice(alphabet) for _ in range(14))
            if ident not in self.endpoints:
                return ident

    def delete_endpoint(self, ep: Endpoint) -> None:
        """DELETE /rest/v2/serverless/{id}.

        RunPod's GraphQL deleteEndpoint needs min and max workers at 0 first (reference §3.3); whether
        REST v2 relaxes that is not documented, so the simulator keeps the stricter rule.
        """
        if ep.workers_min or ep.workers_max:
            raise ValueError(f"endpoint {ep.id} still has workers (min {ep.workers_min}, max "
                             f"{ep.workers_max}); set workers.min and workers.max to 0 first")
        now = time.time()
        for w in list(ep.workers.values()):
            self._stop_worker(ep, w, now)
        if ep.scale_timer:
            ep.scale_timer.cancel()
        for job in [j for j in self.jobs.values() if j.endpoint_id == ep.id]:
            if job.run is not None:
                job.run.cancel.set()
            self._delete(job)
        del self.endpoints[ep.id]
        self.extras.pop(ep.id, None)
        self.store.delete_endpoint(ep.id)

    def endpoint_extras(self, ep: Endpoint) -> dict:
        """Placement and container extras; config endpoints never changed through REST get the volume's."""
        extras = self.extras.get(ep.id)
        if extras is not None:
            return extras
        v = self.config.volume
        spec = self.config.endpoints.get(ep.role)
        cuda = hosts.declared(spec) if spec is not None and spec.id == ep.id else {}
        return {"dataCenterIds": [v.datacenter], "networkVolumes": [v.id], "gpuCount": 1, **cuda}

    def create_volume(self, body: dict) -> dict:
        """POST /rest/v2/network-volumes; ValueError says what is wrong."""
        unknown = sorted(set(body) - {"name", "size", "dataCenter", "type"})
        if unknown:
            raise ValueError(f"{unknown[0]} is not a field of a network volume (fields: dataCenter, name, "
                             "size, type)")
        name, dc = body.get("name"), body.get("dataCenter")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name is required: a non-empty string")
        if not isinstance(dc, str) or not dc.strip():
            raise ValueError("dataCenter is required, e.g. \"EU-RO-1\"")
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 10 <= size <= 4096:
            raise ValueError(f"size must be a whole number of GB from 10 to 4096, not {size!r}")
        kind = body.get("type", "STANDARD")
        if kind not in ("STANDARD", "HIGH_PERFORMANCE"):
            raise ValueError("type must be STANDARD or HIGH_PERFORMANCE")
        alphabet = string.ascii_lowercase + string.digits
        ident = "".join(secrets.choice(alphabet) for _ in range(10))
        volume = {"id": ident, "name": name.strip(), "size": size, "dataCenter": dc.strip(), "type": kind,
                  "createdAt": time.time()}
        self.volumes[ident] = volume
        self.store.save_volume(volume)
        return volume

    def update_volume(self, volume: dict, changes: dict) -> dict:
        """PATCH /rest/v2/network-volumes/{id}: rename or grow (a volume never shrinks)."""
        unknown = sorted(set(changes) - {"name", "size"})
        if unknown:
            raise ValueError(f"{unknown[0]} is not a writable field (writable: name, size)")
        if not changes:
            raise ValueError("nothing to change: send name and/or size")
        new = dict(volume)
        if "name" in changes:
            if not isinstance(changes["name"], str) or not changes["name"].strip():
                raise ValueError("name must be a non-empty string")
            new["name"] = changes["name"].strip()
        if "size" in changes:
            size = changes["size"]
            if isinstance(size, bool) or not isinstance(size, int) or not 10 <= size <= 4096:
                raise ValueError(f"size must be a whole number of GB from 10 to 4096, not {size!r}")
            if size < volume["size"]:
                raise ValueError(f"size: a network volume cannot shrink (it has {volume['size']} GB)")
            new["size"] = size
        self.volumes[new["id"]] = new
        self.store.save_volume(new)
        return new

    def set_faults(self, ep: Endpoint, changes: dict) -> Faults:
        merged = {**ep.faults.to_dict(), **changes}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, not {value!r}")
            if key in Faults.RATES and not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1, not {value}")
            if key == "extra_cold_start_s" and value < 0:
                raise ValueError("extra_cold_start_s must be >= 0")
        ep.faults = Faults(**{k: float(v) for k, v in merged.items()})
        return ep.faults

    def workers_view(self, ep: Endpoint) -> dict:
        rows = [w.view() for w in sorted(ep.workers.values(), key=lambda w: w.created_at)]
        summary = {s.lower(): 0 for s in (RUNNING, IDLE, INITIALIZING, THROTTLED, UNHEALTHY)}
        for w in ep.workers.values():
            summary[w.status.lower()] += 1
        summary["total"] = len(ep.workers)
        return {"workers": rows, "summary": summary, "endpointVersion": 1}

    def billing_hours(self, start: float, end: float, endpoint_id: str | None) -> list[BillingHour]:
        now = time.time()
        for ep in self.endpoints.values():
            for w in ep.workers.values():
                self._accrue(ep, w, now)
        self._flush_billing()
        return self.store.billing_hours(int(start), math.ceil(end), endpoint_id)

    def jobs_view(self, endpoint_id: str | None) -> list[dict]:
        now = time.time()
        return [{**job.body(now), "endpointId": job.endpoint_id, "sync": job.sync,
                 "submittedAt": iso_z(job.submitted_at)}
                for job in self.jobs.values()
                if endpoint_id is None or job.endpoint_id == endpoint_id]

