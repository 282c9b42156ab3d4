"""lib.inference planning helpers that need no running console: batches, axes, mapping, estimates."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lib import inference as inf
from lib.config import ConsoleConfig
from lib.grid import GridAxis, GridError
from lib.workflows import ParamError, load_template, parse_uploaded_workflow

ROOT = Path(__file__).resolve().parents[2]


def test_a_batch_gets_distinct_tags_and_seeds():
    template = load_template("z_image_turbo_lora")
    fixed = inf.plan_images(template, {"prompt": "ava", "seed": 100}, count=3, random_seed=False)
    assert [job.params["seed"] for job in fixed] == [100, 101, 102]
    assert len({job.job_tag for job in fixed}) == 3
    for job in fixed:
        assert job.input["workflow"]["11"]["inputs"]["filename_prefix"] == job.job_tag
        assert job.meta["job_tag"] == job.job_tag and job.meta["seed"] == job.params["seed"]
    randomised = inf.plan_images(template, {"prompt": "ava"}, count=4, random_seed=True)
    assert len({job.params["seed"] for job in randomised}) == 4
    with pytest.raises(ValueError, match="1 to 16"):
        inf.plan_images(template, {"prompt": "ava", "seed": 1}, count=17, random_seed=False)


@pytest.mark.parametrize("lora, character", [
    ("ava_v1.safetensors", "ava"), ("ava/ava-run3_000002000.safetensors", "ava"),
    ("Noor_zit_v1.safetensors", "noor"), (None, None),
])
def test_character_comes_from_the_lora_name(lora, character):
    assert inf.character_of(lora) == character


def test_axis_values_are_parsed_from_the_form():
    assert inf.parse_axis_values("lora_strength", "0.6, 0.8,1.0\n1.2") == [0.6, 0.8, 1.0, 1.2]
    assert inf.parse_axis_values("seed", "1 2, 3") == [1, 2, 3]
    assert inf.parse_axis_values("prompt", "a red coat, smiling\n\nblue dress") == ["a red coat, smiling",
                                                                                  "blue dress"]
    assert inf.parse_axis_values("lora_name", ["a.safetensors"]) == ["a.safetensors"]
    assert inf.parse_axis_values("steps", "8, 20 28") == [8, 20, 28]
    assert inf.parse_axis_values("guidance", "3.5, 6") == [3.5, 6.0]
    with pytest.raises(GridError, match="must be numbers"):
        inf.parse_axis_values("seed", "1, two")
    with pytest.raises(GridError, match="must be numbers"):
        inf.parse_axis_values("steps", "8, 2.5")


def test_grid_over_sampler_and_steps_fills_the_ksampler():
    template = load_template("sdxl_lora")
    _, planned = inf.plan_grid_jobs(template, GridAxis("sampler_name", ["euler", "dpmpp_2m_sde"]),
                                    GridAxis("steps", [12, 30]), {"prompt": "x", "seed": 5})
    sampler = [job.input["workflow"]["6"]["inputs"] for _, job in planned]
    assert [(s["sampler_name"], s["steps"]) for s in sampler] == [
        ("euler", 12), ("dpmpp_2m_sde", 12), ("euler", 30), ("dpmpp_2m_sde", 30)]
    assert {s["scheduler"] for s in sampler} == {"karras"} and {s["seed"] for s in sampler} == {5}
    assert planned[1][1].meta["sampler"] == "dpmpp_2m_sde"
    _, planned = inf.plan_grid_jobs(template, GridAxis("guidance", [4.0, 7.5]),
                                    GridAxis("scheduler", ["normal", "beta"]), {"prompt": "x", "seed": 5})
    assert [(j.input["workflow"]["6"]["inputs"]["cfg"], j.input["workflow"]["6"]["inputs"]["scheduler"])
            for _, j in planned] == [(4.0, "normal"), (7.5, "normal"), (4.0, "beta"), (7.5, "beta")]


def test_grid_refuses_an_axis_the_template_lacks_and_values_out_of_its_limits():
    template = load_template("z_image_turbo_lora")
    with pytest.raises(ParamError, match="steps 60 is out of range"):
        inf.plan_grid_jobs(template, GridAxis("steps", [8, 60]), GridAxis("seed", [1]), {"prompt": "x"})
    bare = dataclasses.replace(template, params={k: v for k, v in template.params.items() if k != "scheduler"})
    with pytest.raises(GridError, match="has no Scheduler setting"):
        inf.plan_grid_jobs(bare, GridAxis("scheduler", ["simple"]), GridAxis("seed", [1]), {"prompt": "x"})


def test_grid_jobs_share_one_fixed_seed_and_record_their_cell():
    template = load_template("flux_dev_lora")
    grid_id, planned = inf.plan_grid_jobs(template, GridAxis("lora_strength", [0.5, 1.0]),
                                          GridAxis("prompt", ["a", "b", "c"]),
                                          {"prompt": "x", "lora_name": "ava_v1.safetensors"})
    assert len(planned) == 6 and grid_id.startswith("grid-")
    assert len({job.params["seed"] for _, job in planned}) == 1
    cell, job = planned[4]
    assert job.meta["grid"] == {"id": grid_id, "row": 2, "col": 0, "x": "lora_strength", "y": "prompt",
                                "x_value": 0.5, "y_value": "c"}
    assert job.input["workflow"]["4"]["inputs"]["strength_model"] == 0.5
    assert job.input["workflow"]["5"]["inputs"]["text"] == "c"


def test_mapping_form_guesses_and_builds_the_param_map():
    workflow = parse_uploaded_workflow(json.dumps(load_template("sdxl_lora").workflow).encode())
    form = inf.mapping_form(workflow)
    assert form.guesses["prompt"].startswith("3 · CLIPTextEncode · text")
    assert form.guesses["lora_strength"].startswith("2 · LoraLoader · strength_model")
    kept = form.param_map(form.guesses)
    assert kept["lora_strength"] == [["2", "strength_model"], ["2", "strength_clip"]]
    assert kept["filename_prefix"] == [["8", "filename_prefix"]]
    changed = form.param_map({**form.guesses, "lora_strength": next(l for l in form.labels if "strength_clip" in l),
                              "negative_prompt": inf.UNMAPPED})
    assert changed["lora_strength"] == [["2", "strength_clip"]] and "negative_prompt" not in changed


def test_estimates_follow_model_speed_and_size():
    config = ConsoleConfig.load(ROOT / "console.toml")
    zit, sdxl, flux = (load_template(n) for n in ("z_image_turbo_lora", "sdxl_lora", "flux_dev_lora"))
    cost = {t.family: inf.estimate_cost(config, t, dict(t.defaults)) for t in (zit, sdxl, flux)}
    assert 0 < cost["z-image"] < cost["sdxl"] < cost["flux"]
    big = inf.estimate_cost(config, flux, {**flux.defaults, "width": 2048, "height": 2048})
    assert big > 3 * cost["flux"]
