"""`python -m lib.doctor`: the connection check on the command line; exit 0 when usable, 1 when not."""
from __future__ import annotations

import sys

from lib.doctor.run import report_from_settings
from lib.config import ConfigError, Settings

MARKS = {"ok": "ok     ", "problem": "PROBLEM", "skipped": "skipped"}


def main() -> int:
    settings = Settings.from_env()
    try:
        report = report_from_settings(settings)
    except ConfigError as exc:
        print(f"PROBLEM  {settings.config_path}: {exc}")
        if exc.fix:
            print(f"         what to write instead: {exc.fix}")
        print("         see README.md → Configuration reference")
        return 1
    print(f"Connection check against {report.backend}")
    for f in report.findings:
        print(f"{MARKS[f.status]}  {f.topic}: {f.found}")
        if f.todo and f.status != "ok":
            print(f"         → {f.todo}")
    print("All checks passed." if report.ok else f"{len(report.problems)} problem(s).")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
