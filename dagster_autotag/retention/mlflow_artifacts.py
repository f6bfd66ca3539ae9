"""MLflow artifacts of archived model versions: which versions, and deleting their artifacts.

Archived = a version of an `autotag.*` registered model that holds no alias (champion, challenger),
is not the version a scheme serves (registered model `autotag.<scheme>`, tags serving.model /
serving.version), is not among the `keep_versions` newest of its model, and is older than
`archived_days`. Its run's artifacts and its logged model's artifacts are deleted through MLflow's
artifact repository (local folder, S3, ... alike); the version itself stays in the registry, with
the tag `retention.artifacts_deleted`, so its metrics and history remain in model_versions.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from dagster_autotag.retention.options import RetentionOptions

DELETED_TAG = "retention.artifacts_deleted"
MODEL_PREFIX = "autotag."


@dataclass(frozen=True)
class ArchivedVersion:
    name: str
    version: str
    run_id: str | None
    source: str
    created: datetime


def archived_versions(client, options: RetentionOptions, now: datetime) -> list[ArchivedVersion]:
    serving = _serving_versions(client)
    archived = []
    for model in _registered_models(client):
        versions = client.search_model_versions(f"name='{model.name}'")
        newest = sorted(versions, key=lambda v: int(v.version), reverse=True)[: options.keep_versions]
        keep = {str(v.version) for v in newest} | {v for name, v in serving if name == model.name}
        for v in versions:
            created = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)
            if v.aliases or str(v.version) in keep or DELETED_TAG in (v.tags or {}):
                continue
            if (now - created).days < options.archived_days:
                continue
            archived.append(ArchivedVersion(model.name, str(v.version), v.run_id, v.source, created))
    return sorted(archived, key=lambda a: (a.name, int(a.version)))


def delete_version_artifacts(client, version: ArchivedVersion, today: str) -> list[str]:
    """Deletes the version's run artifacts and logged-model artifacts; returns the URIs emptied."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    current = client.get_model_version(version.name, version.version)
    if current.aliases:  # promoted since it was planned: keep
        return []
    uris = []
    if version.run_id:
        uris.append(client.get_run(version.run_id).info.artifact_uri)
    if version.source.startswith("models:/m-"):
        uris.append(client.get_logged_model(version.source.removeprefix("models:/")).artifact_location)
    for uri in uris:
        get_artifact_repository(uri).delete_artifacts()
    client.set_model_version_tag(version.name, version.version, DELETED_TAG, today)
    return uris


def _serving_versions(client) -> set[tuple[str, str]]:
    """(model name, version) each scheme serves, from the serving record on `autotag.<scheme>`."""
    pairs = set()
    for model in _registered_models(client):
        tags = model.tags or {}
        if tags.get("serving.model") and tags.get("serving.version"):
            pairs.add((tags["serving.model"], str(tags["serving.version"])))
    return pairs


def _registered_models(client) -> list:
    models, token = [], None
    while True:
        page = client.search_registered_models(filter_string=f"name LIKE '{MODEL_PREFIX}%'", page_token=token)
        models += [m for m in page if m.name.startswith(MODEL_PREFIX)]
        token = page.token
        if not token:
            return models
