"""The LoRA picker of Generate (and sheets): each LoRA with the base model it was trained for, training
candidates (_candidates/) only on request, and a warning when the LoRA does not fit the preset."""
from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from lib import lora_base
from lib.devworkers import model_source
from lib.inference import loras_on_volume

if TYPE_CHECKING:
    from lib.services import Services


@st.cache_data(ttl=30, show_spinner=False)
def _bases(_svc: Services, volume_version: int) -> dict[str, lora_base.BaseModel]:
    return lora_base.known(_svc.store, _svc.data_dir)


@st.cache_data(ttl=60, show_spinner=False)
def _volume_loras(_svc: Services, role: str, volume_version: int) -> list[str]:
    return loras_on_volume(model_source(_svc, role))


def volume_loras(svc: Services, role: str) -> list[str]:
    """The LoRAs in models/loras/ where `role`'s jobs read models; a change made by the console re-lists at once."""
    return _volume_loras(svc, role, svc.volume.version)


def bases(svc: Services) -> dict[str, lora_base.BaseModel]:
    return _bases(svc, svc.volume.version)


def choices(svc: Services, loras: list[str], *, key: str, container=st) -> list[str]:
    """The LoRAs to offer; candidates handed over by "Compare in a grid" stay in the list."""
    show = container.checkbox("Show training candidates (_candidates/)", key=f"{key}.candidates")
    return lora_base.visible(loras, show_candidates=show, keep=st.session_state.get("grid.lora_candidates", []))


def label_of(svc: Services):
    known = bases(svc)
    return lambda name: lora_base.picker_label(name, known)


def warn_on_mismatch(svc: Services, family: str, lora: str | None) -> None:
    if text := lora_base.mismatch(family, lora, bases(svc)):
        st.warning(text, icon=":material/warning:")
