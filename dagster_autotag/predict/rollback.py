"""Roll a kind's champion back to an earlier registered version, and say so in the audit log (pure: no
Dagster; mlflow imported inside). The serving decision follows on its own: a moved champion makes the
recorded decision stale, so the next daily run or `autotag serve` poll decides again."""

from pathlib import Path

from dagster_autotag.predict.model_changes import ModelChange, record_change
from dagster_autotag.train.registry import CHAMPION, registered_model_name


def rollback_champion(
    tracking_uri: str, scheme: str, kind: str, version: str, why: str, audit_log: Path | None = None
) -> ModelChange:
    import mlflow
    from mlflow.exceptions import MlflowException

    if not why.strip():
        raise ValueError("a rollback needs a reason (--why): it is kept in the audit log")
    client = mlflow.MlflowClient(tracking_uri)
    name = registered_model_name(scheme, kind)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise ValueError(f"{name} has no registered version {version}") from exc
    try:
        previous = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        previous = None
    if previous == version:
        raise ValueError(f"{name} v{version} is already the champion: nothing to roll back")
    client.set_registered_model_alias(name, CHAMPION, version)
    return record_change(scheme, "rollback", name, version, why.strip(), "autotag rollback", previous, audit_log)
