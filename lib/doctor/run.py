"""Run the connection check for a running console (its services) or from settings alone."""
from __future__ import annotations

from typing import TYPE_CHECKING

from lib.config import ConsoleConfig, Settings
from lib.doctor import Report, check
from lib.runpod import RunPod
from lib.volume import VolumeError, volume_from_settings

if TYPE_CHECKING:
    from lib.services import Services


def report_for_services(services: Services) -> Report:
    """The check as the running console sees the account (simulator or RunPod)."""
    return check(services.settings, services.config, services.client, services.volume,
                 backend=services.backend_label, simulated=services.simulated)


def report_from_settings(settings: Settings) -> Report:
    """The check without a running console: on the simulator when no key is set, like the console."""
    config = ConsoleConfig.load(settings.config_path)
    if settings.uses_simulator:
        from lib.services import build_services

        services = build_services(settings, start_tracker=False, config=config)
        try:
            return report_for_services(services)
        finally:
            services.close()
    client = RunPod.from_settings(settings)
    try:
        try:
            volume, problem = volume_from_settings(settings, config, local_root=None), ""
        except VolumeError as exc:
            volume, problem = None, str(exc)
        return check(settings, config, client, volume, volume_problem=problem)
    finally:
        client.close()
