"""Provisioning for one console (Services): console.toml read fresh on every call, RunPod through the
shared client, every change checked against the person's role and written to the audit log."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lib.config import ConsoleConfig
from lib.inference import templates_dir
from lib.ops.actions import model_files
from lib.provisioning import required
from lib.provisioning.apply import ApplyResult, Step, delete_unmanaged, plan_steps, run_steps
from lib.provisioning.bind import write_id
from lib.provisioning.declaration import Declaration
from lib.provisioning.docs import render
from lib.provisioning.plan import LiveState, Plan, make_plan
from lib.provisioning.upload import DEFAULT_PART_SIZE, UploadProgress, UploadResult, parts_for, upload
from lib.volume import VolumeError, VolumeNotFound

# One apply at a time per console process: two at once would both create what is missing.
_APPLYING = threading.Lock()


@dataclass(frozen=True)
class Uploaded:
    files: tuple[UploadResult, ...]
    not_found: tuple[str, ...]      # required paths with no matching file under the folder


class Provisioning:
    def __init__(self, services, *, part_size: int = DEFAULT_PART_SIZE):
        self.svc = services
        self.part_size = part_size

    @property
    def path(self) -> Path:
        return Path(self.svc.settings.config_path)

    # ---- plan ------------------------------------------------------------------------------
    def declaration(self) -> Declaration:
        """console.toml as it is on disk now (ConfigError / DeclarationError say what to fix)."""
        return Declaration.from_config(ConsoleConfig.load(self.path))

    def live(self) -> LiveState:
        return LiveState.fetch(self.svc.client.rest)

    def plan(self, decl: Declaration, live: LiveState) -> Plan:
        return make_plan(decl, live)

    def config_outdated(self) -> bool:
        """console.toml on disk differs from the configuration this console was started with."""
        try:
            return ConsoleConfig.load(self.path).raw != self.svc.config.raw
        except ValueError:
            return False     # a broken file is reported by declaration(); the running config stays

    # ---- apply -----------------------------------------------------------------------------
    def steps(self, plan: Plan, decl: Declaration, email: str) -> list[Step]:
        def bind(kind: str, role: str | None, new_id: str) -> None:
            if kind == "volume":
                write_id(self.path, ("volume",), new_id)
            else:
                assert role is not None  # every endpoint has its role
                write_id(self.path, ("endpoints", role), new_id)

        def record(target: str, detail: dict) -> None:
            self.svc.store.audit(email, "provision", target, detail)

        return plan_steps(plan, decl, self.svc.client.rest, bind=bind, record=record)

    def apply(self, plan: Plan, decl: Declaration, email: str) -> ApplyResult:
        """Operators only; stops at the first error. The outcome goes to the audit log as well."""
        self.svc.authorize(email, "apply")
        if not _APPLYING.acquire(blocking=False):
            raise ValueError("another apply is running in this console; wait for it and plan again")
        try:
            result = run_steps(self.steps(plan, decl, email))
        finally:
            _APPLYING.release()
        failed = result.failed
        self.svc.store.audit(email, "apply", "console.toml", {
            "plan": plan.summary(), "done": len(result.done),
            "failed": failed.title if failed else None, "error": failed.detail if failed else None})
        return result

    def delete_unmanaged(self, endpoint_id: str, typed_name: str, email: str, decl: Declaration) -> str:
        """Delete an endpoint console.toml does not declare; its name must be typed to confirm."""
        self.svc.authorize(email, "apply")
        self.svc.authorize(email, "delete")
        endpoint = self.svc.client.rest.endpoint(endpoint_id)
        return delete_unmanaged(endpoint, typed_name, {d.spec.id or "" for d in decl.endpoints}, self.svc.client.rest,
                                record=lambda target, detail: self.svc.store.audit(email, "delete", target, detail))

    # ---- models ----------------------------------------------------------------------------
    def _files(self):
        return model_files(self.svc)     # the Models page's cached index of the volume

    def readiness(self, *, refresh: bool = False) -> list[required.ModelState]:
        files = self._files()
        if refresh:
            files.refresh()
        index = files.index()
        needed = tuple(required.requirements(templates_dir(self.svc.data_dir)))
        return index.derived("readiness", needed,
                             lambda: required.check(needed, {f.key: f.size for f in index.files()}))

    def upload(self, folder: str | Path, paths: Iterable[str], email: str,
               progress: Callable[[UploadProgress], None] | None = None) -> Uploaded:
        """Upload the required files/folders `paths` found under a folder on the console machine."""
        user = self.svc.authorize(email, "upload_model")
        wanted = set(paths)
        local = required.scan_local(folder)
        pairs, not_found = [], []
        for req in required.requirements(templates_dir(self.svc.data_dir)):
            if req.path in wanted:
                found = required.sources(req, local)
                pairs += found
                if not found:
                    not_found.append(req.path)
        parts = parts_for(self.svc.volume, staging=Path(self.svc.data_dir) / "uploads", settings=self.svc.settings)
        results = []
        for source, key in pairs:
            if self._already_there(source, key):
                continue
            result = upload(self.svc.volume, parts, source, key, part_size=self.part_size, progress=progress)
            self._files().cache.apply(upserts=[self.svc.volume.head(key)])
            self.svc.store.audit(user.email, "upload", key, {"size": result.size, "from": str(source),
                                                             "reused_parts": result.reused})
            results.append(result)
        return Uploaded(tuple(results), tuple(not_found))

    def _already_there(self, source: Path, key: str) -> bool:
        """The same file is on the volume (a folder upload run again); a different one is never replaced."""
        try:
            size = self.svc.volume.head(key).size
        except VolumeNotFound:
            return False
        if size == source.stat().st_size:
            return True
        raise VolumeError(f"{key} is already on the volume with another size ({size:,} bytes); move or delete it on "
                          f"the Models page before uploading this one")

    # ---- documentation ---------------------------------------------------------------------
    def documentation(self, decl: Declaration, live: LiveState, plan: Plan, *,
                      now: datetime | None = None) -> str:
        backend = "the local RunPod simulator" if self.svc.simulated else "RunPod"
        return render(decl, live, plan, backend=backend, now=now or datetime.now(UTC))
