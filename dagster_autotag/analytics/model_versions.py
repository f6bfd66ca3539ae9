"""The MLflow registry as a small Parquet file the `model_versions` view reads.

DuckDB's sqlite extension is not bundled and cannot be installed offline, and a tracking server
has no file to attach anyway, so the registry is read with the mlflow client and written out.
"""

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from dagster_autotag.predict.serving import ServingRecord
from dagster_autotag.train.registry import CHAMPION
from dagster_autotag.train.store import open_store

MODEL_PREFIX = "autotag."
ANALYTICS_DIR = "analytics"
MODEL_VERSIONS_FILE = "model_versions.parquet"
# typed even while no serving decision exists, so the view's columns do not change type
SERVING_COLUMNS = {
    "is_serving": pl.Boolean,
    "serving_reason": pl.String,
    "serving_score": pl.Float64,
    "serving_seconds_per_100k": pl.Float64,
    "serving_note": pl.String,
}


def model_versions_path(lake: Path) -> Path:
    return lake / ANALYTICS_DIR / MODEL_VERSIONS_FILE


def sqlite_store(tracking_uri: str) -> Path | None:
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def export_model_versions(lake: Path, tracking_uri: str) -> Path | None:
    """Writes one row per registered version of `autotag.*` models; None when there is no registry.
    A sqlite store that has not changed since the last export is not read again (mlflow's client
    takes seconds to open one)."""
    target = model_versions_path(lake)
    store = sqlite_store(tracking_uri)
    if store is not None:
        if not store.is_file():
            return None
        changed = max(f.stat().st_mtime_ns for f in (store, Path(f"{store}-wal")) if f.is_file())
        if target.is_file() and target.stat().st_mtime_ns >= changed:
            return target
    frame = read_model_versions(tracking_uri)
    if frame.is_empty():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    frame.write_parquet(staging)
    os.replace(staging, target)  # a reader of the view sees the old or the new file
    return target


def read_model_versions(tracking_uri: str) -> pl.DataFrame:
    """One row per version of autotag.<scheme>.<kind>, with `is_serving` and the decision's reason and
    figures (score on the test split it was decided on, seconds per 100k items) from the serving record
    on the versionless model autotag.<scheme> (predict/champion.py)."""
    from mlflow import MlflowClient

    open_store(tracking_uri)  # a store another process is creating right now: wait for it, never migrate twice
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    models = list(client.search_registered_models(filter_string=f"name LIKE '{MODEL_PREFIX}%'"))
    decisions = {}  # scheme → ServingRecord
    for model in models:
        scheme = model.name.removeprefix(MODEL_PREFIX)
        if "." not in scheme:  # autotag.<scheme>: a serving record, no versions
            record = ServingRecord.from_tags(scheme, model.tags)
            if record is not None:
                decisions[scheme] = record
    # (model, version) → its row in the last decision's table: the score and cost it was compared by
    scores = {(r["model"], r["version"]): r for record in decisions.values() for r in record.rows}
    rows = []
    for model in models:
        if model.name.count(".") < 2:
            continue
        aliases: dict[str, list[str]] = {}
        for alias, version in model.aliases.items():  # version objects from search carry no aliases
            aliases.setdefault(str(version), []).append(alias)
        _, scheme, kind = (model.name.split(".", 2) + ["", ""])[:3]
        decision = decisions.get(scheme)
        for version in client.search_model_versions(f"name='{model.name}'"):
            run = client.get_run(version.run_id) if version.run_id else None
            metrics = run.data.metrics if run else {}
            serving = decision is not None and (decision.name, decision.version) == (model.name, str(version.version))
            compared = scores.get((model.name, str(version.version)), {})
            rows.append(
                {
                    "model": model.name,
                    "scheme": scheme,
                    "kind": kind,
                    "version": int(version.version),
                    "aliases": sorted(aliases.get(str(version.version), [])),
                    "is_champion": CHAMPION in aliases.get(str(version.version), []),
                    "status": version.status,
                    "created_at": datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
                    "run_id": version.run_id,
                    "run_name": run.data.tags.get("mlflow.runName") if run else None,
                    "dataset_window": run.data.params.get("dataset.window") if run else None,
                    **{f"test_{k[5:]}": v for k, v in sorted(metrics.items()) if k.startswith("test.")},
                    **{f"inference_{k[10:]}": v for k, v in sorted(metrics.items()) if k.startswith("inference.")},
                    "is_serving": serving,
                    "serving_reason": decision.reason if serving else None,
                    "serving_score": compared.get("score"),  # on the test split of the last decision
                    "serving_seconds_per_100k": compared.get("seconds_per_100k"),
                    "serving_note": compared.get("note"),
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None, schema_overrides=SERVING_COLUMNS) if rows else pl.DataFrame()
