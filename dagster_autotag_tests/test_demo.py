"""`autotag demo` end to end, as `make demo` runs it, on three small days (demo_home.DEMO_DAYS) in a temporary home."""

import json
from pathlib import Path

import mlflow
import polars as pl

from dagster_autotag.demo import taxonomy_lines
from dagster_autotag.predict.champion import read_serving_record
from dagster_autotag_tests.demo_home import DEMO_DAYS, DEMO_ITEMS_PER_DAY, tracking_uri


def test_demo_materialises_every_layer_and_prints_the_summary(demo_home):
    home, out = demo_home.path, demo_home.stdout
    for dt in DEMO_DAYS:
        assert f"{dt}  ok" in out
    assert "datasets  ok" in out and "models/p0_newcar  ok" in out
    for dt in DEMO_DAYS:  # the champion labelled every day (label_drift may WARN on days this small)
        assert f"predict {dt}  ok" in out
        assert (home / f"lake/predictions/daily_labels/dt={dt}/part-0.parquet").exists()
    assert "clean/news_items" in out and "corpus/items" in out and str(home / "lake") in out
    items = pl.read_parquet(home / f"lake/clean/news_items/dt={DEMO_DAYS[0]}/part-0.parquet")
    assert 0.93 * DEMO_ITEMS_PER_DAY <= items.height <= DEMO_ITEMS_PER_DAY and items["itemid"].is_unique().all()
    corpus = pl.read_parquet(home / f"lake/corpus/items/dt={DEMO_DAYS[0]}/part-0.parquet")
    assert corpus["itemid"].to_list() == items["itemid"].to_list()
    # distribution report with its chart, and the splits of p0_newcar over the demo days
    # rendered with the font the project ships: the demo ran with no system font visible to matplotlib
    chart = home / f"lake/corpus/label_distribution/dt={DEMO_DAYS[-1]}/chart.png"
    assert f"Label chart   : {chart}  (font Noto Sans CJK SC (bundled (noto-cjk-sans-otc)))" in out
    assert len(list((home / "mlflow").rglob("evaluation/pr_curves.png"))) == 3  # linear, textcnn, ensemble
    assert "Distribution in train/dev/test" in out
    for split in ("train", "dev", "test"):
        assert (home / f"lake/datasets/p0_newcar/{split}.parquet").exists()
    # the runs went into the persistent instance under $AUTOTAG_HOME/dagster, so the UI shows them
    assert (home / "dagster" / "dagster.yaml").exists()
    assert any(Path(home / "dagster").rglob("*.db"))


def test_demo_summary_names_the_serving_model_per_label_drift_and_duckdb(demo_home):
    out = demo_home.stdout
    record = read_serving_record(mlflow.MlflowClient(tracking_uri(demo_home.path)), "p0_newcar")
    # models/p0_newcar/serving scored the three champions on the test split: the best one serves
    scores = {r["kind"]: r["score"] for r in record.rows}
    assert set(scores) == {"linear", "textcnn", "ensemble"} and record.kind == max(scores, key=scores.get)
    assert record.reason.startswith(f"{record.describe()}: best micro_f1 on the current test split")
    serving = out.split("Serving model (p0_newcar):")[1].split("\n\n")[0]
    assert f"  {record.reason}\n" in serving
    assert sum(line.lstrip().startswith("→") for line in serving.splitlines()) == 1
    assert all(f" {kind} " in serving for kind in scores)
    per_label = out.split("Serving model per label (p0_newcar):")[1].split("\n\n")[0]
    assert f"{record.describe()} on its test split" in per_label
    # every demo day was labelled by that model
    for dt in DEMO_DAYS:
        table = pl.read_parquet(demo_home.path / f"lake/predictions/daily_labels/dt={dt}/part-0.parquet")
        assert set(table["model_name"]) == {record.name} and set(table["model_version"]) == {record.version}
    rows = [line for line in per_label.splitlines() if " F1 " in line]
    assert len(rows) == 13 and "新车资讯 " in rows[0]  # the gate, then the 12 sub-labels
    assert any(r.lstrip().startswith("✓") for r in rows)
    # shipped by the 90 % lower bound of the precision the thresholds were tuned on, each row with its interval
    assert "✓ = shipped: the 90% lower bound of its precision on " in per_label
    assert all(" tuned " in r and "[" in r for r in rows)
    for r in rows:  # an unshipped label says why
        assert r.lstrip().startswith("✓") or r.endswith(("needs data", "below floor")), r
    predictions = out.split("Predictions (drift checks, publishing):")[1].split("\n\n")[0]
    for dt in DEMO_DAYS:
        assert f"{dt}  label drift " in predictions
    duckdb_part = out.split("DuckDB views for analysts:")[1]
    assert "autotag.duckdb" in duckdb_part and "corpus_items " in duckdb_part and "model_versions " in duckdb_part
    for line in predictions.strip().splitlines():  # published unless label drift was ERROR
        assert line.endswith("NOT published") == ("label drift error" in line), line
    assert "predictions " in duckdb_part  # at least one demo day is published (the drift test covers ERROR)


def test_the_summary_lists_labels_new_in_or_retired_from_the_taxonomy(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path))
    dataset = tmp_path / "lake" / "datasets" / "p0"
    dataset.mkdir(parents=True)
    manifest = {"gate": ["新车资讯"], "labels": ["新车资讯/谍照", "新车资讯/试驾"]}
    (dataset / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    assert taxonomy_lines(["新车资讯", "新车资讯/谍照", "新车资讯/新车到店"], "p0") == [
        "  new in the taxonomy, not predicted until retrained: 新车资讯/试驾",
        "  retired from the taxonomy, masked at prediction: 新车资讯/新车到店",
    ]
    assert taxonomy_lines(["新车资讯", "新车资讯/谍照", "新车资讯/试驾"], "p0") == []
