"""The run-failure sensor: every failed run of the location posts the alert webhook
(AUTOTAG_ALERT_WEBHOOK; nothing is sent when it is unset, alerts/webhook.py)."""

import dagster as dg

from dagster_autotag.alerts.webhook import Alert, send_alert

MAX_ERROR_CHARS = 2_000


def build_run_failure_alert_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        default_status=dg.DefaultSensorStatus.RUNNING,  # posts nothing until the webhook is set
        description="Posts every failed run (job, partition, run link, error) to $AUTOTAG_ALERT_WEBHOOK.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        error = context.failure_event.message or ""
        outcome = send_alert(
            Alert(
                what=f"run failed: {run.job_name}",
                partition=run.tags.get("dagster/partition"),
                run_id=run.run_id,
                details={"job": run.job_name, "error": error[:MAX_ERROR_CHARS]},
            )
        )
        context.log.info(f"run {run.run_id} of {run.job_name} failed; alert webhook: {outcome}")

    return alert_on_run_failure
