"""Running a validated graph on the simulated GPU: node by node, memoised, in simulated time.

The nodes that matter for what a picture shows are simulated by meaning — model and LoRA loaders,
text encoders, guidance, the samplers (KSampler, KSamplerAdvanced, SamplerCustom and
SamplerCustomAdvanced with their noise, guider, sampler and sigmas nodes), VAE decode, LoadImage
and a few image operations. Every other class runs by its definition: each output passes through
the linked input of the same type (matched by name first), or is made from what the graph gives it
— a LATENT or IMAGE of the size in its width/height inputs or of its linked image or latent — so
any valid graph completes with pictures of the size the graph asks for.

Sampling takes simulated time from steps × megapixels × batch per model family — Z-Image Turbo
fastest, then SDXL, FLUX.1-dev slowest (reference §4) — spent with ctx.sleep and reported with
ctx.progress({"step", "total"}); a batch too large for a 24 GB card fails like a CUDA OOM.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.localpod.comfy import render
from lib.localpod.comfy.nodes import NodeClass, Server, is_link
from lib.localpod.comfy.render import Cond, Latent, Model, Sampled

COMFY_INPUT_DIR = "/comfyui/input"
# Where SaveImage's files go; PreviewImage writes temp files, which worker-comfyui skips.
OUTPUT_KINDS = {"SaveImage": "output", "PreviewImage": "temp"}
DEFAULT_SIDE = 512      # ComfyUI's usual widget default for a width or height
PROGRESS_UPDATES = 4


@dataclass(frozen=True)
class Family:
    name: str
    fixed_s: float       # text encoding, VAE decode, model bookkeeping per sampler run
    step_mp_s: float     # seconds per sampling step per megapixel of latent (whole batch)
    max_batch_mp: float  # beyond this the simulated 24 GB GPU runs out of memory


# Orders of magnitude from reference §4: FLUX.1-dev ≈1.7 it/s at 1 MP on an RTX 4090 (≈12 s for
# 20 steps); Z-Image Turbo is "sub-second" on an H800 with 8 steps, a few seconds on a 4090-class
# card; SDXL sits between (no sourced figure, so its rate is an assumption kept in that order).
FAMILIES = {
    "z-image": Family("z-image", 0.4, 0.19, 10.0),
    "sdxl": Family("sdxl", 0.6, 0.12, 12.0),
    "flux": Family("flux", 1.0, 0.55, 8.5),
}

# ComfyUI numbers files after those already in its output folder, which lives as long as the
# worker: (simulator volume, worker id, prefix) → last number used.
_counters: dict[tuple[str, str, str], int] = {}
_counters_lock = threading.Lock()


class ExecutionError(Exception):
    """A node failed while the graph ran; the text is worker-comfyui's rendering of ComfyUI's message."""

    def __init__(self, node_id: str, node_type: str, message: str):
        super().__init__(f"Node Type: {node_type}, Node ID: {node_id}, Message: {message}")


@dataclass(frozen=True)
class Guider:
    model: Model
    positive: Cond
    cfg: float


@dataclass(frozen=True)
class Sigmas:
    steps: int
    scheduler: str


def family_of(model_name: str, class_type: str) -> str:
    lowered = model_name.lower()
    if "z_image" in lowered or "z-image" in lowered or "zimage" in lowered:
        return "z-image"
    if "flux" in lowered:
        return "flux"
    return "sdxl" if "Checkpoint" in class_type else "flux"


class Run:
    """Evaluates the graph for the outputs that validated; `ctx` is the job's JobContext."""

    def __init__(self, workflow: Mapping, server: Server, uploaded: Mapping[str, bytes], ctx):
        self.workflow = workflow
        self.server = server
        self.uploaded = uploaded
        self.ctx = ctx
        self.cache: dict[str, tuple] = {}
        # Non-fatal notes for worker-comfyui's output.errors (e.g. a face swap that found no face).
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ graph access

    def value(self, link: list):
        node_id, index = link
        if node_id not in self.cache:
            self.cache[node_id] = self.execute(node_id)
        results = self.cache[node_id]
        return results[index] if index < len(results) else None

    def inputs(self, node_id: str) -> Mapping:
        return self.workflow[node_id].get("inputs") or {}

    def arg(self, node_id: str, name: str, default=None):
        value = self.inputs(node_id).get(name, default)
        return self.value(value) if is_link(value) else value

    def node_class(self, node_id: str) -> NodeClass:
        return self.server.classes[self.workflow[node_id]["class_type"]]

    # ------------------------------------------------------------------ outputs

    def output(self, node_id: str) -> list[tuple[str, bytes]]:
        """Run an output node; SaveImage's files as (file name, PNG bytes)."""
        class_type = self.workflow[node_id]["class_type"]
        if class_type not in OUTPUT_KINDS:
            self.execute(node_id)    # other output nodes run; worker-comfyui returns no files for them
            return []
        images = self.arg(node_id, "images")
        if OUTPUT_KINDS[class_type] == "temp":
            return []
        prefix = str(self.arg(node_id, "filename_prefix", "ComfyUI"))
        base = prefix.rpartition("/")[2]
        files = []
        for image in images or []:
            with _counters_lock:
                key = (str(self.ctx.volume_dir), self.ctx.worker_id, prefix)
                _counters[key] = _counters.get(key, 0) + 1
                counter = _counters[key]
            files.append((f"{base}_{counter:05}_.png", render.png(image)))
        return files

    # ------------------------------------------------------------------ nodes

    def execute(self, node_id: str) -> tuple:
        class_type = self.workflow[node_id]["class_type"]
        simulated = _SIMULATED.get(class_type)
        return simulated(self, node_id) if simulated else self.by_definition(node_id)

    def load_model(self, node_id: str) -> tuple:
        class_type = self.workflow[node_id]["class_type"]
        name = str(self.arg(node_id, "ckpt_name" if "Checkpoint" in class_type else "unet_name"))
        model = Model(name, family_of(name, class_type))
        return (model,) if class_type == "UNETLoader" else (model, "clip", "vae")

    def lora(self, node_id: str) -> tuple:
        model = self.arg(node_id, "model")
        lora = (str(self.arg(node_id, "lora_name")), float(self.arg(node_id, "strength_model")))
        if isinstance(model, Model):
            model = replace(model, loras=(*model.loras, lora))
        return (model, self.arg(node_id, "clip"))

    def text(self, node_id: str) -> tuple:
        return (Cond(str(self.arg(node_id, "text"))),)

    def guidance(self, node_id: str) -> tuple:
        cond = self.arg(node_id, "conditioning")
        cond = cond if isinstance(cond, Cond) else Cond("")
        return (replace(cond, guidance=float(self.arg(node_id, "guidance"))),)

    def zero_out(self, node_id: str) -> tuple:
        return (Cond(""),)

    def combine(self, node_id: str) -> tuple:
        first, second = (self.arg(node_id, name) for name in ("conditioning_1", "conditioning_2"))
        texts = [c.text for c in (first, second) if isinstance(c, Cond) and c.text]
        return (Cond(" | ".join(texts), getattr(first, "guidance", None)),)

    def ksampler(self, node_id: str) -> tuple:
        advanced = self.workflow[node_id]["class_type"] == "KSamplerAdvanced"
        return (self.sample(node_id, self.arg(node_id, "model"), self.arg(node_id, "positive"),
                            self.arg(node_id, "latent_image"),
                            self.arg(node_id, "noise_seed" if advanced else "seed", 0),
                            self.arg(node_id, "steps", 20), self.arg(node_id, "cfg", 1.0),
                            self.arg(node_id, "sampler_name", "euler"), self.arg(node_id, "scheduler", "simple")),)

    def sampler_custom(self, node_id: str) -> tuple:
        """SamplerCustom (model, positive, cfg inline) and SamplerCustomAdvanced (a GUIDER)."""
        guider = self.arg(node_id, "guider")
        if not isinstance(guider, Guider):
            guider = Guider(self.arg(node_id, "model"), self.arg(node_id, "positive"),
                            float(self.arg(node_id, "cfg", 1.0)))
        noise = self.arg(node_id, "noise")
        seed = noise if isinstance(noise, int) else self.arg(node_id, "noise_seed", 0)
        sigmas = self.arg(node_id, "sigmas")
        sigmas = sigmas if isinstance(sigmas, Sigmas) else Sigmas(20, "simple")
        sampled = self.sample(node_id, guider.model, guider.positive, self.arg(node_id, "latent_image"), seed,
                              sigmas.steps, guider.cfg, self.arg(node_id, "sampler"), sigmas.scheduler)
        return (sampled, sampled)

    def guider(self, node_id: str) -> tuple:
        positive = self.arg(node_id, "conditioning") if "conditioning" in self.inputs(node_id) \
            else self.arg(node_id, "positive")
        return (Guider(self.arg(node_id, "model"), positive, float(self.arg(node_id, "cfg", 1.0))),)

    def noise(self, node_id: str) -> tuple:
        return (int(self.arg(node_id, "noise_seed", 0)),)

    def sampler_select(self, node_id: str) -> tuple:
        return (str(self.arg(node_id, "sampler_name")),)

    def scheduler(self, node_id: str) -> tuple:
        return (Sigmas(int(self.arg(node_id, "steps", 20)), str(self.arg(node_id, "scheduler", "simple"))),)

    def vae_decode(self, node_id: str) -> tuple:
        samples = self.arg(node_id, "samples")
        if isinstance(samples, Sampled):
            return (render.decode(samples),)
        size = _size(samples) or (DEFAULT_SIDE, DEFAULT_SIDE, 1)
        return (render.placeholder(size[0], size[1], f"VAEDecode (node {node_id})", size[2]),)

    def load_image(self, node_id: str) -> tuple:
        name = self.arg(node_id, "image")
        try:
            image = ImageOps.exif_transpose(Image.open(io.BytesIO(self.uploaded[name]))).convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise ExecutionError(node_id, self.workflow[node_id]["class_type"],
                                 f"cannot identify image file '{COMFY_INPUT_DIR}/{name}'") from None
        return ([image], None)

    def invert(self, node_id: str) -> tuple:
        # ComfyUI inverts float32 tensors in [0, 1] and SaveImage truncates 255 × x to 8 bits, so a
        # pixel often comes out one level below 255 − x; the same arithmetic gives the same file.
        inverted = []
        for image in self.arg(node_id, "image"):
            pixels = np.asarray(image.convert("RGB")).astype(np.float32) / 255.0
            inverted.append(Image.fromarray(np.clip(255.0 * (1.0 - pixels), 0, 255).astype(np.uint8)))
        return (inverted,)

    def scale(self, node_id: str) -> tuple:
        size = (int(self.arg(node_id, "width")), int(self.arg(node_id, "height")))
        return ([im.resize(size, Image.Resampling.BICUBIC) for im in self.arg(node_id, "image")],)

    def empty_image(self, node_id: str) -> tuple:
        color = int(self.arg(node_id, "color", 0))
        rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
        size = (int(self.arg(node_id, "width")), int(self.arg(node_id, "height")))
        return ([Image.new("RGB", size, rgb) for _ in range(int(self.arg(node_id, "batch_size", 1)))],)

    def by_definition(self, node_id: str) -> tuple:
        """A class the simulator knows only by its definition: each output from the graph."""
        node_class = self.node_class(node_id)
        linked = {name: (spec.type, self.value(value)) for name, value in self.inputs(node_id).items()
                  if is_link(value) and (spec := node_class.input(name)) is not None}
        results = []
        for index, kind in enumerate(node_class.outputs):
            name = node_class.output_names[index].lower() if index < len(node_class.output_names) else ""
            same = [value for input_name, (input_kind, value) in sorted(
                linked.items(), key=lambda item: item[0] != name) if input_kind == kind]
            if same:
                results.append(self.resized(node_id, same[0]))
            else:
                results.append(self.made(node_id, node_class, kind, linked))
        return tuple(results)

    def resized(self, node_id: str, value: object) -> object:
        """A passed-through image or latent at the width and height the node asks for, if any."""
        widgets = self.inputs(node_id)
        if not all(isinstance(widgets.get(k), int) and not isinstance(widgets.get(k), bool)
                   for k in ("width", "height")) or min(widgets["width"], widgets["height"]) <= 0:
            return value
        size = (widgets["width"], widgets["height"])
        if isinstance(value, Sampled):
            return replace(value, latent=Latent(*size, value.batch))
        if isinstance(value, Latent):
            return Latent(*size, value.batch)
        if isinstance(value, list) and _size(value):
            return [im.resize(size, Image.Resampling.BICUBIC) for im in value]
        return value

    def made(self, node_id: str, node_class: NodeClass, kind: str, linked: Mapping) -> object:
        """An output no input of the same type provides, made from the node's widgets and links."""
        size = self.size(node_id, linked)
        if kind == "IMAGE":
            return render.placeholder(size[0], size[1], f"{node_class.name} (node {node_id})", size[2])
        if kind == "LATENT":
            return Latent(*size)
        if kind == "MODEL":
            return Model(node_class.name, "sdxl")
        if kind == "CONDITIONING":
            return Cond("")
        if kind in ("STRING", "INT", "FLOAT", "BOOLEAN"):
            widgets = self.inputs(node_id)
            return widgets.get("value", next((v for v in widgets.values() if not is_link(v)), None))
        return node_class.name

    def size(self, node_id: str, linked: Mapping) -> tuple[int, int, int]:
        """(width, height, batch) from the node's own widgets, else from its linked images or latents."""
        widgets = self.inputs(node_id)
        batch = widgets.get("batch_size", widgets.get("amount", 1))
        batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else 1
        if all(isinstance(widgets.get(k), (int, float)) for k in ("width", "height")):
            return int(widgets["width"]), int(widgets["height"]), batch
        for _, value in linked.values():
            found = _size(value)
            if found:
                return found
        return DEFAULT_SIDE, DEFAULT_SIDE, batch

    # ------------------------------------------------------------------ sampling

    def sample(self, node_id: str, model, positive, latent, seed, steps, cfg, sampler, scheduler) -> Sampled:
        class_type = self.workflow[node_id]["class_type"]
        model = model if isinstance(model, Model) else Model("unknown model", "sdxl")
        size = _size(latent) or (1024, 1024, 1)
        latent = Latent(*size)
        steps = int(steps)
        family = FAMILIES[model.family]
        megapixels = latent.width * latent.height * latent.batch / 1e6
        if megapixels > family.max_batch_mp:
            # ComfyUI's wording for a torch OOM (execution.py appends these tips).
            self.ctx.sleep(family.fixed_s)
            raise ExecutionError(node_id, class_type, (
                f"CUDA out of memory. Tried to allocate {megapixels * 0.9:.2f} GiB. GPU 0 has a total "
                f"capacity of 23.55 GiB of which 1.12 GiB is free.\nThis error means you ran out of "
                f"memory on your GPU.\n\nTIPS: If the workflow worked before you might have "
                f"accidentally set the batch_size to a large number."))
        seconds = family.fixed_s + family.step_mp_s * steps * megapixels
        updates = max(1, min(PROGRESS_UPDATES, steps))
        for i in range(1, updates + 1):
            self.ctx.sleep(seconds / updates)
            self.ctx.progress({"step": round(steps * i / updates), "total": steps})
        return Sampled(model, positive if isinstance(positive, Cond) else Cond(""), latent, int(seed), steps,
                       float(cfg), str(sampler), str(scheduler))


def _size(value: object) -> tuple[int, int, int] | None:
    """(width, height, batch) of a LATENT or IMAGE value, if it has one."""
    if isinstance(value, (Latent, Sampled)):
        return value.width, value.height, value.batch
    if isinstance(value, list) and value and isinstance(value[0], Image.Image):
        return value[0].width, value[0].height, len(value)
    return None


_SIMULATED = {
    "CheckpointLoaderSimple": Run.load_model, "UNETLoader": Run.load_model,
    "LoraLoader": Run.lora, "LoraLoaderModelOnly": Run.lora,
    "CLIPTextEncode": Run.text, "FluxGuidance": Run.guidance, "ConditioningZeroOut": Run.zero_out,
    "ConditioningCombine": Run.combine,
    "KSampler": Run.ksampler, "KSamplerAdvanced": Run.ksampler,
    "SamplerCustom": Run.sampler_custom, "SamplerCustomAdvanced": Run.sampler_custom,
    "BasicGuider": Run.guider, "CFGGuider": Run.guider, "RandomNoise": Run.noise,
    "KSamplerSelect": Run.sampler_select, "BasicScheduler": Run.scheduler,
    "VAEDecode": Run.vae_decode, "LoadImage": Run.load_image, "ImageInvert": Run.invert,
    "ImageScale": Run.scale, "EmptyImage": Run.empty_image,
}
