"""Character sheets on the ``special`` endpoint: one job per panel, composed into one labelled image.

Approach (worker-contracts §2.7, "per-pose jobs"): each panel — four views and five expressions —
is its own job with the character's LoRA, its trigger word and a prompt for that view, all with the
same seed so the panels stay alike. Three templates:

* ``sheet_pose_lora`` — LoRA + prompt only, stock ComfyUI nodes (FLUX.1-dev);
* ``sheet_reference_face`` — the same plus PuLID-Flux fed with a reference photo of the face, used
  when one is given, for every panel where the face is visible (custom node balazik/ComfyUI-PuLID-Flux
  with facexlib and insightface, models baked into the image: see the template's notes). The back
  view shows no face, so it always uses the pose template;
* ``sheet_pose_controlnet`` — the same plus a pose image per panel through core ControlNet nodes and
  a FLUX union ControlNet in openpose mode: the console draws an OpenPose skeleton for every view and
  expression (lib.special.poses), or takes the user's own pose image for a panel.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from lib.images import load_image
from lib.jobstate import FINAL
from lib.special.common import (
    ROLE,
    PlannedJob,
    SpecialInputError,
    Started,
    Upload,
    check_uploads,
    fit_for_job,
    job_error,
    job_payload,
    preflight_and_submit,
    tag,
    with_load_images,
    with_one_image,
)
from lib.special.compose import EXPRESSION_ORDER, LABELS, VIEW_ORDER, compose_sheet
from lib.special.poses import panel_pose
from lib.workflows.templates import load_template

if TYPE_CHECKING:
    from lib.services import Services

POSE_TEMPLATE = "sheet_pose_lora"
REFERENCE_TEMPLATE = "sheet_reference_face"
CONTROLNET_TEMPLATE = "sheet_pose_controlnet"
KIND = "sheet_panel"
TRIGGER_MAX = 100
DETAILS_MAX = 600

REFERENCE_LICENCE = (
    "Reference-guided sheets use PuLID-Flux, which needs InsightFace's antelopev2 face models "
    "(non-commercial research only). FLUX.1-dev, used for every panel, has a non-commercial licence.")

STYLE = ("character reference sheet panel, plain light grey studio background, soft even lighting, "
         "sharp focus, same outfit and hairstyle in every panel")


@dataclass(frozen=True)
class Panel:
    key: str
    row: str            # "views" or "expressions"
    prompt: str
    width: int
    height: int
    face_visible: bool = True

    @property
    def label(self) -> str:
        return LABELS[self.key]


_VIEW_PROMPTS = {
    "front": "full body, front view, facing the viewer, standing straight, arms relaxed at the sides",
    "three_quarter": "full body, three-quarter view, body turned 45 degrees to the left, looking ahead",
    "profile": "full body, side view in profile, facing left",
    "back": "full body, back view, facing away from the viewer, back of the head visible",
}
_EXPRESSION_PROMPTS = {
    "neutral": "neutral expression, mouth closed, calm eyes",
    "smiling": "smiling warmly, teeth visible, happy eyes",
    "angry": "angry expression, furrowed brows, clenched jaw",
    "surprised": "surprised expression, raised eyebrows, mouth open",
    "sad": "sad expression, downturned mouth, glistening eyes",
}
PANELS: tuple[Panel, ...] = tuple(
    [Panel(k, "views", _VIEW_PROMPTS[k], 768, 1152, face_visible=k != "back") for k in VIEW_ORDER]
    + [Panel(k, "expressions", f"head and shoulders portrait, front view, {_EXPRESSION_PROMPTS[k]}", 768, 768)
       for k in EXPRESSION_ORDER])
PANEL_BY_KEY = {p.key: p for p in PANELS}


@dataclass(frozen=True)
class SheetRequest:
    """What the form collects. ``lora_name`` is a file name inside models/loras/ on the volume."""

    character: str
    lora_name: str
    trigger: str
    seed: int
    details: str = ""
    lora_strength: float = 1.0
    panels: tuple[str, ...] = tuple(p.key for p in PANELS)
    reference: Upload | None = field(default=None, repr=False)
    pose_guided: bool = False      # each panel steered by a pose image (ControlNet)
    pose_uploads: Mapping[str, Upload] = field(default_factory=dict, repr=False)  # panel key → own pose


@dataclass(frozen=True)
class SheetPlan:
    sheet_id: str
    approach: str                  # "pose" (prompt only), "reference" or "controlnet"
    jobs: tuple[PlannedJob, ...]
    notes: tuple[str, ...]
    licence: str | None


def panel_prompt(request: SheetRequest, panel: Panel) -> str:
    parts = [request.trigger.strip(), panel.prompt, request.details.strip(), STYLE]
    return ", ".join(p for p in parts if p)


def _request_problems(request: SheetRequest) -> list[str]:
    problems = []
    if not request.character.strip():
        problems.append("give the character a name (it titles the sheet)")
    trigger = request.trigger.strip()
    if not trigger:
        problems.append("the trigger word is empty: use the word the LoRA was trained with")
    elif len(trigger) > TRIGGER_MAX:
        problems.append(f"the trigger word is {len(trigger)} characters long; keep it under {TRIGGER_MAX}")
    if len(request.details) > DETAILS_MAX:
        problems.append(f"the description is {len(request.details)} characters long; keep it under {DETAILS_MAX}")
    if not request.lora_name:
        problems.append("choose the character's LoRA from models/loras/")
    unknown = [k for k in request.panels if k not in PANEL_BY_KEY]
    if unknown:
        problems.append(f"unknown panel(s) {', '.join(unknown)}; choose from {', '.join(PANEL_BY_KEY)}")
    if not request.panels:
        problems.append("choose at least one view or expression")
    if request.pose_uploads and not request.pose_guided:
        problems.append("pose images were given but pose guidance is off: turn it on or remove them")
    if request.pose_guided and request.reference is not None:
        problems.append("use either a reference face or pose images for a sheet, not both at once")
    stray = [k for k in request.pose_uploads if k not in request.panels]
    if stray:
        problems.append(f"pose image(s) for {', '.join(LABELS.get(k, k) for k in stray)}, which is not a "
                        f"chosen panel: add the panel or remove the image")
    return problems


def drawn_pose(panel_key: str) -> bytes:
    """The OpenPose skeleton the console draws for a panel, at the panel's size (PNG bytes)."""
    panel = PANEL_BY_KEY[panel_key]
    return panel_pose(panel_key, panel.width, panel.height)


def _pose_templates(request: SheetRequest) -> tuple[dict[str, tuple], list[str]]:
    """Per chosen panel: (template with its LoadImage reading the pose, {name: bytes}, source) for a
    pose-guided sheet; and notes about the user's pose images."""
    control = load_template(CONTROLNET_TEMPLATE)
    own = check_uploads(list(request.pose_uploads.items()))
    notes = [w for image in own.values() for w in image.warnings]
    filled = {}
    for key in dict.fromkeys(request.panels):
        pose = own.get(key) or load_image(f"{key}-pose.png", drawn_pose(key))
        encoded = fit_for_job({"pose": pose}, control.workflow)["pose"]
        notes += list(encoded.notes)
        filled[key] = (with_load_images(control, {"pose.png": encoded.name}), {encoded.name: encoded.data},
                       "uploaded" if key in own else "drawn")
    return filled, notes


def plan_sheet(request: SheetRequest, *, sheet_id: str) -> SheetPlan:
    """One job per chosen panel; raises SpecialInputError listing every problem with the inputs."""
    problems = _request_problems(request)
    if problems:
        raise SpecialInputError(problems)
    pose = load_template(POSE_TEMPLATE)
    reference_template = None
    images: dict[str, bytes] | None = None
    notes: list[str] = []
    if request.reference is not None:
        reference_template, encoded, face = with_one_image(load_template(REFERENCE_TEMPLATE), request.reference,
                                                           "face")
        images = {encoded.name: encoded.data}
        notes += list(face.warnings) + list(encoded.notes)
    posed: dict[str, tuple] = {}
    if request.pose_guided:
        posed, pose_notes = _pose_templates(request)
        notes += pose_notes
    jobs = []
    for key in dict.fromkeys(request.panels):
        panel = PANEL_BY_KEY[key]
        guided = reference_template is not None and panel.face_visible
        template = reference_template if guided and reference_template is not None else pose
        job_images = images if guided else None
        approach = "reference" if guided else "pose"
        extra: dict[str, object] = {}
        if key in posed:
            template, job_images, source = posed[key]
            approach, extra = "controlnet", {"pose": source}
        job_tag = tag(sheet_id, panel.key)
        params = {"prompt": panel_prompt(request, panel), "seed": request.seed,
                  "lora_name": request.lora_name, "lora_strength": request.lora_strength,
                  "width": panel.width, "height": panel.height}
        payload = job_payload(template, params, job_tag=job_tag, images=job_images)
        jobs.append(PlannedJob(
            kind=KIND, label=panel.label, input=payload["input"],
            idempotency_key=f"{KIND}:{sheet_id}:{panel.key}",
            meta={"sheet": sheet_id, "panel": panel.key, "label": panel.label, "row": panel.row,
                  "character": request.character.strip(), "lora": request.lora_name,
                  "trigger": request.trigger.strip(), "seed": request.seed,
                  "approach": approach, "template": template.name, **extra}))
    approach = "controlnet" if posed else "reference" if reference_template is not None else "pose"
    return SheetPlan(sheet_id, approach, tuple(jobs), tuple(dict.fromkeys(notes)),
                     REFERENCE_LICENCE if approach == "reference" else None)




def default_trigger(lora_name: str) -> str:
    """A first guess at the trigger word: the LoRA's file name without version suffix."""
    stem = PurePosixPath(lora_name).stem
    for sep in ("_v", "-v"):
        head, _, tail = stem.rpartition(sep)
        if head and tail[:1].isdigit():
            return head
    return stem


SheetStart = Started


def start_sheet(svc: Services, *, user: str, request: SheetRequest, sheet_id: str) -> Started:
    """Plan, preflight (LoRA and FLUX files on the volume) and submit every panel of a sheet."""
    plan = plan_sheet(request, sheet_id=sheet_id)
    return Started(plan, preflight_and_submit(svc, plan.jobs, user=user, group=sheet_id))


@dataclass(frozen=True)
class PanelView:
    key: str
    label: str
    status: str
    local_id: str
    image: Path | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True)
class SheetProgress:
    sheet_id: str
    character: str
    panels: tuple[PanelView, ...]

    @property
    def finished(self) -> bool:
        return all(p.finished for p in self.panels)

    @property
    def done(self) -> int:
        return sum(1 for p in self.panels if p.image is not None)

    @property
    def failed(self) -> tuple[PanelView, ...]:
        return tuple(p for p in self.panels if p.error)


def sheet_progress(store, sheet_id: str) -> SheetProgress:
    """Where every panel of a sheet stands, from the local store (no API call)."""
    order = {p.key: i for i, p in enumerate(PANELS)}
    records = sorted(store.list(role=ROLE, kind=KIND, group=sheet_id),
                     key=lambda r: order.get(r.meta.get("panel"), 99))
    views = []
    for record in records:
        images = [o for o in store.outputs(record.local_id) if o.mime.startswith("image/")]
        key = str(record.meta.get("panel"))
        views.append(PanelView(key, LABELS.get(key, key), record.status, record.local_id,
                               images[0].path if images else None, job_error(record)))
    character = str(records[0].meta.get("character", "")) if records else ""
    return SheetProgress(sheet_id, character, tuple(views))


def compose_progress(progress: SheetProgress, title: str | None = None) -> bytes:
    """The sheet from every finished panel so far (raises ValueError when none has finished)."""
    panels = {p.key: p.image.read_bytes() for p in progress.panels if p.image is not None}
    return compose_sheet(panels, title or f"{progress.character} — character sheet")


@dataclass(frozen=True)
class SheetResult:
    progress: SheetProgress
    png: bytes | None = field(repr=False)   # the sheet composed from the panels finished so far
    path: Path | None                       # where the final sheet is kept, once every panel finished


def sheet_result(store, data_dir: Path, sheet_id: str) -> SheetResult:
    """Progress, the sheet so far, and — when every panel has finished — the kept sheet file."""
    progress = sheet_progress(store, sheet_id)
    if not progress.done:
        return SheetResult(progress, None, None)
    png = compose_progress(progress)
    path = None
    if progress.finished:
        path = Path(data_dir) / "sheets" / f"{tag(sheet_id)}.png"
        if not path.exists():
            path = save_sheet(data_dir, sheet_id, png)
    return SheetResult(progress, png, path)


def save_sheet(data_dir: Path, sheet_id: str, png: bytes) -> Path:
    """Keep a composed sheet as CONSOLE_DATA/sheets/<sheet id>.png (written atomically)."""
    folder = Path(data_dir) / "sheets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{tag(sheet_id)}.png"
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(png)
    tmp.replace(path)
    return path
