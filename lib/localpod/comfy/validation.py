"""ComfyUI's `POST /prompt` validation (execution.py validate_prompt / validate_inputs), from the node
definitions of a real server (nodes.py).

The answer has ComfyUI's shapes (reference worker-contracts §1.9): a 400 body
`{"error": {type, message, details, extra_info}, "node_errors": {node id: {errors, dependent_outputs,
class_type}}}` with the reasons ComfyUI gives — invalid_prompt, prompt_no_outputs,
prompt_outputs_failed_validation; per input required_input_missing, bad_linked_input,
return_type_mismatch, invalid_input_type, value_smaller_than_min, value_bigger_than_max,
value_not_in_list, custom_validation_failed, and the exception_during_(inner_)validation of a link to
a node or output slot that does not exist.

Order: ComfyUI walks a node's inputs as a Python set, whose order changes with each process's hash
seed, so the order of `node_errors` is not fixed on a real server. The simulator fixes one: input
names in reverse alphabetical order, which gives the order observed from the real worker (§1.9: the
CLIPLoader's error before the UNETLoader's in the Z-Image graph).
"""
from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from lib.localpod.comfy.nodes import IMAGE_INPUT_CLASSES, InputSpec, NodeClass, Server

LIST_LIMIT = 20   # longer lists are not sent back ("Don't send back gigantic lists", execution.py)


def validate_prompt(prompt: Mapping, server: Server) -> tuple[list[str], dict | None]:
    """(outputs that validated, the 400 body or None) for one prompt.

    When some outputs validate, ComfyUI runs those and answers 200 (with node_errors for the others,
    which worker-comfyui does not read).
    """
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            return [], _rejection(_invalid_prompt(
                "Cannot execute because a node is missing the class_type property.", node_id))
        node_class = server.classes.get(node["class_type"]) if isinstance(node["class_type"], str) else None
        if node_class is None:
            return [], _rejection(_invalid_prompt(
                f"Cannot execute because node {node['class_type']} does not exist.", node_id))
        if node_class.output_node:
            outputs.append(node_id)
    if not outputs:
        return [], _rejection({"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                               "details": "", "extra_info": {}})
    checker = _Inputs(prompt, server)
    good, failed = [], []
    node_errors: dict[str, dict[str, Any]] = {}
    for output in outputs:
        try:
            valid, reasons = checker.check(output)
        except Exception as exc:  # noqa: BLE001 — ComfyUI turns any exception into this reason
            valid, reasons = False, [{"type": "exception_during_validation",
                                      "message": "Exception when validating node", "details": str(exc),
                                      "extra_info": {"exception_type": _type_name(exc),
                                                     "traceback": _frames(exc)}}]
            checker.validated[output] = (False, reasons)
        if valid:
            good.append(output)
            continue
        failed.append(reasons)
        # Every failing node seen so far is attached to this output; nodes that are invalid only
        # because something upstream is carry no reasons and are left out.
        for node_id, (ok, node_reasons) in checker.validated.items():
            if not ok and node_reasons:
                entry = node_errors.setdefault(node_id, {"errors": node_reasons, "dependent_outputs": [],
                                                         "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{r['message']}: {r['details']}" for reasons in failed for r in reasons)
        error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                 "details": details, "extra_info": {}}
        return [], {"error": error, "node_errors": node_errors}
    return good, None


def _rejection(error: dict) -> dict:
    return {"error": error, "node_errors": {}}


def _invalid_prompt(message: str, node_id: str) -> dict:
    return {"type": "invalid_prompt", "message": message, "details": f"Node ID '#{node_id}'",
            "extra_info": {}}


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _frames(exc: BaseException) -> list[str]:
    """The traceback as ComfyUI sends it (traceback.format_tb); the frames are the simulator's own."""
    return traceback.format_tb(exc.__traceback__)


def types_match(received: object, expected: object) -> bool:
    """ComfyUI's validate_node_input: equal, or sharing one of comma-separated types; "*" is any."""
    if isinstance(expected, list):
        expected = "COMBO"       # a list input takes a link only from a COMBO output
    if received == expected or "*" in (received, expected):
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


class _Inputs:
    """validate_inputs for every node reached from the outputs, memoised in `validated`."""

    def __init__(self, prompt: Mapping, server: Server):
        self.prompt = prompt
        self.server = server
        self.validated: dict[str, tuple[bool, list]] = {}

    def check(self, node_id: str) -> tuple[bool, list]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        node_class = self.server.classes[class_type]
        errors: list[dict] = []
        valid = True
        for spec in sorted(node_class.inputs, key=lambda s: s.name, reverse=True):
            name = spec.name
            if name not in inputs:
                if spec.required:
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": name, "extra_info": {"input_name": name}})
                continue
            value = inputs[name]
            if isinstance(value, list):
                reason, upstream_ok = self._link(node_class, spec, value)
                if reason is not None:
                    errors.append(reason)
                valid = valid and upstream_ok
                continue
            reason = self._widget(node_class, spec, value)
            if reason is not None:
                errors.append(reason)
        errors += self._custom(node_class, inputs)
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result

    def _link(self, node_class: NodeClass, spec: InputSpec, link: list) -> tuple[dict | None, bool]:
        """(reason on this node or None, whether the linked node validated)."""
        name = spec.name
        config = spec.config(self.server.choices(node_class.name, spec))
        if len(link) != 2:
            return {"type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": config, "received_value": link}}, True
        source_id, slot = link
        # Unguarded lookups, as in ComfyUI: a missing node or slot raises, and the caller's
        # exception handler turns it into the exception_during_(inner_)validation reason.
        received = self.server.classes[self.prompt[source_id]["class_type"]].outputs[slot]
        if not types_match(received, spec.type):
            return {"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({received}) mismatch input_type({_type_label(spec)})",
                    "extra_info": {"input_name": name, "input_config": config, "received_type": received,
                                   "linked_node": link}}, True
        try:
            ok, _ = self.check(source_id)
        except Exception as exc:  # noqa: BLE001 — ComfyUI records any exception on the linked node
            self.validated[source_id] = (False, [{
                "type": "exception_during_inner_validation", "message": "Exception when validating inner node",
                "details": str(exc),
                "extra_info": {"input_name": name, "input_config": config, "exception_message": str(exc),
                               "exception_type": _type_name(exc), "traceback": _frames(exc),
                               "linked_node": link}}])
            return None, False
        return None, ok

    def _widget(self, node_class: NodeClass, spec: InputSpec, value: object) -> dict | None:
        name = spec.name
        choices = self.server.choices(node_class.name, spec)
        config = spec.config(choices)
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
        convert = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(spec.type) \
            if isinstance(spec.type, str) else None
        if convert is not None:
            try:
                value = convert(value)
            except Exception as exc:  # noqa: BLE001 — int()/float() raise ValueError or TypeError
                return {"type": "invalid_input_type",
                        "message": f"Failed to convert an input value to a {spec.type} value",
                        "details": f"{name}, {value}, {exc}",
                        "extra_info": {"input_name": name, "input_config": config, "received_value": value,
                                       "exception_message": str(exc)}}
        if _custom_validated(node_class, name):
            return None
        limits = spec.options
        if "min" in limits and value < limits["min"]:
            return {"type": "value_smaller_than_min",
                    "message": f"Value {value} smaller than min of {limits['min']}", "details": name,
                    "extra_info": {"input_name": name, "input_config": config, "received_value": value}}
        if "max" in limits and value > limits["max"]:
            return {"type": "value_bigger_than_max",
                    "message": f"Value {value} bigger than max of {limits['max']}", "details": name,
                    "extra_info": {"input_name": name, "input_config": config, "received_value": value}}
        if choices is not None and value not in choices:
            long_list = len(choices) > LIST_LIMIT
            listed = f"(list of length {len(choices)})" if long_list else str(choices)
            return {"type": "value_not_in_list", "message": "Value not in list",
                    "details": f"{name}: '{value}' not in {listed}",
                    "extra_info": {"input_name": name, "input_config": None if long_list else config,
                                   "received_value": value}}
        return None

    def _custom(self, node_class: NodeClass, inputs: Mapping) -> list[dict]:
        """The node's own VALIDATE_INPUTS: LoadImage checks that its file is in ComfyUI's input folder."""
        if node_class.name not in IMAGE_INPUT_CLASSES:
            return []
        value = inputs.get("image")
        if value is None or isinstance(value, list) or value in self.server.uploaded:
            return []
        spec = node_class.input("image")
        assert spec is not None  # every class in IMAGE_INPUT_CLASSES has an `image` input
        return [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                 "details": f"image - Invalid image file: {value}",
                 "extra_info": {"input_name": "image",
                                "input_config": spec.config(self.server.choices(node_class.name, spec)),
                                "received_value": value}}]


def _custom_validated(node_class: NodeClass, input_name: str) -> bool:
    """Inputs a node validates itself are skipped by the generic min/max and list checks."""
    return node_class.name in IMAGE_INPUT_CLASSES and input_name == "image"


def _type_label(spec: InputSpec) -> object:
    return "COMBO" if isinstance(spec.type, list) else spec.type
