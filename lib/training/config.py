"""AI Toolkit configs for the training endpoint: presets, the form → config builder, validation of
expert edits, cost/duration estimates and the job input of the training contract.

Config shapes follow worker-contracts.md §3.1 (CLI form, FLUX example) and §3.2 (the UI's
per-architecture presets, Z-Image Turbo composed job); SDXL's preset values are AI Toolkit's UI
preset (`ui/src/app/jobs/new/options.ts`: arch sdxl, ddpm sampler/scheduler, guidance 6, no
quantisation).
"""
from __future__ import annotations

import copy
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from lib.config import ConsoleConfig
from lib.errors import ConsoleError

VOLUME_MOUNT = "/runpod-volume"
TRIGGER_PLACEHOLDER = "[trigger]"
TRAINER_TYPES = ("sd_trainer", "diffusion_trainer")
REQUIRED_PROCESS_KEYS = ("type", "network", "train", "model", "datasets", "save")
KNOWN_ARCHS = ("flux", "flex1", "zimage", "sdxl", "sd15", "lumina2", "qwen_image", "flux2", "chroma")
MIN_EXECUTION_TIMEOUT_MS = 5_000                 # RunPod's floor for policy.executionTimeout
MAX_EXECUTION_TIMEOUT_MS = 7 * 24 * 3600 * 1000  # and its ceiling (7 days)
TIMEOUT_MARGIN = 1.5
TIMEOUT_SLACK_S = 600
# DESIGN.md: cold starts of up to ~2 minutes are expected on this endpoint.
COLD_START_S = 120.0


class ConfigProblem(ConsoleError, ValueError):
    """A config or form value cannot be used; `problems` lists what to fix."""



@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    trainer_type: str
    model: dict
    train: dict                  # preset-specific train keys (scheduler, timestep type, …)
    sample: dict                 # preset-specific sample keys (sampler, guidance, steps, …)
    save_dtype: str
    device: str
    rank: int
    steps: int
    # Calibration for estimates, real seconds on the endpoint's first GPU pool; overridable in
    # console.toml ([training.seconds_per_step] / [training.startup_s], keyed by preset).
    seconds_per_step: float
    seconds_per_sample_image: float
    startup_s: float             # model download/load + latent caching before step 1
    notes: str = ""


PRESETS: dict[str, Preset] = {
    "flux1-dev": Preset(
        key="flux1-dev", label="FLUX.1-dev", trainer_type="sd_trainer",
        # §3.1 names the modern selector `arch: flux` as equivalent to `is_flux: true`.
        model={"name_or_path": "black-forest-labs/FLUX.1-dev", "arch": "flux",
               "quantize": True, "quantize_te": True},
        train={"noise_scheduler": "flowmatch"},
        sample={"sampler": "flowmatch", "guidance_scale": 4, "sample_steps": 20},
        save_dtype="float16", device="cuda:0", rank=16, steps=2000,
        # Public reports: ~1.5 s/it for an AI Toolkit FLUX LoRA (§4.4); no per-GPU table exists.
        seconds_per_step=1.5, seconds_per_sample_image=12.0, startup_s=420.0,
        notes="Needs ≥ 24 GB VRAM; FLUX.1-dev weights are non-commercial and gated on Hugging Face.",
    ),
    "zimage-turbo": Preset(
        key="zimage-turbo", label="Z-Image Turbo (with training adapter)", trainer_type="diffusion_trainer",
        model={"arch": "zimage:turbo", "name_or_path": "Tongyi-MAI/Z-Image-Turbo",
               "assistant_lora_path": "ostris/zimage_turbo_training_adapter/"
                                      "zimage_turbo_training_adapter_v2.safetensors",
               "quantize": True, "qtype": "qfloat8", "quantize_te": True, "low_vram": True},
        train={"noise_scheduler": "flowmatch", "timestep_type": "weighted"},
        sample={"sampler": "flowmatch", "guidance_scale": 1, "sample_steps": 9},
        save_dtype="bf16", device="cuda", rank=32, steps=3000,
        # No public timing; assumed a little faster than FLUX (6B vs 12B transformer).
        seconds_per_step=1.1, seconds_per_sample_image=4.0, startup_s=300.0,
        notes="The training adapter keeps Turbo's 8-step behaviour in the trained LoRA.",
    ),
    "sdxl": Preset(
        key="sdxl", label="SDXL", trainer_type="sd_trainer",
        model={"name_or_path": "stabilityai/stable-diffusion-xl-base-1.0", "arch": "sdxl",
               "quantize": False, "quantize_te": False},
        train={"noise_scheduler": "ddpm"},
        sample={"sampler": "ddpm", "guidance_scale": 6, "sample_steps": 20},
        save_dtype="float16", device="cuda:0", rank=32, steps=2000,
        # No public timing; assumed from SDXL's ~2.6B UNet at batch 1.
        seconds_per_step=0.6, seconds_per_sample_image=5.0, startup_s=180.0,
    ),
}


def preset(key: str) -> Preset:
    try:
        return PRESETS[key]
    except KeyError:
        raise ConfigProblem([f"unknown base model preset {key!r}; choose one of "
                             f"{', '.join(PRESETS)}"]) from None


@dataclass(frozen=True)
class TrainingParams:
    """What the training form asks for."""

    preset: str
    steps: int
    rank: int
    alpha: int
    lr: float = 1e-4
    resolutions: tuple[int, ...] = (512, 768, 1024)
    save_every: int = 250
    sample_every: int = 250
    sample_prompts: tuple[str, ...] = (f"{TRIGGER_PLACEHOLDER}, portrait photo, soft window light",)
    seed: int = 42
    max_step_saves_to_keep: int = 4

    def problems(self) -> list[str]:
        out = []
        if self.preset not in PRESETS:
            out.append(f"unknown base model preset {self.preset!r}")
        if self.steps <= 0:
            out.append("steps must be more than 0")
        if self.rank <= 0 or self.alpha <= 0:
            out.append("rank and alpha must be more than 0")
        if not (0 < self.lr < 1):
            out.append("the learning rate must be between 0 and 1 (typically 1e-4)")
        if not self.resolutions or any(r < 256 or r > 2048 or r % 64 for r in self.resolutions):
            out.append("resolution buckets must be multiples of 64 between 256 and 2048")
        if self.save_every <= 0 or self.save_every > self.steps:
            out.append("save every must be between 1 and the number of steps")
        if self.sample_every <= 0:
            out.append("sample every must be more than 0")
        prompts = [p for p in self.sample_prompts if p.strip()]
        if not prompts:
            out.append("add at least one sample prompt")
        elif any(TRIGGER_PLACEHOLDER not in p for p in prompts):
            out.append(f"every sample prompt should contain {TRIGGER_PLACEHOLDER} so samples show the character")
        return out


def default_params(preset_key: str) -> TrainingParams:
    p = preset(preset_key)
    return TrainingParams(preset=p.key, steps=p.steps, rank=p.rank, alpha=p.rank)


def build_config(*, name: str, trigger_word: str, dataset_path: str, training_folder: str,
                 params: TrainingParams) -> dict:
    """The AI Toolkit job config (as a dict) for these form values."""
    problems = params.problems()
    if problems:
        raise ConfigProblem(problems)
    p = preset(params.preset)
    process: dict[str, Any] = {
        "type": p.trainer_type,
        "training_folder": training_folder,
        "device": p.device,
        "trigger_word": trigger_word,
        "network": {"type": "lora", "linear": params.rank, "linear_alpha": params.alpha},
        "save": {"dtype": p.save_dtype, "save_every": params.save_every,
                 "max_step_saves_to_keep": params.max_step_saves_to_keep},
        "datasets": [{
            "folder_path": dataset_path,
            "caption_ext": "txt",
            "caption_dropout_rate": 0.05,
            "shuffle_tokens": False,
            "cache_latents_to_disk": True,
            "resolution": list(params.resolutions),
        }],
        "train": {
            "batch_size": 1,
            "steps": params.steps,
            "gradient_accumulation_steps": 1,
            "train_unet": True,
            "train_text_encoder": False,
            "gradient_checkpointing": True,
            **p.train,
            "optimizer": "adamw8bit",
            "lr": params.lr,
            "dtype": "bf16",
        },
        "model": copy.deepcopy(p.model),
        "sample": {
            **p.sample,
            "sample_every": params.sample_every,
            "width": 1024,
            "height": 1024,
            "samples": [{"prompt": prompt} for prompt in params.sample_prompts if prompt.strip()],
            "neg": "",
            "seed": params.seed,
            "walk_seed": True,
        },
        # The UI logger writes <training_folder>/<name>/loss_log.db, the worker's loss source (§3.4).
        "logging": {"log_every": 1, "use_ui_logger": True},
    }
    if p.key == "flux1-dev":
        process["train"]["ema_config"] = {"use_ema": True, "ema_decay": 0.99}
    return {"job": "extension", "config": {"name": name, "process": [process]},
            "meta": {"name": "[name]", "version": "1.0"}}


def to_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)


def parse_yaml(text: str) -> dict:
    """Parse an expert-edited config; raises ConfigProblem with every problem found."""
    problems = validate_config(text)
    if problems:
        raise ConfigProblem(problems)
    return yaml.safe_load(text)


def _number(value: object) -> float | None:
    # PyYAML (YAML 1.1) reads `1e-4` as a string; AI Toolkit's loader accepts it as a number.
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def validate_config(yaml_text: str, *, dataset_path: str | None = None,
                    training_folder: str | None = None) -> list[str]:
    """Problems that would make AI Toolkit fail or the console misbehave; [] when usable.

    `dataset_path` / `training_folder` are the values the console sets; an edit that changes
    them is reported, since the worker decides where data is read and written.
    """
    try:
        doc = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return [f"the YAML does not parse{where}: {getattr(exc, 'problem', None) or exc}"]
    if not isinstance(doc, dict):
        return ["the config must be a YAML mapping with `job:` and `config:`"]
    problems: list[str] = []
    if doc.get("job") != "extension":
        problems.append("`job:` must be `extension`")
    cfg = doc.get("config")
    if not isinstance(cfg, dict):
        return problems + ["`config:` must be a mapping with `name` and `process`"]
    name = cfg.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name or ""):
        problems.append("`config.name` must be a plain name (letters, digits, _ . -): it names the "
                        "output folder and files")
    processes = cfg.get("process")
    if not isinstance(processes, list) or not processes or not isinstance(processes[0], dict):
        return problems + ["`config.process` must be a list whose first item is a mapping"]
    if len(processes) > 1:
        problems.append("only one process is supported per training job")
    proc = processes[0]
    missing = [k for k in REQUIRED_PROCESS_KEYS if k not in proc]
    if missing:
        problems.append(f"process[0] is missing {', '.join(missing)}")
    if "type" in proc and proc["type"] not in TRAINER_TYPES:
        problems.append(f"process[0].type must be one of {', '.join(TRAINER_TYPES)}")

    network = proc.get("network")
    if "network" in proc:
        if not isinstance(network, dict):
            problems.append("`network` must be a mapping")
        else:
            if network.get("type") not in ("lora", "lokr"):
                problems.append("network.type must be lora (or lokr)")
            if network.get("type") == "lora" and (_int(network.get("linear")) or 0) <= 0:
                problems.append("network.linear (the LoRA rank) must be a whole number above 0")
            if "linear_alpha" in network and (_number(network.get("linear_alpha")) or 0) <= 0:
                problems.append("network.linear_alpha must be above 0")

    steps = None
    train = proc.get("train")
    if "train" in proc:
        if not isinstance(train, dict):
            problems.append("`train` must be a mapping")
            train = {}
        else:
            steps = _int(train.get("steps"))
            if steps is None or steps <= 0:
                problems.append("train.steps must be a whole number above 0")
                steps = None
            lr = _number(train.get("lr", 1e-4))
            if lr is None or not (0 < lr < 1):
                problems.append("train.lr must be a number between 0 and 1")
            if _int(train.get("batch_size", 1)) is None or train.get("batch_size", 1) < 1:
                problems.append("train.batch_size must be a whole number ≥ 1")

    save = proc.get("save")
    if "save" in proc:
        if not isinstance(save, dict):
            problems.append("`save` must be a mapping")
        else:
            every = _int(save.get("save_every", 1000))
            if every is None or every <= 0:
                problems.append("save.save_every must be a whole number above 0")
            elif steps is not None and every > steps:
                problems.append(f"save.save_every ({every}) is larger than train.steps ({steps}): "
                                f"no intermediate checkpoint would be written")
            if save.get("save_format", "safetensors") != "safetensors":
                problems.append("save.save_format must be safetensors (ComfyUI loads LoRAs in that format)")
            if save.get("push_to_hub"):
                problems.append("save.push_to_hub is not allowed: results stay on the network volume")

    model = proc.get("model")
    if "model" in proc:
        if not isinstance(model, dict):
            problems.append("`model` must be a mapping")
        else:
            if not isinstance(model.get("name_or_path"), str) or not model.get("name_or_path"):
                problems.append("model.name_or_path must name the base model")
            arch = model.get("arch")
            if arch is not None and str(arch).split(":")[0] not in KNOWN_ARCHS:
                problems.append(f"model.arch {arch!r} is not an architecture AI Toolkit knows")

    datasets = proc.get("datasets")
    if "datasets" in proc:
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, dict) for d in datasets):
            problems.append("`datasets` must be a non-empty list of mappings")
        else:
            for i, ds in enumerate(datasets):
                if dataset_path is not None and ds.get("folder_path") != dataset_path:
                    problems.append(f"datasets[{i}].folder_path is set by the console to the chosen "
                                    f"training set ({dataset_path}); choose the set in the form instead")
                res = ds.get("resolution", [512])
                res = res if isinstance(res, list) else [res]
                if not res or any(_int(r) is None or r < 256 or r > 4096 for r in res):
                    problems.append(f"datasets[{i}].resolution must be sizes like [512, 768, 1024]")

    if training_folder is not None and proc.get("training_folder") != training_folder:
        problems.append(f"training_folder is set by the console ({training_folder}); leave it as generated")

    sample = proc.get("sample")
    if sample is not None:
        if not isinstance(sample, dict):
            problems.append("`sample` must be a mapping")
        else:
            scheduler = train.get("noise_scheduler") if isinstance(train, dict) else None
            if scheduler and sample.get("sampler") and sample["sampler"] != scheduler:
                problems.append(f"sample.sampler ({sample['sampler']}) must match train.noise_scheduler "
                                f"({scheduler})")
            every = _int(sample.get("sample_every", 100))
            if every is None or every <= 0:
                problems.append("sample.sample_every must be a whole number above 0")
            prompts = sample_prompts(proc)
            if not prompts:
                problems.append("sample needs at least one prompt (sample.samples[].prompt or sample.prompts)")
    return problems


def sample_prompts(process: dict) -> list[str]:
    """Prompts in the order AI Toolkit numbers its sample images (`samples` supersedes `prompts`)."""
    sample = process.get("sample") or {}
    if isinstance(sample.get("samples"), list):
        return [str(s.get("prompt", "")) for s in sample["samples"] if isinstance(s, dict)]
    if isinstance(sample.get("prompts"), list):
        return [str(p) for p in sample["prompts"]]
    return []


def apply_console_fields(config: dict, *, name: str, trigger_word: str, dataset_path: str,
                         training_folder: str) -> dict:
    """A copy of `config` with the fields only the console decides set to their values."""
    out = copy.deepcopy(config)
    out["config"]["name"] = name
    proc = out["config"]["process"][0]
    proc["trigger_word"] = trigger_word
    proc["training_folder"] = training_folder
    for ds in proc["datasets"]:
        ds["folder_path"] = dataset_path
    return out


# --- estimates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    steps: int
    seconds_per_step: float
    training_s: float
    sampling_s: float
    startup_s: float
    cold_start_s: float
    price_per_s: float
    gpu_pool: str
    execution_timeout_ms: int

    @property
    def total_s(self) -> float:
        return self.training_s + self.sampling_s + self.startup_s + self.cold_start_s

    @property
    def cost_usd(self) -> float:
        # Serverless bills the worker from start-up, so the cold start is paid for too.
        return round(self.total_s * self.price_per_s, 4)


def _override(console: ConsoleConfig, table: str, key: str, default: float) -> float:
    training = console.raw.get("training") if isinstance(console.raw, dict) else None
    values = (training or {}).get(table) or {}
    value = values.get(key, default)
    return float(value) if _number(value) is not None else default


def estimate(config: dict, preset_key: str, console: ConsoleConfig, start_step: int = 0) -> Estimate:
    """Duration and cost before launch: calibrated s/step × steps + sampling + start-up + cold start,
    priced at the training endpoint's first GPU pool. A resumed run trains from `start_step`."""
    p = preset(preset_key)
    proc = config["config"]["process"][0]
    steps = int(proc["train"]["steps"])
    spp = _override(console, "seconds_per_step", p.key, p.seconds_per_step)
    startup = _override(console, "startup_s", p.key, p.startup_s)
    sample = proc.get("sample") or {}
    every = int(sample.get("sample_every", 100)) if sample else 0
    images = len(sample_prompts(proc))
    sample_rounds = _sample_rounds(steps, every, proc.get("train") or {}, start_step) if images else 0
    # The calibration is per image at the preset's own sample_steps; scale for edited values.
    sample_steps = int(sample.get("sample_steps", p.sample["sample_steps"])) if sample else 0
    per_image = p.seconds_per_sample_image * sample_steps / p.sample["sample_steps"]
    sampling = sample_rounds * images * per_image
    training = max(0, steps - start_step) * spp
    spec = console.endpoint("training")
    total = training + sampling + startup + COLD_START_S
    return Estimate(
        steps=steps, seconds_per_step=spp, training_s=training, sampling_s=sampling,
        startup_s=startup, cold_start_s=COLD_START_S,
        price_per_s=console.price_per_second("training"), gpu_pool=spec.gpu_pools[0],
        execution_timeout_ms=execution_timeout_ms(total),
    )


def _sample_rounds(steps: int, every: int, train: dict, start: int = 0) -> int:
    """AI Toolkit's loop runs steps start … steps-1 and samples at every multiple of sample_every
    but its first step; a baseline round comes before the loop of a fresh run (unless
    skip_first_sample) and a last round after it, at step = steps, whatever steps is
    (docs/training-contract.md, "What AI Toolkit writes")."""
    if train.get("disable_sampling"):
        return 0
    in_loop = ((steps - 1) // every - start // every) if every else 0
    baseline = 0 if train.get("skip_first_sample") or start > 1 else 1
    return max(0, in_loop) + 1 + baseline


def execution_timeout_ms(expected_s: float) -> int:
    """policy.executionTimeout for a run expected to take `expected_s`: generous margin, in RunPod's bounds."""
    ms = math.ceil((expected_s * TIMEOUT_MARGIN + TIMEOUT_SLACK_S) * 1000)
    return max(MIN_EXECUTION_TIMEOUT_MS, min(MAX_EXECUTION_TIMEOUT_MS, ms))


# --- the job -------------------------------------------------------------------------------


# What forms show as the run folder until the run starts: the folder is named from the start time.
RUN_NAMED_AT_START = "run-<start time>"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"run-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def dataset_path(name: str, version: str) -> str:
    return f"{VOLUME_MOUNT}/datasets/{name}/{version}"


def output_path(name: str, run_id: str) -> str:
    return f"{VOLUME_MOUNT}/loras/{name}/{run_id}"


@dataclass(frozen=True)
class TrainingJob:
    """Everything the training page submits: the contract's input plus what the console records."""

    input: dict
    run_id: str
    preset: str
    dataset_version: str
    estimate: Estimate
    meta: dict = field(default_factory=dict)


def build_job(*, name: str, trigger_word: str, dataset_version: str, preset_key: str,
              config: dict, console: ConsoleConfig, run_id: str | None = None,
              resume_from: tuple[str, int] | None = None) -> TrainingJob:
    """The training job input, exactly per the contract, with console-owned fields enforced.
    `resume_from` = (checkpoint path, its step) continues a stopped run in a new run folder."""
    run_id = run_id or new_run_id()
    ds = dataset_path(name, dataset_version)
    out = output_path(name, run_id)
    final = apply_console_fields(config, name=name, trigger_word=trigger_word,
                                 dataset_path=ds, training_folder=out)
    problems = validate_config(to_yaml(final), dataset_path=ds, training_folder=out)
    if problems:
        raise ConfigProblem(problems)
    est = estimate(final, preset_key, console, start_step=resume_from[1] if resume_from else 0)
    job_input = {"name": name, "trigger_word": trigger_word, "dataset_path": ds,
                 "output_path": out, "config": final}
    meta = {"character": name, "dataset_version": dataset_version, "run_id": run_id,
            "preset": preset_key, "steps": est.steps}
    if resume_from:
        job_input["resume_from"] = resume_from[0]
        meta.update(resumed_from=resume_from[0], start_step=resume_from[1])
    return TrainingJob(input=job_input, run_id=run_id, preset=preset_key,
                       dataset_version=dataset_version, estimate=est, meta=meta)

