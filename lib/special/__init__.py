"""Special tasks on the ``special`` endpoint: face swap (ReActor), character sheets (prompt, reference
face or pose images through ControlNet) and reference-image generation (IP-Adapter).

    plan = plan_faceswap(Upload("me.jpg", data), [Upload("beach.jpg", t1)], FaceSwapOptions(),
                         batch_id=new_batch_id("fs"))          # one job per target photo
    start = start_faceswap(svc, user=email, source=..., targets=..., options=..., batch_id=...)
    views = batch_results(svc.store, batch_id)                   # before/after per target

    sheet = start_sheet(svc, user=email, request=SheetRequest(...), sheet_id=new_batch_id("sheet"))
    progress = sheet_progress(svc.store, sheet_id); png = compose_progress(progress)
"""
from lib.special.common import (
    ROLE,
    PlannedJob,
    SpecialInputError,
    SubmitOutcome,
    Upload,
    new_batch_id,
    preflight_jobs,
    submit_jobs,
)
from lib.special.compose import EXPRESSION_ORDER, LABELS, VIEW_ORDER, compose_sheet, sheet_layout
from lib.special.faceswap import (
    DETECTORS,
    FACE_MODEL_LICENCE,
    GENDERS,
    RESTORE_MODELS,
    FaceSwapOptions,
    FaceSwapPlan,
    FaceSwapStart,
    SwapView,
    batch_results,
    describe_faces,
    plan_faceswap,
    start_faceswap,
    worker_warnings,
)
from lib.special.reference import (
    MODES,
    ReferenceMode,
    ReferencePlan,
    ReferenceRequest,
    ReferenceStart,
    plan_reference,
    reference_results,
    start_reference,
)
from lib.special.sheets import (
    PANELS,
    REFERENCE_LICENCE,
    Panel,
    PanelView,
    SheetPlan,
    SheetProgress,
    SheetRequest,
    SheetResult,
    SheetStart,
    compose_progress,
    default_trigger,
    drawn_pose,
    panel_prompt,
    plan_sheet,
    save_sheet,
    sheet_progress,
    sheet_result,
    start_sheet,
)

__all__ = [
    "MODES", "ReferenceMode", "ReferencePlan", "ReferenceRequest", "ReferenceStart",
    "plan_reference", "reference_results", "start_reference",
    "DETECTORS", "EXPRESSION_ORDER", "FACE_MODEL_LICENCE", "GENDERS", "LABELS", "PANELS", "REFERENCE_LICENCE",
    "RESTORE_MODELS", "ROLE", "VIEW_ORDER", "FaceSwapOptions", "FaceSwapPlan", "FaceSwapStart", "Panel",
    "PanelView", "PlannedJob", "SheetPlan", "SheetProgress", "SheetRequest", "SheetResult", "SheetStart", "SpecialInputError",
    "SubmitOutcome", "SwapView", "Upload", "batch_results", "compose_progress", "compose_sheet",
    "default_trigger", "describe_faces", "drawn_pose", "new_batch_id", "panel_prompt", "plan_faceswap",
    "plan_sheet", "preflight_jobs", "save_sheet", "sheet_layout", "sheet_progress", "sheet_result", "start_faceswap",
    "start_sheet", "submit_jobs", "worker_warnings",
]
