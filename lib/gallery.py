"""The Gallery across kinds: generated images (with re-run and vary seed), face swaps and character-sheet
panels, filterable by kind, character, model and date."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lib import inference as inf
from lib.jobstate import JobState
from lib.store import JobRecord
from lib.store_memo import memo

GENERATED, FACE_SWAPS, SHEETS = "Generated images", "Face swaps", "Sheet panels"
KIND_FILTERS = {GENERATED: ("image", inf.KINDS), FACE_SWAPS: ("special", ("faceswap",)),
                SHEETS: ("special", ("sheet_panel",))}


@dataclass(frozen=True)
class Picture(inf.GalleryItem):
    @property
    def uid(self) -> str:
        """Names this picture among all: a job may keep several images."""
        return f"{self.record.local_id}.{self.output.name}"

    @property
    def can_resend(self) -> bool:
        """Re-run and Vary seed rebuild Generate's jobs; face swaps and sheets are redone on their page."""
        return self.record.kind in inf.KINDS

    @property
    def caption(self) -> str:
        m = self.record.meta
        if self.record.kind == "faceswap":
            return f"Face swap · {m.get('source_name', '?')} → {m.get('target_name', '?')}"
        if self.record.kind == "sheet_panel":
            return f"Sheet · {m.get('character') or '?'} · {m.get('label', '?')} · seed {m.get('seed')}"
        return super().caption

    @property
    def details(self) -> str:
        if self.can_resend:
            return super().details
        r, m = self.record, self.record.meta
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "cost pending"
        what = m.get("summary") or m.get("approach") or ""
        return f"{what}\n\nworker {r.worker_id or '?'} · {cost} · {r.created_at:%Y-%m-%d %H:%M} by {r.user}"


@dataclass(frozen=True)
class PicturePage:
    """One page of the Gallery: its pictures, which page of how many it is, and how many images match."""

    items: list[Picture]
    page: int
    pages: int
    images: int

    @property
    def numbered(self) -> dict[str, str]:
        """Each picture's caption behind its number on this page ("#3 · …"), by uid: the grid shows the
        captions, and the picture to act on is chosen by them."""
        return {item.uid: f"#{n} · {item.caption}" for n, item in enumerate(self.items, start=1)}


def pictures(store, *, kinds: list[str], character: str | None = None, model: str | None = None,
             since: datetime | None = None, until: datetime | None = None, page: int = 1,
             per_page: int = 24) -> PicturePage:
    """The `page`-th `per_page` jobs' images of the chosen kinds, newest first (pages of jobs: a job
    keeps one image, or a few). Only that page's jobs are read; the pages are counted by the store."""
    roles = sorted({KIND_FILTERS[label][0] for label in kinds})
    # The kinds of different roles have different names, so role IN (...) AND kind IN (...) picks
    # exactly the chosen (role, kinds) pairs.
    job_kinds = sorted({kind for label in kinds for kind in KIND_FILTERS[label][1]})
    # The simulator's seeded history counts images it never kept: only jobs that ran have pictures here.
    filters = {"role": roles, "status": JobState.COMPLETED.value, "kind": job_kinds, "character": character,
               "model": model, "since": since, "until": until, "include_simulated": False, "with_images": True}
    jobs, images = store.tally(**filters)
    pages = max(1, -(-jobs // per_page))
    page = min(max(1, page), pages)
    records: list[JobRecord] = store.list(**filters, limit=per_page, offset=(page - 1) * per_page)
    items = [Picture(record, o) for record in records for o in store.outputs(record.local_id)
             if o.mime.startswith("image/")]
    return PicturePage(items, page, pages, images)


def facets(store) -> tuple[list[str], list[str]]:
    """(characters, models) over every kind, for the filters."""
    def read() -> tuple[list[str], list[str]]:  # one DISTINCT query per filter, not 5,000 rows each
        values = {key: {v for role, kinds in KIND_FILTERS.values()
                        for v in store.meta_values(key, role=role, kinds=kinds)}
                  for key in ("character", "model")}
        return sorted(values["character"]), sorted(values["model"])

    return memo(store, "gallery_facets", read)
