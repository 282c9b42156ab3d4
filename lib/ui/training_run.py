"""Pieces of the LoRA training page's run panel: the trainer's log tail and the sample images,
compared side by side by step and opened large on demand."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import streamlit as st

from lib.training.runs import Sample

SAMPLE_WIDTH = 220


def log_tail(lines: Sequence[str], *, expanded: bool = False) -> None:
    """The worker's last trainer lines, as text (they come from the trainer, never Markdown)."""
    with st.expander(f"Trainer log — last {len(lines)} lines", expanded=expanded, icon=":material/terminal:"):
        st.code("\n".join(lines), language="text")


@st.dialog("Sample image", width="large")
def _zoom(image: bytes, step: int, prompt: str) -> None:
    st.image(image, width="stretch")
    st.caption(f"step {step}")
    st.text(prompt)


def _prompts(by_step: Mapping[int, Sequence[Sample]]) -> list[str]:
    seen: dict[str, None] = {}
    for samples in by_step.values():
        for s in samples:
            seen.setdefault(s.prompt, None)
    return list(seen)


def sample_comparison(by_step: Mapping[int, Sequence[Sample]], read: Callable[[str], bytes], key: str) -> None:
    """One row per sample prompt, one column per chosen step; any image opens large."""
    steps = sorted(by_step)
    chosen = st.multiselect("Compare samples from steps", steps, steps[-2:] if len(steps) > 1 else steps,
                            key=f"{key}.steps", help="Pick the steps to see side by side; 🔍 opens an image large.")
    if not chosen:
        st.caption("Choose at least one step to see its samples.")
        return
    chosen = sorted(chosen)
    for row, prompt in enumerate(_prompts(by_step)):
        st.caption(prompt or "(no prompt)")
        for col, step in zip(st.columns(len(chosen)), chosen, strict=True):
            sample = next((s for s in by_step[step] if s.prompt == prompt), None)
            if sample is None:
                col.caption(f"step {step}: no image")
                continue
            image = read(sample.key)
            col.image(image, width=SAMPLE_WIDTH, caption=f"step {step}")
            if col.button("🔍", key=f"{key}.zoom.{row}.{step}", help="Open large"):
                _zoom(image, step, prompt)
