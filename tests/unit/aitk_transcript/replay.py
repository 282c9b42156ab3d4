"""Replays a recorded AI Toolkit run in place of run.py: `python replay.py TRANSCRIPT CONFIG.yaml`.

The transcript (one directive per line) holds what AI Toolkit 0.12.26 prints and writes, composed
from its own code (see ava_10_steps.txt). Directives:
  out "<json string>" / err "<json string>"   write to stdout / stderr, as the trainer does
  db <step> <loss>        commit one step to loss_log.db the way AI Toolkit's UI logger does
  file <path>             write a file under the run folder (a checkpoint or a sample)
  rm <path>               delete one (AI Toolkit pruning an old checkpoint)
  wait                    let the worker poll (50 ms)
  mark <label>            stop here and wait to be killed when REPLAY_HOLD_AT=<label>
"{run}" in any text is the run folder (<training_folder>/<name>), "{dataset}" the dataset folder.
"""
from __future__ import annotations

import json
import os
import shlex
import sqlite3
import sys
import time
from pathlib import Path

import yaml


def open_loss_log(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL;")
    con.execute("CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, wall_time REAL NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS metric_keys (key TEXT PRIMARY KEY, first_seen_step INTEGER, "
                "last_seen_step INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS metrics (step INTEGER NOT NULL, key TEXT NOT NULL, value_real REAL, "
                "value_text TEXT, PRIMARY KEY (step, key), FOREIGN KEY (step) REFERENCES steps(step) "
                "ON DELETE CASCADE)")
    con.execute("CREATE INDEX IF NOT EXISTS idx_metrics_key_step ON metrics (key, step)")
    return con


def commit(con: sqlite3.Connection, step: int, values: dict[str, float]) -> None:
    con.execute("BEGIN")
    con.execute("INSERT INTO steps(step, wall_time) VALUES (?, ?) ON CONFLICT(step) DO UPDATE SET "
                "wall_time = excluded.wall_time", (step, time.time()))
    for key, value in values.items():
        con.execute("INSERT INTO metric_keys VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "last_seen_step = MAX(last_seen_step, excluded.last_seen_step)", (key, step, step))
        con.execute("INSERT INTO metrics VALUES (?, ?, ?, NULL) ON CONFLICT(step, key) DO UPDATE SET "
                    "value_real = excluded.value_real", (step, key, value))
    con.execute("COMMIT")


def main(transcript: Path, config_path: Path) -> int:
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    proc = config["config"]["process"][0]
    run = Path(proc["training_folder"]) / config["config"]["name"]
    run.mkdir(parents=True, exist_ok=True)
    places = {"{run}": str(run), "{dataset}": proc["datasets"][0]["folder_path"]}

    def fill(text: str) -> str:
        for key, value in places.items():
            text = text.replace(key, value)
        return text

    con = open_loss_log(run / "loss_log.db")
    for line in transcript.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        if verb in ("out", "err"):
            stream = sys.stdout if verb == "out" else sys.stderr
            stream.write(fill(json.loads(rest)))
            stream.flush()
        elif verb == "db":
            step, loss = rest.split()
            commit(con, int(step), {"learning_rate": 1e-4, "loss/loss": float(loss)})
        elif verb == "file":
            path = run / fill(shlex.split(rest)[0])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(b"recorded " + path.name.encode())
            os.replace(tmp, path)
        elif verb == "rm":
            (run / fill(rest.strip())).unlink()
        elif verb == "wait":
            time.sleep(0.05)
        elif verb == "mark" and os.environ.get("REPLAY_HOLD_AT") == rest.strip():
            time.sleep(60)
        elif verb != "mark":
            raise SystemExit(f"unknown directive {verb!r}")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
