"""The `basic` handler: a configurable stand-in worker for every role without its own handler.

Input (all optional):
  sleep_ms        real milliseconds of "work" (unscaled)
  echo            any value, returned as output["echo"]
  fail            "msg"  -> returns {"error": msg}  (job FAILED with that error)
  raise           "msg"  -> raises RuntimeError(msg) (job FAILED with the SDK's JSON error report)
  progress_steps  n      -> n progress updates {"progress": "i/n"} spread over sleep_ms
  stream          [chunks] -> yields each chunk (spread over sleep_ms); output = the list
Output: {"echo": <echo>, "worker_id": <worker id>}.
"""
from __future__ import annotations

from lib.localpod.handlers import JobContext, register


@register("basic")
def handle(job: dict, ctx: JobContext):
    spec = job.get("input")
    if not isinstance(spec, dict):
        raise ValueError("the basic handler expects `input` to be an object, "
                         f"got {type(spec).__name__}")
    sleep_s = max(0.0, float(spec.get("sleep_ms", 0))) / 1000.0
    if "stream" in spec:
        return _stream(list(spec["stream"]), sleep_s, ctx)
    steps = int(spec.get("progress_steps", 0))
    if steps > 0:
        for step in range(steps):
            ctx.progress({"progress": f"{step}/{steps}"})
            ctx.sleep_real(sleep_s / steps)
    else:
        ctx.sleep_real(sleep_s)
    if spec.get("fail"):
        return {"error": str(spec["fail"])}
    if spec.get("raise"):
        raise RuntimeError(str(spec["raise"]))
    return {"echo": spec.get("echo"), "worker_id": ctx.worker_id}


def _stream(chunks: list, sleep_s: float, ctx: JobContext):
    for chunk in chunks:
        ctx.sleep_real(sleep_s / len(chunks))
        yield chunk
