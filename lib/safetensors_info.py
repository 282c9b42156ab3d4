"""What a .safetensors file holds, read from its header alone: the format is an 8-byte little-endian
header length, then a JSON object naming each tensor's dtype, shape and data_offsets, plus an optional
"__metadata__" object of strings (where trainers write the base model)."""
from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit on the header


class NotSafetensors(ValueError):
    """The bytes are not a readable safetensors file; the message says why."""


@dataclass(frozen=True)
class SafetensorsInfo:
    size: int
    tensors: int
    dtypes: dict[str, int]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def dtype_text(self) -> str:
        return ", ".join(f"{dtype} ×{count:,}" for dtype, count in sorted(self.dtypes.items()))


def header_length(first8: bytes) -> int:
    if len(first8) < 8:
        raise NotSafetensors("the file is shorter than a safetensors header (8 bytes)")
    (length,) = struct.unpack("<Q", first8[:8])
    if length <= 1 or length > MAX_HEADER_BYTES:
        raise NotSafetensors("its first 8 bytes do not give a plausible header length")
    return length


def parse(head: bytes, size: int) -> SafetensorsInfo:
    """`head` holds at least the first 8 + header-length bytes of a file of `size` bytes."""
    length = header_length(head)
    if 8 + length > size or len(head) < 8 + length:
        raise NotSafetensors("the header runs past the end of the file (truncated upload?)")
    try:
        header = json.loads(head[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NotSafetensors("the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise NotSafetensors("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_bytes = size - 8 - length
    dtypes: Counter = Counter()
    for name, tensor in header.items():
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if (not isinstance(tensor, dict) or not isinstance(tensor.get("dtype"), str)
                or not isinstance(tensor.get("shape"), list) or not isinstance(offsets, list) or len(offsets) != 2):
            raise NotSafetensors(f"tensor {name!r} has no dtype, shape and data_offsets")
        if not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1] <= data_bytes:
            raise NotSafetensors(f"tensor {name!r} points outside the file (truncated upload?)")
        dtypes[tensor["dtype"]] += 1
    if not dtypes:
        raise NotSafetensors("the header lists no tensors")
    return SafetensorsInfo(size=size, tensors=sum(dtypes.values()), dtypes=dict(dtypes),
                           metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {})
