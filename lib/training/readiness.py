"""Readiness checks for a training set: is it fit to train a character LoRA?

Each finding is an error (blocks training) or a warning (training may go ahead once someone has
acknowledged it). The checks read only the measurements in ImageInfo, so they run instantly.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lib.severity import ERROR, RANK, WARNING
from lib.training.images import ImageInfo, hamming

RECOMMENDED_MIN_IMAGES = 15
RECOMMENDED_MAX_IMAGES = 50
MIN_SHORT_SIDE = 512          # AI Toolkit only downscales; below its smallest bucket it must upscale
GOOD_SHORT_SIDE = 1024
# Measured at a 512-px short side: an in-focus portrait scores in the hundreds (skimage's
# astronaut at 1024 px: ~530); a Gaussian blur of radius 2 px on that 1024-px image already
# brings it to ~57 and radius 4 px to ~10.
BLUR_THRESHOLD = 50.0
# Two hashes must agree before a pair is called a near duplicate: pHash alone matches some
# differently framed shots of the same person against a plain background.
NEAR_DUP_PHASH = 10
NEAR_DUP_DHASH = 12

TRIGGER_PLACEHOLDER = "[trigger]"


@dataclass(frozen=True)
class Finding:
    code: str                      # stable id, e.g. "too_small", "near_duplicate"
    severity: str                  # ERROR | WARNING
    message: str
    images: tuple[str, ...] = ()   # the image(s) it is about; empty for set-wide findings

    @property
    def key(self) -> str:
        """Identity used to remember which warnings were acknowledged."""
        return f"{self.code}:{'|'.join(self.images)}"


@dataclass(frozen=True)
class ReadinessReport:
    image_count: int
    findings: tuple[Finding, ...]
    per_image: Mapping[str, tuple[Finding, ...]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def unacknowledged(self, acknowledged: Iterable[str]) -> list[Finding]:
        done = set(acknowledged)
        return [f for f in self.warnings if f.key not in done]

    def can_train(self, acknowledged: Iterable[str] = ()) -> bool:
        return not self.errors and not self.unacknowledged(acknowledged)

    def rows(self) -> list[dict]:
        """One row per finding, for a table."""
        return [{"severity": f.severity, "images": ", ".join(f.images) or "(whole set)", "finding": f.message}
                for f in self.findings]

    def badge(self, image: str) -> str:
        """A short per-image status: ✓, or ✖ (blocking) / ⚠ (warning) with the finding codes."""
        found = self.per_image.get(image, ())
        if not found:
            return "✓"
        mark = "✖" if any(f.severity == ERROR for f in found) else "⚠"
        return f"{mark} {', '.join(sorted({f.code.replace('_', ' ') for f in found}))}"

    def summary(self) -> str:
        if not self.findings:
            return f"{self.image_count} images, no problems found"
        return (f"{self.image_count} images: {len(self.errors)} blocking problem(s), "
                f"{len(self.warnings)} warning(s)")


def has_trigger(caption: str, trigger_word: str) -> bool:
    if TRIGGER_PLACEHOLDER in caption:
        return True
    return re.search(rf"(?<![\w]){re.escape(trigger_word)}(?![\w])", caption, re.IGNORECASE) is not None


def check_set(images: Mapping[str, ImageInfo], captions: Mapping[str, str | None],
              trigger_word: str) -> ReadinessReport:
    """Run every check. `images` and `captions` are keyed by the image's file name."""
    findings: list[Finding] = []
    n = len(images)
    if n == 0:
        findings.append(Finding("no_images", ERROR, "The set has no images yet."))
    elif n < RECOMMENDED_MIN_IMAGES:
        findings.append(Finding("few_images", WARNING,
                                f"{n} images; {RECOMMENDED_MIN_IMAGES}–{RECOMMENDED_MAX_IMAGES} varied "
                                f"photos give a character LoRA that generalises."))
    elif n > RECOMMENDED_MAX_IMAGES:
        findings.append(Finding("many_images", WARNING,
                                f"{n} images; more than {RECOMMENDED_MAX_IMAGES} rarely helps a character "
                                f"LoRA and lengthens training. Keep the best ones."))

    for name, info in images.items():
        findings.extend(_image_findings(name, info, captions.get(name), trigger_word))
    findings.extend(_duplicate_findings(images))

    per_image: dict[str, list[Finding]] = {name: [] for name in images}
    for f in findings:
        for name in f.images:
            per_image.setdefault(name, []).append(f)
    findings.sort(key=lambda f: (RANK[f.severity], f.code, f.images))
    return ReadinessReport(image_count=n, findings=tuple(findings),
                           per_image={k: tuple(v) for k, v in per_image.items()})


def _image_findings(name: str, info: ImageInfo, caption: str | None, trigger: str) -> list[Finding]:
    out = []
    side = info.short_side
    if side < MIN_SHORT_SIDE:
        out.append(Finding("too_small", ERROR,
                           f"{name} is {info.width}×{info.height}; the short side must be at least "
                           f"{MIN_SHORT_SIDE} px.", (name,)))
    elif side < GOOD_SHORT_SIDE:
        out.append(Finding("low_resolution", WARNING,
                           f"{name} is {info.width}×{info.height}; {GOOD_SHORT_SIDE} px or more on the "
                           f"short side trains sharper detail.", (name,)))
    if info.blur < BLUR_THRESHOLD:
        out.append(Finding("blurry", WARNING,
                           f"{name} looks blurry (sharpness {info.blur:.0f}, expected ≥ "
                           f"{BLUR_THRESHOLD:.0f}); the LoRA will learn the blur.", (name,)))
    if info.faces == 0:
        out.append(Finding("no_face", WARNING, f"{name}: no face found.", (name,)))
    elif info.faces > 1:
        out.append(Finding("several_faces", WARNING,
                           f"{name}: {info.faces} faces found; other people's features can leak into "
                           f"the character.", (name,)))
    if caption is None or not caption.strip():
        out.append(Finding("missing_caption", WARNING,
                           f"{name} has no caption; it will train on the trigger word alone.", (name,)))
    elif not has_trigger(caption, trigger):
        out.append(Finding("caption_without_trigger", WARNING,
                           f"{name}: the caption does not contain the trigger word “{trigger}”.", (name,)))
    return out


def _duplicate_findings(images: Mapping[str, ImageInfo]) -> list[Finding]:
    out = []
    by_sha: dict[str, list[str]] = {}
    for name, info in images.items():
        by_sha.setdefault(info.sha256, []).append(name)
    exact_groups = [sorted(names) for names in by_sha.values() if len(names) > 1]
    for names in exact_groups:
        out.append(Finding("duplicate", ERROR,
                           f"{', '.join(names)} are the same file; keep one.", tuple(names)))
    # One representative per exact group, so an exact duplicate is not reported twice.
    reps = sorted(names[0] for names in by_sha.values())
    for i, a in enumerate(reps):
        for b in reps[i + 1:]:
            ia, ib = images[a], images[b]
            dp, dd = hamming(ia.phash, ib.phash), hamming(ia.dhash, ib.dhash)
            if dp <= NEAR_DUP_PHASH and dd <= NEAR_DUP_DHASH:
                out.append(Finding("near_duplicate", WARNING,
                                   f"{a} and {b} look almost the same; near-copies over-weight one "
                                   f"pose or expression.", (a, b)))
    return out
