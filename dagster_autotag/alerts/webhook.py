"""Alerts as JSON POSTs to the webhook in AUTOTAG_ALERT_WEBHOOK (Slack/Teams/Feishu relays, PagerDuty
bridges, an in-house receiver...). Nothing is sent when it is unset.

Body: `{"what", "partition", "run", "severity", "details", "sent_at"}`; `run` links the Dagster run
(AUTOTAG_UI_URL, default http://127.0.0.1:3000, + /runs/<id>) or is null.
The URL often embeds a token, so it is never logged, never put into an error message, and never part
of the body. A failed delivery is logged and reported back, never raised: an alert must not fail the
asset or sensor that raises it. Standard library only (urllib): one POST needs no HTTP client package.
"""

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

WEBHOOK_ENV = "AUTOTAG_ALERT_WEBHOOK"
UI_URL_ENV = "AUTOTAG_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    what: str  # one line a person reads first: "run failed: ingest_to_publish", "label drift ERROR"
    partition: str | None = None
    run_id: str | None = None
    severity: str = "ERROR"
    details: dict = field(default_factory=dict)


def run_url(run_id: str | None, ui_url: str | None = None) -> str | None:
    if not run_id:
        return None
    base = (ui_url or os.environ.get(UI_URL_ENV) or DEFAULT_UI_URL).rstrip("/")
    return f"{base}/runs/{run_id}"


def alert_body(alert: Alert, now: datetime | None = None) -> dict:
    return {
        "what": alert.what,
        "partition": alert.partition,
        "run": run_url(alert.run_id),
        "severity": alert.severity,
        "details": alert.details,
        "sent_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }


def webhook_configured() -> bool:
    return bool(os.environ.get(WEBHOOK_ENV, "").strip())


def send_alert(alert: Alert, url: str | None = None, timeout_s: float = TIMEOUT_S) -> str:
    """POST the alert; returns what happened ("sent", "not configured", "failed: …") for the caller's log.
    `url`: default $AUTOTAG_ALERT_WEBHOOK, read at call time."""
    url = (url or os.environ.get(WEBHOOK_ENV, "")).strip()
    if not url:
        return "not configured"
    body = json.dumps(alert_body(alert), ensure_ascii=False, default=str).encode("utf-8")
    try:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
        outcome = "sent"
    except urllib.error.HTTPError as err:  # its str() holds no URL; err.url would
        outcome = f"failed: HTTP {err.code}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        outcome = f"failed: {_reason(err)}"
    if outcome != "sent":
        log.warning("alert %r not delivered to the %s webhook (%s)", alert.what, WEBHOOK_ENV, outcome)
    return outcome


def _reason(err: Exception) -> str:
    # A URLError's reason is the socket error ("Connection refused"), never the address; a ValueError
    # from urllib ("unknown url type: 'x'") would quote the URL, so only its class is kept.
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, OSError) and reason.strerror:
        return f"{type(reason).__name__}: {reason.strerror}"
    return type(reason).__name__
