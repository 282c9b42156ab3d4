"""The connection check against a doc-exact RunPod stand-in, healthy and with each fault injected,
and against the local simulator."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lib.config import Settings
from lib.doctor import OK, PROBLEM
from lib.doctor.run import report_from_settings
from tests.realpod.conftest import IDS, VOLUME, minimal_config, put_required_models
from tests.standin import StandIn, standard_account

ROOT = Path(__file__).resolve().parents[2]


def settings_for(pod, config_path, tmp_path, **env_changes) -> Settings:
    env = {**pod.console_env(**env_changes), "CONSOLE_CONFIG": str(config_path), "CONSOLE_DATA": str(tmp_path)}
    return Settings.from_env(env)


def finding(report, topic):
    return next(f for f in report.findings if f.topic == topic)


def test_a_healthy_account_passes_every_check(standin, write_config, tmp_path):
    report = report_from_settings(settings_for(standin, write_config(minimal_config()), tmp_path))
    assert report.ok, [(f.topic, f.found) for f in report.problems]
    assert finding(report, "image job queue").found.startswith("job API answers: 3 in queue")
    assert finding(report, "training CUDA").status == OK
    assert finding(report, "network volume").status == OK


def test_the_command_line_exits_0_when_usable_and_1_with_a_bad_key(standin, write_config, tmp_path):
    path = write_config(minimal_config())
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env = {**base, **standin.console_env(), "CONSOLE_CONFIG": str(path), "CONSOLE_DATA": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    good = subprocess.run([sys.executable, "-m", "lib.doctor"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "All checks passed." in good.stdout
    env["RUNPOD_API_KEY"] = "rpa_WRONGKEY0000000000000000000"
    bad = subprocess.run([sys.executable, "-m", "lib.doctor"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert bad.returncode == 1
    assert "PROBLEM  API key: RunPod rejected the API key" in bad.stdout
    assert "rpa_WRONGKEY" not in bad.stdout + bad.stderr


def test_bad_key(standin, write_config, tmp_path):
    report = report_from_settings(settings_for(standin, write_config(minimal_config()), tmp_path,
                                               api_key="rpa_WRONGKEY0000000000000000000"))
    key = finding(report, "API key")
    assert key.status == PROBLEM and "Settings → API Keys" in key.todo
    assert finding(report, "image endpoint").status == "skipped"


def test_unknown_endpoint_id(standin, write_config, tmp_path):
    report = report_from_settings(settings_for(
        standin, write_config(minimal_config(ids={"image": "ep-typo"})), tmp_path))
    image = finding(report, "image endpoint")
    assert image.status == PROBLEM and "no endpoint with id ep-typo" in image.found
    assert IDS["image"] in image.found, "the ids the account does have are listed"
    assert finding(report, "training endpoint").status == OK


def test_wrong_datacenter(write_config, tmp_path):
    with StandIn(standard_account(IDS, "vol-elsewhere", datacenter="US-KS-2")) as pod:
        put_required_models(pod, "vol-elsewhere")
        report = report_from_settings(settings_for(pod, write_config(minimal_config(volume="vol-elsewhere")),
                                                   tmp_path))
    volume = finding(report, "network volume")
    assert volume.status == PROBLEM and "is in US-KS-2" in volume.found
    assert 'datacenter = "US-KS-2"' in volume.todo
    assert finding(report, "image GPU pools").status == PROBLEM  # workers start where the volume is not declared


def test_s3_key_refused(standin, write_config, tmp_path):
    report = report_from_settings(settings_for(standin, write_config(minimal_config()), tmp_path,
                                               s3_access_key="user_someoneelse"))
    s3 = finding(report, "S3 access to the volume")
    assert s3.status == PROBLEM and "refused" in s3.found
    assert finding(report, "image models").status == "skipped"
    assert standin.account.s3_secret_key not in s3.found + s3.todo


def test_missing_models_and_an_unmounted_volume(write_config, tmp_path):
    account = standard_account(IDS, "vol-empty")
    account.endpoints[IDS["special"]]["networkVolumes"] = []
    with StandIn(account) as pod:
        report = report_from_settings(settings_for(pod, write_config(minimal_config(volume="vol-empty")), tmp_path))
    assert finding(report, "special volume mount").status == PROBLEM
    models = finding(report, "image models")
    assert models.status == PROBLEM and "missing" in models.found and "Provisioning" in models.todo


def test_the_simulator_is_all_ok(tmp_path):
    config = tmp_path / "console.toml"
    config.write_text((ROOT / "console.toml").read_text(encoding="utf-8"), encoding="utf-8")
    report = report_from_settings(Settings.from_env({"CONSOLE_CONFIG": str(config), "CONSOLE_DATA": str(tmp_path)}))
    assert report.ok, [(f.topic, f.found) for f in report.problems]
    assert report.backend == "local RunPod simulator"
