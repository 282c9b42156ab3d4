"""Apply a plan: create the volume, then the endpoints (mounting it), PATCH what drifted, and write
new ids into console.toml. Steps run in that order and the first failure stops the rest, so the
step list says exactly what was done. Nothing is ever deleted here; `delete_unmanaged` deletes one
endpoint that console.toml does not declare, and only when its name was typed to confirm.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from lib.ops import drift
from lib.provisioning.bind import BindError
from lib.provisioning.declaration import Declaration, EndpointDecl
from lib.provisioning.plan import BLOCKED, CHANGE, CREATE, NEW_VOLUME, Plan, ResourcePlan
from lib.runpod.errors import RunPodError
from lib.runpod.models import Endpoint

PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"

# (kind, role, new id) -> None; raises BindError. Writes the id into console.toml.
Binder = Callable[[str, str | None, str], None]
# (target, detail) -> None: one audit entry per thing done.
Recorder = Callable[[str, dict], None]


@dataclass
class Step:
    title: str
    status: str = PENDING
    detail: str = ""
    run: Callable[[], str] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ApplyResult:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.status == FAILED), None)

    @property
    def done(self) -> list[Step]:
        return [s for s in self.steps if s.status == DONE]

    @property
    def message(self) -> str:
        failed = self.failed
        if failed is not None:
            return f"Stopped at “{failed.title}”: {failed.detail}"
        left = sum(1 for s in self.steps if s.status == SKIPPED)
        return f"Applied; {left} blocked resource(s) left as they are." if left else "Applied."

    def rows(self) -> list[dict]:
        return [{"step": s.title, "result": s.status, "detail": s.detail} for s in self.steps]


class _Context:
    """What earlier steps learned that later ones need: the new volume's id."""

    def __init__(self, plan: Plan):
        volume = next(r for r in plan.resources if r.kind == "volume")
        self.volume_id: str | None = volume.live_id


def plan_steps(plan: Plan, decl: Declaration, rest, *, bind: Binder, record: Recorder) -> list[Step]:
    """The steps apply will take, in order (shown for confirmation before anything runs)."""
    ctx = _Context(plan)
    steps: list[Step] = []
    for r in plan.resources:
        if r.action == BLOCKED:
            steps.append(Step(f"Leave {r.label} as it is", SKIPPED, "; ".join(r.problems)))
            continue
        if r.action == CREATE:
            steps.append(Step(f"Create {r.label}: {r.summary}",
                              run=_creator(r, decl, rest, ctx, bind, record)))
        elif r.rebind:
            steps.append(Step(f"Write {r.label}'s live id {r.live_id} into console.toml (was {r.declared_id})",
                              run=_binder(r, bind, record)))
        if r.action == CHANGE:
            changed = ", ".join(f"{c.label} {c.live} → {c.declared}" for c in r.changes)
            steps.append(Step(f"Change {r.label}: {changed}", run=_patcher(r, rest, ctx, record)))
    return steps


def run_steps(steps: list[Step]) -> ApplyResult:
    """Run pending steps in order; after the first failure the rest are skipped, not attempted."""
    failed = False
    for step in steps:
        if step.status != PENDING:
            continue
        if failed:
            step.status, step.detail = SKIPPED, "not run: an earlier step failed"
            continue
        assert step.run is not None  # plan_steps gives every pending step its action
        try:
            step.detail = step.run()
            step.status = DONE
        except (RunPodError, BindError, ValueError) as exc:
            step.status, step.detail = FAILED, str(exc)
            failed = True
    return ApplyResult(tuple(steps))


def apply_plan(plan: Plan, decl: Declaration, rest, *, bind: Binder, record: Recorder) -> ApplyResult:
    return run_steps(plan_steps(plan, decl, rest, bind=bind, record=record))


def _creator(r: ResourcePlan, decl: Declaration, rest, ctx: _Context, bind: Binder,
             record: Recorder) -> Callable[[], str]:
    def create() -> str:
        try:
            if r.kind == "volume":
                v = decl.volume
                made = rest.create_network_volume(name=v.name, size_gb=v.size_gb, datacenter=v.datacenter)
                ctx.volume_id = made.id
            else:
                assert r.role is not None  # every endpoint plan carries its role
                made = _create_endpoint(decl.endpoint(r.role), rest, ctx)
        except RunPodError as exc:
            if exc.outcome_unknown:
                raise RunPodError(f"{exc} — it may have been created anyway: plan again before applying, "
                                  f"the plan finds it by its name") from None
            raise
        record(f"{r.kind}:{made.id}", {"created": r.name, "role": r.role, "monthly_usd": round(
            r.monthly_cost_delta_usd, 2)})
        if made.id == r.declared_id:
            return f"created with id {made.id}"
        bind(r.kind, r.role, made.id)
        return f"created with id {made.id}; console.toml now has this id"
    return create


def _create_endpoint(d: EndpointDecl, rest, ctx: _Context) -> Endpoint:
    s = d.spec
    if ctx.volume_id is None:
        raise ValueError(f"cannot create {s.name}: the network volume it mounts does not exist yet")
    return rest.create_endpoint(
        name=s.name, image=s.image, gpu_count=d.gpu_count, data_center_ids=s.data_center_ids,
        network_volume_ids=[ctx.volume_id], env=d.runpod_env, disk_gb=d.disk_gb, **drift.declared(s))


def _binder(r: ResourcePlan, bind: Binder, record: Recorder) -> Callable[[], str]:
    def run() -> str:
        assert r.live_id is not None  # a plan is rebound only to a live id
        bind(r.kind, r.role, r.live_id)
        record(f"{r.kind}:{r.live_id}", {"bound": r.name, "role": r.role, "was": r.declared_id})
        return "console.toml updated"
    return run


def _patcher(r: ResourcePlan, rest, ctx: _Context, record: Recorder) -> Callable[[], str]:
    def run() -> str:
        patch = dict(r.patch)
        if "network_volume_ids" in patch:
            if ctx.volume_id is None:
                raise ValueError(f"cannot change {r.label}: the network volume it mounts does not exist yet")
            # plan.py puts the declared volume ids here as a list, NEW_VOLUME standing for the one to create
            declared_ids = cast("list[object]", patch["network_volume_ids"])
            patch["network_volume_ids"] = [ctx.volume_id if v is NEW_VOLUME else v for v in declared_ids]
        if r.kind == "volume":
            rest.update_network_volume(r.live_id, **patch)
        else:
            rest.update_endpoint(r.live_id, **patch)
        record(f"{r.kind}:{r.live_id}", {"changed": r.name, "role": r.role,
                                         "fields": {c.label: {"from": c.live, "to": c.declared} for c in r.changes},
                                         "monthly_usd": round(r.monthly_cost_delta_usd, 2)})
        return "updated"
    return run


def delete_unmanaged(live: Endpoint, typed_name: str, declared_ids: set[str], rest, *,
                     record: Recorder) -> str:
    """Delete an endpoint console.toml does not declare, after its name was typed to confirm.

    RunPod's deleteEndpoint wants min and max workers at 0 first (reference §3.3), so they are
    lowered before the DELETE; running jobs on it are lost.
    """
    if live.id in declared_ids:
        raise ValueError(f"{live.name} ({live.id}) is declared in console.toml; remove it from the file before "
                         f"deleting it")
    if typed_name.strip() != live.name:
        raise ValueError(f"type the endpoint's name, {live.name}, exactly to delete it")
    if live.workers_min or live.workers_max:
        rest.update_endpoint(live.id, workers_min=0, workers_max=0)
    rest.delete_endpoint(live.id)
    record(f"endpoint:{live.id}", {"deleted": live.name})
    return f"deleted {live.name} ({live.id})"
