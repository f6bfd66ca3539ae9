"""Alerts reach a real HTTP receiver on 127.0.0.1 (the `alert_webhook` fixture); nothing is sent
without AUTOTAG_ALERT_WEBHOOK; the URL (which carries a secret) never reaches a log."""

import logging
from datetime import UTC, datetime

import dagster as dg

from dagster_autotag.alerts.freshness import watched_day
from dagster_autotag.alerts.webhook import Alert, send_alert
from dagster_autotag.automation.alerts import build_run_failure_alert_sensor
from dagster_autotag.automation.freshness import FRESHNESS_CHECK, build_freshness_sensor, freshness_rule
from dagster_autotag.partitions import daily_partitions
from dagster_autotag_tests.alert_receiver import alert_receiver

SECRET = "s3cr3t-token"


def test_an_alert_is_posted_as_json(alert_webhook):
    assert send_alert(Alert("label drift ERROR", partition="2024-05-01", run_id="abc", details={"n": 1})) == "sent"
    [(path, body)] = alert_webhook.posts
    assert path == f"/hooks/{SECRET}"
    assert body["what"] == "label drift ERROR" and body["partition"] == "2024-05-01"
    assert body["run"] == "http://dagster.example/runs/abc" and body["severity"] == "ERROR"
    assert body["details"] == {"n": 1} and SECRET not in str(body)


def test_nothing_is_sent_when_the_webhook_is_unset(monkeypatch):
    monkeypatch.delenv("AUTOTAG_ALERT_WEBHOOK", raising=False)
    with alert_receiver() as receiver:
        assert send_alert(Alert("run failed: x")) == "not configured"
        assert receiver.posts == []


def test_a_failed_delivery_is_reported_and_never_logs_the_url(alert_webhook, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    alert_webhook.status = 500
    assert send_alert(Alert("run failed: x")) == "failed: HTTP 500"
    monkeypatch.setenv("AUTOTAG_ALERT_WEBHOOK", f"http://127.0.0.1:1/hooks/{SECRET}")  # nothing listens
    assert send_alert(Alert("run failed: x")).startswith("failed: ConnectionRefusedError")
    monkeypatch.setenv("AUTOTAG_ALERT_WEBHOOK", f"notaurl/{SECRET}")
    assert send_alert(Alert("run failed: x")) == "failed: ValueError"
    assert len(caplog.records) == 3 and SECRET not in caplog.text and "127.0.0.1" not in caplog.text


@dg.op
def breaks():
    raise RuntimeError("export table missing")


@dg.job(partitions_def=daily_partitions)
def breaking_job():
    breaks()


def test_the_run_failure_sensor_posts_job_partition_run_link_and_error(alert_webhook):
    instance = dg.DagsterInstance.ephemeral()
    result = breaking_job.execute_in_process(instance=instance, partition_key="2024-05-01", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
    ).for_run_failure()
    build_run_failure_alert_sensor()(context)
    [(_, body)] = alert_webhook.posts
    assert body["what"] == "run failed: breaking_job" and body["partition"] == "2024-05-01"
    assert body["run"] == f"http://dagster.example/runs/{result.run_id}"
    assert "breaks" in body["details"]["error"]


def test_the_freshness_sensor_fails_the_check_of_late_exports_once_and_alerts(alert_webhook, monkeypatch):
    monkeypatch.setenv("AUTOTAG_FRESHNESS_WARN_HOURS", "0")
    monkeypatch.setenv("AUTOTAG_FRESHNESS_ERROR_HOURS", "0")  # yesterday, not here now: ERROR
    keys = [dg.AssetKey(["raw", t]) for t in ("news_pool", "asr")]
    instance = dg.DagsterInstance.ephemeral()
    dt = watched_day(datetime.now(UTC), freshness_rule())
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=keys[0], partition=dt))
    sensor = build_freshness_sensor(keys)

    result = sensor(dg.build_sensor_context(instance=instance))
    [evaluation] = result.asset_events  # raw/news_pool arrived; raw/asr did not
    assert (evaluation.asset_key, evaluation.check_name, evaluation.passed) == (keys[1], FRESHNESS_CHECK, False)
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.partition == dt
    [(_, body)] = alert_webhook.posts
    assert body["what"] == f"exports of {dt} late (ERROR): raw/asr" and body["partition"] == dt
    assert "missing" in body["details"]["raw/asr"]

    instance.report_runless_asset_event(evaluation)  # what the daemon does with a sensor's asset_events
    check_key = dg.AssetCheckKey(keys[1], FRESHNESS_CHECK)
    stored = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key]
    assert stored.partition == dt and stored.status.value == "FAILED"  # what the UI shows

    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert not again.asset_events and len(alert_webhook.posts) == 1  # told once per day and severity
