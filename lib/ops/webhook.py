"""Delivery of alert state changes to a Slack-compatible incoming webhook: POST {"text": ...}.

Incoming-webhook URLs carry their token in the path, so the URL is kept in a Secret and never
appears in messages or the delivery log; only its host does.
"""
from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from lib.config import ConfigError, ConsoleConfig, Secret
from lib.ops.alert_history import DeliveryAttempt
from lib.ops.alerts import AlertEvent

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    attempts: tuple[DeliveryAttempt, ...]

    @property
    def error(self) -> str | None:
        return None if self.ok or not self.attempts else self.attempts[-1].error


def webhook_url(config: ConsoleConfig) -> Secret | None:
    """[alerts_webhook] url from console.toml, or None when alerts are not delivered anywhere."""
    table = config.raw.get("alerts_webhook")
    if table is None:
        return None
    where = str(config.path or "console.toml")
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise ConfigError(f"{where}: [alerts_webhook] needs url = \"https://...\" (a Slack-compatible "
                          f"incoming webhook)")
    url = table["url"].strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: [alerts_webhook] url must be an http(s) URL")
    return Secret(url)


class WebhookNotifier:
    def __init__(self, url: Secret | str, *, client: httpx.Client | None = None, attempts: int = 4,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0, timeout_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._url = url if isinstance(url, Secret) else Secret(url)
        self.host = urlsplit(self._url.reveal()).netloc
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={self.host!r})"

    def deliver(self, event: AlertEvent, on_attempt: Callable[[DeliveryAttempt], None] | None = None
                ) -> DeliveryResult:
        return self.send(event.text(), event_id=event.id, on_attempt=on_attempt)

    def send(self, text: str, *, event_id: int | None = None,
             on_attempt: Callable[[DeliveryAttempt], None] | None = None) -> DeliveryResult:
        """POST {"text": text}; retried on network errors, 408/425/429 and 5xx with backoff."""
        done: list[DeliveryAttempt] = []
        for n in range(1, self.attempts + 1):
            wait, status, error = None, None, None
            try:
                response = self._client.post(self._url.reveal(), json={"text": text})
            except httpx.TransportError as exc:
                error = f"no answer from {self.host}: {type(exc).__name__}"
                retry = True
            else:
                status = response.status_code
                response.close()
                retry = status in _RETRY_STATUS
                if not response.is_success:
                    error = f"{self.host} answered HTTP {status}"
                    wait = _retry_after(response.headers.get("retry-after"))
            attempt = DeliveryAttempt(event_id, n, self._clock(), error is None, status, error)
            done.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.ok:
                return DeliveryResult(True, tuple(done))
            if not retry or n == self.attempts:
                break
            backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (n - 1)) * (0.75 + random.random() / 2)
            self._sleep(min(self.max_backoff_s, wait) if wait is not None else backoff)
        return DeliveryResult(False, tuple(done))

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
