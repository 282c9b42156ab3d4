"""The simulator stands alone: no module of lib/localpod imports the console's code (DESIGN.md).

A double that shares the console's assumptions cannot catch the console's mistakes. Allowed:
the standard library, third-party packages, lib.localpod itself, and `workers` — the project's own
worker code, which the simulated training endpoint runs as RunPod would.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lib" / "localpod"
CONSOLE_TOP_LEVEL = {"lib", "pages", "app", "tests", "bench", "scripts"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def console_imports(package: Path) -> list[str]:
    offences = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            own = module == "lib.localpod" or module.startswith("lib.localpod.")
            if top in CONSOLE_TOP_LEVEL and not own:
                offences.append(f"{path.relative_to(package).as_posix()}:{line} imports {module}")
    return offences


def test_no_module_of_the_simulator_imports_the_console():
    assert console_imports(PACKAGE) == []


def test_the_check_catches_a_console_import(tmp_path):
    package = tmp_path / "lib" / "localpod"
    package.mkdir(parents=True)
    (package / "ok.py").write_text("import json\nfrom lib.localpod.models import Job\nimport workers\n")
    (package / "bad.py").write_text("def f():\n    from lib.workflows.graph import is_link\n"
                                    "import lib.config\n")
    assert sorted(console_imports(package)) == ["bad.py:2 imports lib.workflows.graph", "bad.py:3 imports lib.config"]


def test_the_simulator_starts_without_the_console_loaded(tmp_path):
    """Importing and building the simulator loads no console module."""
    import subprocess
    code = ("import sys; import lib.localpod.server, lib.localpod.handlers; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lib', 'pages', 'app') "
            "and m != 'lib' and not m.startswith('lib.localpod')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
