"""train/tracking.py without Dagster: one MLflow run (real sqlite store) around a linear training."""

import json
import logging
import subprocess
import sys
from contextlib import contextmanager

import mlflow
import polars as pl
import pytest

from dagster_autotag.train.configs import LinearConfig
from dagster_autotag.train.registry import CHAMPION
from dagster_autotag.train.scheme_model import train_scheme_model
from dagster_autotag.train.tracking import per_label_markdown, taxonomy_changes, track_and_register
from dagster_autotag_tests.train.test_scheme_model import GATE, LABELS, rows


class SqliteStore:
    """The TrackingStore protocol over a local sqlite store (MlflowResource is the real one)."""

    def __init__(self, root) -> None:
        self.uri, self.root = f"sqlite:///{root / 'mlflow.db'}", root

    @contextmanager
    def run(self, run_name: str, tags: dict[str, str] | None = None):
        mlflow.set_tracking_uri(self.uri)
        if mlflow.get_experiment_by_name("test") is None:
            mlflow.create_experiment("test", artifact_location=(self.root / "artifacts").as_uri())
        mlflow.set_experiment("test")
        with mlflow.start_run(run_name=run_name, tags=tags) as active:
            yield active

    def run_url(self, run_id: str) -> str:
        return f"{self.uri} run {run_id}"


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "datasets" / "p0_test"
    path.mkdir(parents=True)
    sizes = {"train": 300, "dev": 100, "test": 100}
    for seed, (split, n) in enumerate(sizes.items()):
        rows(n, seed).write_parquet(path / f"{split}.parquet")
    manifest = {
        "scheme": "p0_test",
        "gate": [GATE],
        "labels": LABELS,
        "rare_labels": [],
        "window": {"start": "2024-05-01", "end": "2024-05-07"},
        "rows": sizes,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return path


def test_one_run_logs_registers_and_promotes(dataset, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path))
    caplog.set_level(logging.INFO, logger="dagster_autotag.train.tracking")  # the default log
    store = SqliteStore(tmp_path)
    config = LinearConfig(min_df=1)

    def fit(dataset_dir, on_epoch):
        return train_scheme_model("linear", config, dataset_dir, None, on_epoch)

    tracked = track_and_register(
        store, "p0_test", "linear", dataset, fit,
        params={"min_df": 1, "c": 4.0}, promotion_metric="micro_f1", promotion_tolerance=0.0,
    )  # fmt: skip
    assert tracked.registered_model == "autotag.p0_test.linear v1"
    assert tracked.promotion.promoted and tracked.run_url == f"{store.uri} run {tracked.run_id}"
    assert caplog.messages[-1] == "autotag.p0_test.linear v1: no champion yet"
    assert tracked.pr_curves.png is not None and tracked.pr_curves.markdown("PR").startswith("![PR]")
    assert tracked.summary["micro_f1"] > 0.5 and GATE in tracked.shipped_labels
    client = mlflow.MlflowClient(store.uri)
    run = client.get_run(tracked.run_id)
    assert run.data.params["cfg.min_df"] == "1" and run.data.params["dataset.rows.train"] == "300"
    assert run.data.tags["promotion"] == "promoted"
    # inference speed, timed as the daily run predicts (the test split has 100 texts: cycled to more)
    speed = run.data.metrics
    assert speed["inference.items_timed"] > 100 and speed["inference.items_per_s"] > 0
    assert speed["inference.seconds_per_100k"] == pytest.approx(1e5 / speed["inference.items_per_s"])
    artifacts = {a.path for a in client.list_artifacts(tracked.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/pr_curves.png", "evaluation/per_label.csv"} <= artifacts
    assert str(client.get_model_version_by_alias("autotag.p0_test.linear", CHAMPION).version) == "1"
    # every label's status and the precision interval it was shipped (or not) on
    per_label = pl.read_csv(client.download_artifacts(tracked.run_id, "evaluation/per_label.csv"))
    assert {"status", "threshold", "tuning_tp", "tuning_predicted", "precision_lower", "precision_upper"} <= set(
        per_label.columns
    )
    shipped = per_label.filter(pl.col("status") == "shipped")
    assert shipped["label"].to_list() == tracked.shipped_labels and (shipped["precision_lower"] >= 0.8).all()
    assert (per_label["precision_lower"] <= per_label["precision_upper"]).all()
    thresholds = json.loads(open(client.download_artifacts(tracked.run_id, "evaluation/thresholds.json")).read())
    assert thresholds["source"] == "oof(5)+dev" and thresholds["confidence"] == 0.9
    assert run.data.metrics["shipping.shipped"] == len(tracked.shipped_labels) == tracked.status_counts["shipped"]
    assert run.data.tags["thresholds.tuned_on"] == tracked.tuned_on == "oof(5)+dev, 400 rows"
    assert tracked.taxonomy == {"previous_champion": None, "added": [], "retired": []}
    markdown = per_label_markdown(tracked.per_label, set(), tracked.tuned_on)
    assert "tuned P [interval] (oof(5)+dev, 400 rows)" in markdown and "| ✅ |" in markdown

    # the taxonomy moves: 新车到店 retired, 新车资讯/试驾 added; the champion (v1) still has the old labels
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    manifest["labels"] = [*LABELS[:-1], "新车资讯/试驾"]
    (dataset / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    second = track_and_register(
        store, "p0_test", "linear", dataset, fit,
        params={}, promotion_metric="micro_f1", promotion_tolerance=0.0,
    )  # fmt: skip
    assert second.taxonomy == {"previous_champion": "1", "added": ["新车资讯/试驾"], "retired": ["新车资讯/新车到店"]}
    assert second.promotion.champion_score is not None  # v1 scored on the new label set, no shape error
    assert "新车资讯/试驾" in second.per_label["label"].to_list()


def test_taxonomy_changes_list_added_and_retired_targets():
    assert taxonomy_changes("3", ["g", "g/a", "g/b"], ["g", "g/b", "g/c"]) == {
        "previous_champion": "3",
        "added": ["g/c"],
        "retired": ["g/a"],
    }
    assert taxonomy_changes(None, None, ["g", "g/a"]) == {"previous_champion": None, "added": [], "retired": []}


def test_per_label_markdown_marks_labels_that_need_data_with_their_interval():
    table = pl.DataFrame(
        {
            "label": ["g", "g/a", "g/b"], "precision": [0.9, 0.0, 0.5], "recall": [0.9, 0.0, 0.1],
            "f1": [0.9, 0.0, 0.2], "support": [100, 5, 30], "right": [90, 0, 3], "predict": [100, 0, 6],
            "standard": [100, 5, 30], "status": ["shipped", "needs data", "below floor"],
            "tuning_precision": [0.88, 1.0, 0.5], "precision_lower": [0.84, 0.46, 0.3],
            "precision_upper": [0.91, 1.0, 0.7], "tuning_tp": [880, 3, 10], "tuning_predicted": [1000, 3, 20],
        }
    )  # fmt: skip
    markdown = per_label_markdown(table, rare={"g/a"})
    assert "| g/a | 0.000 | 0.000 | 0.000 | 5 | 0 / 0 / 5 | 1.00 [0.46, 1.00] 3/3 | ❌ needs data · rare |" in markdown
    assert "| 0.88 [0.84, 0.91] 880/1000 | ✅ |" in markdown and "❌ below floor |" in markdown
    old = table.drop("status", "tuning_precision", "precision_lower", "precision_upper")  # a model from before
    assert "| — |" in per_label_markdown(old, rare=set())


def test_a_missing_dataset_says_what_to_materialize(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize datasets/p0_test first"):
        track_and_register(
            SqliteStore(tmp_path), "p0_test", "linear", tmp_path / "nothing", lambda d, e: None,
            params={}, promotion_metric="micro_f1", promotion_tolerance=0.0,
        )  # fmt: skip


def test_the_pure_modules_import_without_dagster_or_the_model_libraries():
    code = (
        "import sys\n"
        "import dagster_autotag.train.tracking, dagster_autotag.train.configs, dagster_autotag.predict.champion\n"
        "import dagster_autotag.predict.inputs, dagster_autotag.predict.serving, dagster_autotag.layers\n"
        "import dagster_autotag.options\n"
        "print(sorted(m for m in ('dagster', 'torch', 'sklearn', 'mlflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
