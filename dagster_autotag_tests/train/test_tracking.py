"""train/tracking.py without Dagster: one MLflow run (real sqlite store) around a linear training."""

import json
import logging
import subprocess
import sys
from contextlib import contextmanager

import mlflow
import pytest

from dagster_autotag.train.configs import LinearConfig
from dagster_autotag.train.registry import CHAMPION
from dagster_autotag.train.scheme_model import train_scheme_model
from dagster_autotag.train.tracking import track_and_register
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
