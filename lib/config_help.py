"""What the configuration-error page and the "not configured" notes show, without streamlit:
the README's configuration reference and the plain-words description of a ConfigError."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lib.config import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"
REFERENCE_HEADING = "## Configuration reference"


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    what: str           # the whole message: file, line, what is wrong, what to do
    fix: str            # what to write instead (TOML or a sentence)

    @property
    def fix_is_toml(self) -> bool:
        return re.match(r"\s*(\[|[\w.]+\s*=)", self.fix) is not None


def describe(exc: ConfigError, config_path: Path | str) -> ConfigProblem:
    return ConfigProblem(file=exc.path or str(config_path), line=exc.line, what=str(exc), fix=exc.fix)


def reference_section(readme: Path = README) -> str:
    """The README's "Configuration reference" section (markdown), or "" when it cannot be read."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return ""
    start = text.find(REFERENCE_HEADING)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(REFERENCE_HEADING))
    return text[start:end if end >= 0 else len(text)].strip()
