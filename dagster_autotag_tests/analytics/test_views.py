"""The analysts' DuckDB: views over the demo lake, opened read-only, refreshed while open."""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import polars as pl

from dagster_autotag.analytics.assets import DUCKDB_VIEWS_KEY, duckdb_views
from dagster_autotag.analytics.views import DB_FILE, SNAPSHOT_RETENTION, SNAPSHOTS, refresh_views
from dagster_autotag.lake import read_partition, write_partition
from dagster_autotag.predict.champion import read_serving_record
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag_tests.demo_home import DEMO_DAYS

# model_changes: the demo's promotions and serving decisions (lake/audit/model_changes.jsonl)
BASE_VIEWS = {"corpus_items", "corpus_labels_long", "label_distribution", "model_versions", "model_changes"}


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def _fresh_count(db: Path, sql: str) -> int:
    """A new analyst process: DuckDB caches databases per path within a process."""
    code = f"import duckdb; print(duckdb.connect({str(db)!r}, read_only=True).execute({sql!r}).fetchone()[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout)


def test_views_over_the_demo_lake(home: Path) -> None:
    db = home / DB_FILE
    counts = refresh_views(home / "lake", db)
    assert set(counts) == BASE_VIEWS  # no predictions in the demo lake: those views are left out
    with duckdb.connect(str(db), read_only=True) as con:
        assert _views(con) == BASE_VIEWS
        days = [str(d) for (d,) in con.execute("SELECT DISTINCT dt FROM corpus_items ORDER BY 1").fetchall()]
        assert days == DEMO_DAYS
        assert counts["corpus_items"] == con.execute("SELECT count(*) FROM corpus_items").fetchone()[0] > 0
        actions = dict(con.execute("SELECT action, count(*) FROM model_changes GROUP BY 1").fetchall())
        assert actions.get("promotion", 0) >= 3 and actions.get("serving", 0) >= 1  # linear, textcnn, ensemble

        # labels per day agree with the daily label_distribution tables
        per_day = con.execute(
            """
            SELECT l.dt, l.scheme, l.label, count(*) AS n, any_value(d.count) AS expected
            FROM corpus_labels_long l
            JOIN label_distribution d ON d.dt = l.dt AND d.scheme = l.scheme AND d.key = l.label AND d.metric = 'label'
            GROUP BY ALL
            """
        ).fetchall()
        assert per_day and all(n == expected for *_, n, expected in per_day)
        assert {scheme for _, scheme, *_ in per_day} == {"p0_newcar", "p1_guide"}

        # items of a label
        label = con.execute(
            "SELECT label FROM corpus_labels_long WHERE scheme = 'p0_newcar' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        items = con.execute(
            "SELECT i.itemid, i.title, i.p0_newcar_labels FROM corpus_labels_long l "
            "JOIN corpus_items i USING (dt, itemid) WHERE l.label = ?",
            [label],
        ).fetchall()
        assert items and all(label in labels for *_, labels in items)

        champions = con.execute("SELECT model FROM model_versions WHERE is_champion ORDER BY 1").fetchall()
        assert [m for (m,) in champions] == [f"autotag.p0_newcar.{k}" for k in ("ensemble", "linear", "textcnn")]
        # the serving decision (autotag.p0_newcar, a model without versions) marks one row, with its reason
        serving = con.execute(
            "SELECT model, version, serving_reason, serving_score, serving_seconds_per_100k, "
            "inference_seconds_per_100k FROM model_versions WHERE is_serving"
        ).fetchall()
        record = read_serving_record(mlflow.MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"), "p0_newcar")
        [(model, version, reason, score, cost, recorded_cost)] = serving
        assert (model, str(version), reason) == (record.name, record.version, record.reason)
        assert score == max(r["score"] for r in record.rows) and cost > 0 and recorded_cost > 0
        compared = con.execute("SELECT count(*) FROM model_versions WHERE serving_score IS NOT NULL").fetchone()[0]
        assert compared == 3


def test_prediction_views_when_predictions_exist(home: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    items = read_partition(home / "lake", "corpus", "items", DEMO_DAYS[0]).collect()
    for dt in DEMO_DAYS[:2]:
        predictions = items.select(
            "itemid",
            "dtype",
            pl.lit("p0_newcar").alias("scheme"),
            pl.col("p0_newcar_labels").fill_null([]).alias("labels"),
            pl.lit(0.5).alias("gate_score"),
            pl.lit("autotag.p0_newcar.linear").alias("model_name"),
            pl.lit("1").alias("model_version"),
        )
        write_partition(lake, "published", "daily_labels", dt, predictions)
    counts = refresh_views(lake, tmp_path / DB_FILE, tracking_uri="sqlite:///" + str(tmp_path / "none.db"))
    labelled = items.select(pl.col("p0_newcar_labels").list.len().fill_null(0).sum()).item()
    assert counts == {"predictions": 2 * items.height, "prediction_labels_long": 2 * labelled}
    with duckdb.connect(str(tmp_path / DB_FILE), read_only=True) as con:
        columns = [c for (c, *_) in con.execute("DESCRIBE prediction_labels_long").fetchall()]
        assert {"itemid", "scheme", "label", "model_version", "dt"} <= set(columns) and "labels" not in columns


def test_refresh_and_rewrite_while_an_analyst_reads(home: Path) -> None:
    lake, db = home / "lake", home / DB_FILE
    refresh_views(lake, db)
    day = DEMO_DAYS[-1]
    items = read_partition(lake, "corpus", "items", day).collect()
    reader = duckdb.connect(str(db), read_only=True)
    try:
        before = reader.execute("SELECT count(*) FROM corpus_items").fetchone()[0]
        errors: list[BaseException] = []
        stop = threading.Event()

        def read_loop() -> None:
            cursor = reader.cursor()
            while not stop.is_set():
                try:
                    cursor.execute("SELECT count(*), count(DISTINCT itemid) FROM corpus_items").fetchone()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return

        thread = threading.Thread(target=read_loop)
        thread.start()
        try:
            for _ in range(5):  # rewrites of one partition, and refreshes, under a busy reader
                write_partition(lake, "corpus", "items", day, items)
                refresh_views(lake, db)
            write_partition(lake, "corpus", "items", day, items.head(10))  # a smaller re-run of the day
            write_partition(lake, "published", "daily_labels", day, items.select("itemid", labels=pl.lit(["x"])))
            refresh_views(lake, db)
        finally:
            stop.set()
            thread.join()
        assert not errors, errors
        # the old connection still answers, from the snapshot of its refresh…
        assert reader.execute("SELECT count(*) FROM corpus_items").fetchone()[0] == before
        assert "predictions" not in _views(reader)
    finally:
        reader.close()
    # …and a new one sees the refreshed database
    assert _fresh_count(db, "SELECT count(*) FROM corpus_items") == before - items.height + 10
    assert _fresh_count(db, "SELECT count(*) FROM predictions") == items.height
    assert _fresh_count(db, "SELECT count(*) FROM model_versions") == 3
    assert not list(home.glob(f".{DB_FILE}.*"))  # no staging files left behind
    # leave the shared home as the other tests expect it
    shutil.rmtree(lake / "published")
    write_partition(lake, "corpus", "items", day, items)


def test_asset_materializes_with_metadata(home: Path) -> None:
    result = dg.materialize(
        [duckdb_views],
        resources={"lake": LakeResource(home=str(home)), "mlflow": MlflowResource()},
    )
    assert result.success
    [event] = result.asset_materializations_for_node(duckdb_views.op.name)
    assert event.asset_key == DUCKDB_VIEWS_KEY
    assert event.metadata["rows.model_versions"].value == 3
    assert event.metadata["path"].value == str(home / DB_FILE)
    assert "corpus_labels_long" in event.metadata["views"].value


def test_old_snapshots_are_pruned(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    snapshots = lake / SNAPSHOTS
    old, recent = snapshots / "old", snapshots / "recent"
    old.mkdir(parents=True)
    recent.mkdir()
    stale = time.time() - SNAPSHOT_RETENTION.total_seconds() - 60
    os.utime(old, (stale, stale))
    assert refresh_views(lake, tmp_path / DB_FILE, tracking_uri="sqlite:///" + str(tmp_path / "none.db")) == {}
    assert not old.exists() and recent.exists()
    with duckdb.connect(str(tmp_path / DB_FILE), read_only=True) as con:
        assert _views(con) == set()  # an empty lake gives an empty (but valid) database
