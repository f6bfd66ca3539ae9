"""`$AUTOTAG_HOME/autotag.duckdb`: views (never tables) over the lake's Parquet for analysts.

The views read a snapshot, not the live lake: DuckDB opens a Parquet path more than once per
query (footer, then row groups), and a partition swapped in between gives "Out of buffer". So each
refresh hard-links the current partition files into `lake/analytics/snapshots/<id>/` (no copying;
lake files are never modified in place, a rewrite is a new file) and the views glob that. The
database is built under a temporary name beside the old one and renamed over it: a reader holding
the old file keeps its old snapshot (kept SNAPSHOT_RETENTION), a new connection opens the new one,
no reader waits for a lock; refreshes take turns on a file lock beside the database (the last to
replace it has the newest snapshot). Within one Python process DuckDB caches databases by path:
close the old connection before reopening.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from dagster_autotag.analytics.model_versions import MODEL_VERSIONS_FILE, export_model_versions
from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER, DAILY_LABELS, LABEL_DISTRIBUTION, PUBLISHED_LAYER
from dagster_autotag.predict.model_changes import export_model_changes

if TYPE_CHECKING:  # duckdb is imported where a database is built: the code location loads without it
    import duckdb

DB_FILE = "autotag.duckdb"
MODEL_CHANGES_PARQUET = "model_changes.parquet"
SNAPSHOTS = Path("analytics") / "snapshots"  # under the lake: hard links need the same filesystem
REFRESH_LOCK_TIMEOUT_S = 1800.0
SNAPSHOT_RETENTION = timedelta(hours=24)  # how long a connection to an older refresh keeps working
# lake tables the views read: (layer, table)
# (predictions: the published copy, so a day held back by a label-drift ERROR stays out of the views)
CORPUS_TABLE = (CORPUS_LAYER, CORPUS_ITEMS)
DISTRIBUTION_TABLE = (CORPUS_LAYER, LABEL_DISTRIBUTION)
PUBLISHED_TABLE = (PUBLISHED_LAYER, DAILY_LABELS)
VIEW_TABLES = (CORPUS_TABLE, DISTRIBUTION_TABLE, PUBLISHED_TABLE)


def _sql_path(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def snapshot_tables(lake: Path, target: Path) -> None:
    """Hard-links every partition file of VIEW_TABLES into target/<layer>/<table>/dt=…/."""
    for layer, table in VIEW_TABLES:
        for partition in sorted((lake / layer / table).glob("dt=*")):
            for attempt in range(3):
                try:
                    _link_partition(partition, target / layer / table / partition.name)
                    break
                except FileNotFoundError:  # swapped by a writer while listed: list it again
                    shutil.rmtree(target / layer / table / partition.name, ignore_errors=True)
                    if attempt == 2 or not partition.exists():
                        break


def _link_partition(source: Path, target: Path) -> None:
    files = sorted(source.glob("*.parquet"))
    if files:
        target.mkdir(parents=True, exist_ok=True)
    for file in files:
        os.link(file, target / file.name)


def prune_snapshots(root: Path, keep: Path, retention: timedelta = SNAPSHOT_RETENTION) -> None:
    cutoff = time.time() - retention.total_seconds()
    for snapshot in root.iterdir() if root.is_dir() else []:
        if snapshot != keep and snapshot.stat().st_mtime < cutoff:
            shutil.rmtree(snapshot, ignore_errors=True)


def _scan(lake: Path, layer: str, table: str) -> str | None:
    """read_parquet over every partition of a (snapshot) table, or None while it has no files (a
    view over a glob that matches nothing cannot be created)."""
    folder = lake / layer / table
    if not any(folder.glob("*/*.parquet")):
        return None
    glob = _sql_path(folder / "*" / "*.parquet")
    return f"SELECT * FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true)"


def _list_columns(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    rows = con.execute(f'DESCRIBE "{view}"').fetchall()
    return {name: type_ for name, type_, *_ in rows}


def _long_labels(con: duckdb.DuckDBPyConnection, view: str, schemes: Sequence[str]) -> str | None:
    """One row per item × label: `<scheme>_labels` columns stacked with a `scheme` column."""
    columns = _list_columns(con, view)
    parts = [
        f"SELECT dt, itemid, dtype, '{s}' AS scheme, unnest(\"{s}_labels\") AS label FROM {view}"
        for s in schemes
        if columns.get(f"{s}_labels", "").endswith("[]")
    ]
    return "\nUNION ALL\n".join(parts) or None


def _create(con: duckdb.DuckDBPyConnection, name: str, sql: str | None) -> bool:
    if sql is None:
        return False
    con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')
    return True


def refresh_views(
    lake: Path,
    db_path: Path,
    tracking_uri: str | None = None,
    schemes: Sequence[str] | None = None,
) -> dict[str, int]:
    """(Re)builds the view database at `db_path`; returns view name -> row count.

    tracking_uri: MLflow store for `model_versions`; None = sqlite at <home>/mlflow/mlflow.db.
    schemes: label schemes for `corpus_labels_long`; None = those of the corpus config.
    """
    if schemes is None:
        from dagster_autotag.corpus.config import load_corpus_config

        schemes = list(load_corpus_config().schemes)
    if tracking_uri is None:
        tracking_uri = f"sqlite:///{lake.parent / 'mlflow' / 'mlflow.db'}"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # One refresh at a time, whatever the pool says: the last to replace the file is then the one
    # with the newest snapshot, and the registry export is not written twice at once.
    with FileLock(db_path.with_name(f"{db_path.name}.lock"), timeout=REFRESH_LOCK_TIMEOUT_S):
        return _refresh(lake, db_path, tracking_uri, schemes)


def _refresh(lake: Path, db_path: Path, tracking_uri: str, schemes: Sequence[str]) -> dict[str, int]:
    versions = export_model_versions(lake, tracking_uri)
    snapshot = lake / SNAPSHOTS / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    snapshot_tables(lake, snapshot)
    if versions is not None:  # rewritten in place by the next export: link this version
        snapshot.mkdir(parents=True, exist_ok=True)
        os.link(versions, snapshot / versions.name)
    export_model_changes(lake, snapshot / MODEL_CHANGES_PARQUET)  # the audit log as it is now

    staging = db_path.with_name(f".{db_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        counts = _build(staging, snapshot, schemes)
        os.replace(staging, db_path)
    except BaseException:
        shutil.rmtree(snapshot, ignore_errors=True)
        raise
    finally:
        for leftover in (staging, staging.with_name(staging.name + ".wal")):
            leftover.unlink(missing_ok=True)
    prune_snapshots(lake / SNAPSHOTS, keep=snapshot)
    return counts


def _build(path: Path, snapshot: Path, schemes: Sequence[str]) -> dict[str, int]:
    # No extension downloads: the machines running this may be offline.
    import duckdb

    con = duckdb.connect(str(path), config={"autoinstall_known_extensions": False})
    try:
        made = []
        if _create(con, "corpus_items", _scan(snapshot, *CORPUS_TABLE)):
            made.append("corpus_items")
            if _create(con, "corpus_labels_long", _long_labels(con, "corpus_items", schemes)):
                made.append("corpus_labels_long")
        if _create(con, "label_distribution", _scan(snapshot, *DISTRIBUTION_TABLE)):
            made.append("label_distribution")
        # predictions/published: written once a champion exists and the day passed label_drift.
        if _create(con, "predictions", _scan(snapshot, *PUBLISHED_TABLE)):
            made.append("predictions")
            if _list_columns(con, "predictions").get("labels", "").endswith("[]"):
                long_sql = "SELECT * EXCLUDE (labels), unnest(labels) AS label FROM predictions"
                _create(con, "prediction_labels_long", long_sql)
                made.append("prediction_labels_long")
        changes = snapshot / MODEL_CHANGES_PARQUET
        if changes.is_file():
            _create(con, "model_changes", f"SELECT * FROM read_parquet({_sql_path(changes)}) ORDER BY changed_at")
            made.append("model_changes")
        versions = snapshot / MODEL_VERSIONS_FILE
        if versions.is_file():
            _create(con, "model_versions", f"SELECT * FROM read_parquet({_sql_path(versions)})")
            made.append("model_versions")
        counts = {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in made}
        con.execute("CHECKPOINT")
        return counts
    finally:
        con.close()
