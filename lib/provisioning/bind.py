"""Write the ids RunPod gave to new (or name-matched) resources into console.toml.

Only the `id = "…"` line of the one table changes; comments, order and every other value stay as
the operator wrote them. The result is parsed again before it replaces the file, and written
atomically, so a failure leaves the old file intact.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tomllib
from pathlib import Path

from lib.errors import ConsoleError

_HEADER = re.compile(r"^\s*\[(?!\[)([^\]]+)\]\s*(#.*)?$")
_ID_LINE = re.compile(r"^(\s*id\s*=\s*)(\"[^\"]*\"|'[^']*')(.*)$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class BindError(ConsoleError):
    """console.toml could not be updated; the message says which id to write by hand."""


def _table(header: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in header.split("."))


def write_id(path: Path, table: tuple[str, ...], new_id: str) -> None:
    """Set `id` of [table] (e.g. ("endpoints", "image") or ("volume",)) to new_id in console.toml."""
    where = "[" + ".".join(table) + "]"
    by_hand = f"set id = \"{new_id}\" under {where} in {path} yourself"
    if not _SAFE_ID.match(new_id):
        raise BindError(f"RunPod answered with an unusual id {new_id!r}; not written to console.toml — check it "
                        f"in RunPod's console and {by_hand}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BindError(f"cannot read {path} ({exc.strerror}); {by_hand}") from None
    lines = text.splitlines(keepends=True)
    current: tuple[str, ...] | None = None
    header_at = id_at = None
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            current = _table(header.group(1))
            if current == table:
                header_at = i
            continue
        if current == table and id_at is None and _ID_LINE.match(line):
            id_at = i
    if header_at is None:
        raise BindError(f"{path} has no {where} table; {by_hand}")
    value = json.dumps(new_id)
    if id_at is not None:
        m = _ID_LINE.match(lines[id_at].rstrip("\r\n"))
        assert m is not None  # id_at is the line _ID_LINE matched above
        ending = lines[id_at][len(lines[id_at].rstrip("\r\n")):]
        lines[id_at] = f"{m.group(1)}{value}{m.group(3)}{ending}"
    else:
        lines.insert(header_at + 1, f"id = {value}\n")
    updated = "".join(lines)
    try:
        before, after = tomllib.loads(text), tomllib.loads(updated)
    except tomllib.TOMLDecodeError as exc:
        raise BindError(f"{path} does not parse ({exc}); {by_hand}") from None
    node = after
    for part in table:
        node = node[part]
    if node.get("id") != new_id or _without_id(before, table) != _without_id(after, table):
        raise BindError(f"updating {where} in {path} would change more than its id; {by_hand}")
    tmp = Path(path).with_name(f".{Path(path).name}.provisioning.tmp")
    try:
        tmp.write_text(updated, encoding="utf-8")
        if Path(path).exists():
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise BindError(f"cannot write {path} ({exc.strerror}); {by_hand}") from None


def _without_id(data: dict, table: tuple[str, ...]) -> dict:
    copy = json.loads(json.dumps(data, default=str))
    node = copy
    for part in table:
        node = node.get(part, {})
    node.pop("id", None)
    return copy
