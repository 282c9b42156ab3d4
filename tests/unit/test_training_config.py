"""AI Toolkit config generation, validation of expert edits, estimates and the job input."""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from lib.config import ConsoleConfig
from lib.training.config import (
    PRESETS,
    ConfigProblem,
    build_config,
    build_job,
    default_params,
    estimate,
    execution_timeout_ms,
    parse_yaml,
    to_yaml,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]
DS = "/runpod-volume/datasets/ava/v2"
OUT = "/runpod-volume/loras/ava/run-1"


@pytest.fixture(scope="module")
def console():
    return ConsoleConfig.load(ROOT / "console.toml")


def config_for(preset: str, **changes) -> dict:
    params = replace(default_params(preset), **changes)
    return build_config(name="ava", trigger_word="ava_tok", dataset_path=DS, training_folder=OUT, params=params)


def test_flux_preset_matches_the_reference_cli_config():
    proc = config_for("flux1-dev")["config"]["process"][0]
    assert proc["type"] == "sd_trainer"
    assert proc["model"] == {"name_or_path": "black-forest-labs/FLUX.1-dev", "arch": "flux",
                             "quantize": True, "quantize_te": True}
    assert proc["train"]["noise_scheduler"] == proc["sample"]["sampler"] == "flowmatch"
    assert proc["train"]["ema_config"] == {"use_ema": True, "ema_decay": 0.99}
    assert proc["save"] == {"dtype": "float16", "save_every": 250, "max_step_saves_to_keep": 4}
    assert proc["datasets"][0]["folder_path"] == DS and proc["datasets"][0]["caption_ext"] == "txt"
    assert proc["logging"] == {"log_every": 1, "use_ui_logger": True}


def test_zimage_turbo_preset_uses_the_training_adapter():
    proc = config_for("zimage-turbo")["config"]["process"][0]
    model = proc["model"]
    assert model["arch"] == "zimage:turbo"
    assert model["name_or_path"] == "Tongyi-MAI/Z-Image-Turbo"
    assert model["assistant_lora_path"] == ("ostris/zimage_turbo_training_adapter/"
                                            "zimage_turbo_training_adapter_v2.safetensors")
    assert (model["quantize"], model["qtype"], model["quantize_te"], model["low_vram"]) == (True, "qfloat8", True, True)
    assert proc["type"] == "diffusion_trainer"
    assert proc["train"]["timestep_type"] == "weighted"
    assert (proc["sample"]["guidance_scale"], proc["sample"]["sample_steps"]) == (1, 9)
    assert proc["network"] == {"type": "lora", "linear": 32, "linear_alpha": 32}


def test_sdxl_preset_uses_ddpm_without_quantisation():
    proc = config_for("sdxl")["config"]["process"][0]
    assert proc["model"]["name_or_path"] == "stabilityai/stable-diffusion-xl-base-1.0"
    assert proc["model"]["quantize"] is False
    assert proc["train"]["noise_scheduler"] == proc["sample"]["sampler"] == "ddpm"
    assert proc["sample"]["guidance_scale"] == 6


def test_form_parameters_reach_the_config():
    cfg = config_for("zimage-turbo", steps=1200, rank=8, alpha=4, lr=2e-4, resolutions=(768, 1024),
                     save_every=300, sample_every=400, sample_prompts=("[trigger] on a beach", "[trigger] in snow"))
    proc = cfg["config"]["process"][0]
    assert proc["train"]["steps"] == 1200 and proc["train"]["lr"] == 2e-4
    assert proc["network"]["linear"] == 8 and proc["network"]["linear_alpha"] == 4
    assert proc["datasets"][0]["resolution"] == [768, 1024]
    assert proc["save"]["save_every"] == 300 and proc["sample"]["sample_every"] == 400
    assert [s["prompt"] for s in proc["sample"]["samples"]] == ["[trigger] on a beach", "[trigger] in snow"]
    assert proc["trigger_word"] == "ava_tok"


@pytest.mark.parametrize("changes, fragment", [
    ({"steps": 0}, "steps must be more than 0"),
    ({"save_every": 5000}, "save every"),
    ({"resolutions": (500,)}, "multiples of 64"),
    ({"sample_prompts": ("a portrait",)}, "[trigger]"),
    ({"lr": 3.0}, "learning rate"),
])
def test_bad_form_values_are_refused(changes, fragment):
    with pytest.raises(ConfigProblem) as err:
        config_for("flux1-dev", **changes)
    assert any(fragment in p for p in err.value.problems)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_generated_yaml_round_trips_and_validates(preset):
    cfg = config_for(preset)
    text = to_yaml(cfg)
    assert validate_config(text, dataset_path=DS, training_folder=OUT) == []
    assert parse_yaml(text) == cfg


def edited(mutate) -> str:
    cfg = copy.deepcopy(config_for("flux1-dev"))
    mutate(cfg, cfg["config"]["process"][0])
    return to_yaml(cfg)


@pytest.mark.parametrize("mutate, fragment", [
    (lambda c, p: c.update(job="train"), "`job:` must be `extension`"),
    (lambda c, p: p.pop("network"), "missing network"),
    (lambda c, p: p.pop("save"), "missing save"),
    (lambda c, p: p.update(type="magic"), "process[0].type"),
    (lambda c, p: p["train"].update(steps=0), "train.steps"),
    (lambda c, p: p["train"].update(steps="lots"), "train.steps"),
    (lambda c, p: p["save"].update(save_every=9999), "larger than train.steps"),
    (lambda c, p: p["sample"].update(sampler="ddpm"), "must match train.noise_scheduler"),
    (lambda c, p: p["datasets"][0].update(folder_path="/somewhere/else"), "set by the console"),
    (lambda c, p: p.update(training_folder="/tmp/out"), "training_folder is set by the console"),
    (lambda c, p: p["network"].update(linear=0), "network.linear"),
    (lambda c, p: p["model"].update(arch="dalle"), "not an architecture"),
    (lambda c, p: p["save"].update(push_to_hub=True), "push_to_hub"),
    (lambda c, p: p["sample"].update(samples=[]), "at least one prompt"),
    (lambda c, p: c["config"].update(name="../evil"), "config.name"),
])
def test_expert_edits_are_validated(mutate, fragment):
    problems = validate_config(edited(mutate), dataset_path=DS, training_folder=OUT)
    assert any(fragment in p for p in problems), problems


def test_yaml_that_does_not_parse_reports_the_line():
    problems = validate_config("job: extension\nconfig:\n  name: [unclosed\n")
    assert len(problems) == 1 and "does not parse" in problems[0] and "line" in problems[0]
    assert validate_config("- just\n- a list\n") == ["the config must be a YAML mapping with `job:` and `config:`"]


def test_scientific_notation_learning_rate_is_accepted():
    text = edited(lambda c, p: None).replace("lr: 0.0001", "lr: 1e-4")
    assert "lr: 1e-4" in text
    assert validate_config(text) == []


def test_estimate_uses_calibration_and_the_training_pool_price(console):
    cfg = config_for("flux1-dev", steps=1000, sample_every=250)
    est = estimate(cfg, "flux1-dev", console)
    preset = PRESETS["flux1-dev"]
    assert est.training_s == pytest.approx(1000 * preset.seconds_per_step)
    # one prompt, sampled before step 1 and at 250/500/750/1000
    assert est.sampling_s == pytest.approx(5 * preset.seconds_per_sample_image)
    assert est.gpu_pool == "AMPERE_80"
    assert est.price_per_s == console.price_per_second("training")
    assert est.cost_usd == pytest.approx(round(est.total_s * est.price_per_s, 4))
    assert est.execution_timeout_ms > est.total_s * 1000
    more = estimate(config_for("flux1-dev", steps=3000), "flux1-dev", console)
    assert more.cost_usd > est.cost_usd and more.execution_timeout_ms > est.execution_timeout_ms


@pytest.mark.parametrize("steps, every, rounds", [
    (1000, 250, 5),      # 0, 250, 500, 750 in the loop (steps 0…999), then the last round at 1000
    (1100, 250, 6),      # 0, 250 … 1000, then 1100: the round after the loop is always there
    (900, 1000, 2),      # before training and after it
])
def test_estimate_counts_every_sample_round(console, steps, every, rounds):
    est = estimate(config_for("flux1-dev", steps=steps, sample_every=every), "flux1-dev", console)
    assert est.sampling_s == pytest.approx(rounds * PRESETS["flux1-dev"].seconds_per_sample_image)


def test_estimate_skips_the_rounds_the_config_turns_off(console):
    cfg = config_for("flux1-dev", steps=1000, sample_every=250)
    cfg["config"]["process"][0]["train"]["skip_first_sample"] = True
    assert estimate(cfg, "flux1-dev", console).sampling_s == pytest.approx(
        4 * PRESETS["flux1-dev"].seconds_per_sample_image)
    cfg["config"]["process"][0]["train"]["disable_sampling"] = True
    assert estimate(cfg, "flux1-dev", console).sampling_s == 0


def test_calibration_can_be_overridden_in_console_toml():
    text = (ROOT / "console.toml").read_text() + "\n[training.seconds_per_step]\nflux1-dev = 3.0\n"
    custom = ConsoleConfig.parse(text)
    est = estimate(config_for("flux1-dev", steps=1000), "flux1-dev", custom)
    assert est.seconds_per_step == 3.0 and est.training_s == 3000


def test_execution_timeout_stays_in_runpods_bounds():
    assert execution_timeout_ms(0) == 600_000
    assert execution_timeout_ms(10 ** 9) == 7 * 24 * 3600 * 1000
    assert execution_timeout_ms(3600) == int((3600 * 1.5 + 600) * 1000)


def test_job_input_follows_the_contract(console):
    user_cfg = config_for("zimage-turbo", steps=1000)
    # An expert edit elsewhere is kept; console-owned fields are (re)set by the console.
    user_cfg["config"]["process"][0]["train"]["lr"] = 5e-5
    job = build_job(name="ava", trigger_word="ava_tok", dataset_version="v2", preset_key="zimage-turbo",
                    config=user_cfg, console=console, run_id="run-20260101-000000-abcd")
    assert set(job.input) == {"name", "trigger_word", "dataset_path", "output_path", "config"}
    assert job.input["dataset_path"] == "/runpod-volume/datasets/ava/v2"
    assert job.input["output_path"] == "/runpod-volume/loras/ava/run-20260101-000000-abcd"
    proc = job.input["config"]["config"]["process"][0]
    assert proc["datasets"][0]["folder_path"] == job.input["dataset_path"]
    assert proc["training_folder"] == job.input["output_path"]
    assert proc["train"]["lr"] == 5e-5
    assert job.meta == {"character": "ava", "dataset_version": "v2", "run_id": "run-20260101-000000-abcd",
                        "preset": "zimage-turbo", "steps": 1000}
    assert job.estimate.steps == 1000
    # JSON-safe: what travels in the /run body.
    assert yaml.safe_load(to_yaml(job.input["config"])) == job.input["config"]


def test_build_job_refuses_an_invalid_config(console):
    cfg = config_for("flux1-dev")
    cfg["config"]["process"][0]["sample"]["sampler"] = "ddpm"
    with pytest.raises(ConfigProblem, match="must match"):
        build_job(name="ava", trigger_word="ava_tok", dataset_version="v1", preset_key="flux1-dev",
                  config=cfg, console=console)
