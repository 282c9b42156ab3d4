"""AppTest: comparison grids over the sampler settings (sampler × steps, guidance × scheduler) on the
Generate page, through app.py on the in-process simulator (conftest.py)."""
from __future__ import annotations

from lib import inference as inf


def test_grid_of_two_samplers_by_two_step_counts(open_page, console):
    at = open_page("pages/generate.py")
    at.selectbox(key="gen.model").set_value("SDXL base 1.0 + LoRA")
    at.text_area(key="gen.prompt").input("ava_tok sampler comparison").run()
    at.selectbox(key="grid.x").set_value("sampler_name").run()
    at.selectbox(key="grid.y").set_value("steps").run()
    at.multiselect(key="grid.x.sampler_name").set_value(["euler", "dpmpp_2m_sde"])
    at.text_area(key="grid.y.values").input("12, 30")
    at.button(key="grid.go").click().run()
    assert not at.exception and not at.error
    state = inf.grid_state(console, at.session_state["grid.id"])
    console.tracker.wait_for([v.record.local_id for v in state.views], timeout_s=60)
    state = inf.grid_state(console, at.session_state["grid.id"])
    assert state.counts == {"COMPLETED": 4}
    sent = {(v.record.input["workflow"]["6"]["inputs"]["sampler_name"], v.record.input["workflow"]["6"]["inputs"]["steps"])
            for v in state.views}
    assert sent == {("euler", 12), ("euler", 30), ("dpmpp_2m_sde", 12), ("dpmpp_2m_sde", 30)}
    assert state.summary.startswith("Steps × Sampler")


def test_guidance_values_out_of_the_presets_range_are_explained(open_page):
    at = open_page("pages/generate.py")
    at.selectbox(key="gen.model").set_value("Z-Image Turbo + LoRA")
    at.text_area(key="gen.prompt").input("ava_tok").run()
    at.selectbox(key="grid.x").set_value("guidance").run()
    at.selectbox(key="grid.y").set_value("scheduler").run()
    at.text_area(key="grid.x.values").input("1.0, 7.5")
    at.multiselect(key="grid.y.scheduler").set_value(["simple", "beta"])
    at.button(key="grid.go").click().run()
    assert any("guidance 7.5 is out of range: use 1.0 to 2.0" in e.value for e in at.error)
    assert "grid.id" not in at.session_state
