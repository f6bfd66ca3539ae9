"""Retention on a real lake folder and a real MLflow store: what expires goes, what a published day,
a training window or a champion/serving model needs stays."""

import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from dagster_autotag.automation.retention import apply_retention_job
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag.retention.mlflow_artifacts import DELETED_TAG
from dagster_autotag.retention.options import RetentionOptions
from dagster_autotag.retention.run import run_retention

TODAY = date(2024, 7, 1)
OLD, RECENT = "2024-03-01", "2024-06-20"  # 122 and 11 days before TODAY
DAY_S = 86400


def partition(lake: Path, layer: str, table: str, dt: str) -> Path:
    folder = lake / layer / table / f"dt={dt}"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(b"x" * 100)
    return folder


def aged(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (stamp, stamp))
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    for layer, table in [("raw", "asr"), ("clean", "video_asr"), ("quarantine", "asr"), ("corpus", "items")]:
        for dt in (OLD, RECENT):
            partition(lake, layer, table, dt)
    partition(lake, "predictions", "daily_labels", OLD)
    partition(lake, "published", "daily_labels", OLD)
    partition(lake, "corpus", "items", "2024-02-01")  # neither published nor in a window
    partition(lake, "corpus", "items", "2024-01-10")  # inside a dataset's training window
    dataset = lake / "datasets/p0_newcar"
    dataset.mkdir(parents=True)
    (dataset / "manifest.json").write_text(json.dumps({"window": {"start": "2024-01-05", "end": "2024-01-12"}}))
    cache = dataset / "token_cache"
    cache.mkdir()
    (cache / "old.ids.npy").write_bytes(b"1")
    aged(cache / "old.ids.npy", 20 * DAY_S)
    (cache / "new.ids.npy").write_bytes(b"2")
    (cache / "crashed.tmp").write_bytes(b"3")
    aged(cache / "crashed.tmp", 2 * DAY_S)
    (lake / "_staging/left_by_crash").mkdir(parents=True)
    (lake / "_staging/left_by_crash/part-0.parquet").write_bytes(b"y")
    aged(lake / "_staging/left_by_crash", 3 * DAY_S)
    (lake / "_staging/being_written").mkdir()
    (lake / "_staging/being_written/part-0.parquet").write_bytes(b"z")
    return lake


def remaining(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file()}


def test_the_lake_loses_only_what_expired(lake):
    before = remaining(lake)
    dry = run_retention(lake, None, RetentionOptions(dry_run=True), TODAY)
    assert remaining(lake) == before and dry.deleted == {"staging": 1, "partition": 3, "token_cache": 2}

    options = RetentionOptions(bulky_layers=("raw", "clean", "quarantine", "corpus"), keep_days=60)
    report = run_retention(lake, None, options, TODAY)
    gone = before - remaining(lake)
    assert gone == {
        f"raw/asr/dt={OLD}/part-0.parquet",
        f"clean/video_asr/dt={OLD}/part-0.parquet",
        f"quarantine/asr/dt={OLD}/part-0.parquet",
        "corpus/items/dt=2024-02-01/part-0.parquet",  # expired, and nothing needs it
        "_staging/left_by_crash/part-0.parquet",
        "datasets/p0_newcar/token_cache/old.ids.npy",
        "datasets/p0_newcar/token_cache/crashed.tmp",
    }
    # kept although old: the published day's corpus, the training window's corpus day
    assert sorted(k.split(" (")[1] for k in report.kept) == ["in a dataset's training window)", "published)"]
    assert not (lake / f"raw/asr/dt={OLD}").exists() and not list((lake / "_staging").glob("expired-*"))
    assert report.freed_bytes == 4 * 100 + 1 + 1 + 1
    assert run_retention(lake, None, options, TODAY).deleted == {}  # idempotent


def test_layers_that_consumers_read_never_expire():
    with pytest.raises(ValueError, match="never deletes partitions of \\['published'\\]"):
        RetentionOptions(bulky_layers=("raw", "published"))


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


def register(client, name: str, n: int, logged: int) -> list[str]:
    """n versions, each with run artifacts; version index `logged` as the trainings log theirs: a
    pyfunc logged model (models:/m-…, artifacts outside the run's folder)."""
    versions = []
    for i in range(n):
        with mlflow.start_run() as run:
            mlflow.log_text(f"model {i}", "model/weights.txt")
            if i == logged:
                info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=name)
                versions.append(str(info.registered_model_version))
                continue
        versions.append(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version)
    return versions


def test_archived_versions_lose_their_artifacts_champion_challenger_serving_and_newest_keep_them(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("autotag", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("autotag")
    client = mlflow.MlflowClient(uri)
    name = "autotag.p0_newcar.linear"
    client.create_registered_model(name)
    versions = register(client, name, 6, logged=3)
    client.set_registered_model_alias(name, "champion", versions[0])
    client.set_registered_model_alias(name, "challenger", versions[5])
    client.create_registered_model(
        "autotag.p0_newcar", tags={"serving.model": name, "serving.version": str(versions[1])}
    )

    logged = client.get_logged_model(client.get_model_version(name, versions[3]).source.removeprefix("models:/"))
    assert mlflow.artifacts.list_artifacts(artifact_uri=logged.artifact_location)  # MLmodel, pickle, ...

    options = RetentionOptions(keep_versions=2, archived_days=0)
    later = datetime.now(UTC) + timedelta(seconds=1)
    report = run_retention(tmp_path / "lake", uri, options, TODAY, later)
    assert report.archived_versions == [f"{name}/{versions[2]}", f"{name}/{versions[3]}"]

    def has_artifacts(version: str) -> bool:
        run_id = client.get_model_version(name, version).run_id
        return bool(mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="model"))

    # v1 champion, v2 serving, v5/v6 newest (and v6 challenger): kept; v3, v4 archived
    assert [has_artifacts(v) for v in versions] == [True, True, False, False, True, True]
    assert client.get_model_version(name, versions[2]).tags[DELETED_TAG] == TODAY.isoformat()
    assert mlflow.artifacts.list_artifacts(artifact_uri=logged.artifact_location) == []
    assert run_retention(tmp_path / "lake", uri, options, TODAY, later).archived_versions == []
    young = RetentionOptions(keep_versions=1, archived_days=30)
    assert run_retention(tmp_path / "lake", uri, young, TODAY, later).archived_versions == []


def test_the_retention_job_runs_through_dagster(tmp_path, lake):
    store = tmp_path / "mlflow/mlflow.db"
    result = apply_retention_job.execute_in_process(
        run_config={"ops": {"delete_expired": {"config": {"dry_run": True}}}},
        resources={
            "lake": LakeResource(home=str(tmp_path)),
            "mlflow": MlflowResource(tracking_uri=f"sqlite:///{store}"),
        },
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    # the job counts from the real today: the 2024 "recent" days have expired too
    assert output.step_output_data.metadata["deleted"].value == {"staging": 1, "partition": 6, "token_cache": 2}
    assert not store.exists()  # no MLflow store yet: retention does not create one
