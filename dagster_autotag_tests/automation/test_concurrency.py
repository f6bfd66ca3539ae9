"""Correct without pool limits (issue #18): on an instance whose dagster.yaml has no `concurrency:`
block, or only `max_concurrent_runs`, steps and runs that touch one MLflow store, one DuckDB file,
one reference cache and one lake at once all succeed, and give what one run after another gives.

Both tests start from one small home (three training days, their corpus and datasets/p0_newcar;
seven more days of exports) copied per test, with a corpus config holding p0_newcar only. Models
are tiny (run config below); the encoders of the bert and knn kinds are built on the fly.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml

from dagster_autotag.analytics.views import refresh_views
from dagster_autotag.corpus.config import DEFAULT_CONFIG
from dagster_autotag.jobs import BUILD_DATASETS_JOB, INGEST_TO_CORPUS_JOB, INGEST_TO_PUBLISH_JOB, TRAIN_MODELS_JOB
from dagster_autotag.sample.generator import generate_landing
from dagster_autotag.settings import REPO_ROOT
from dagster_autotag_tests.automation.test_backfill import BACKFILL_STATUS, LAUNCH_BACKFILL
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir
from dagster_autotag_tests.webserver import dagster_dev, graphql

SCHEME = "p0_newcar"
TRAIN_DAYS, TRAIN_START, TRAIN_ITEMS = 3, "2024-05-01", 150
DAYS, START, ITEMS = 7, "2024-05-04", 40
KINDS = ["linear", "textcnn", "bert", "knn", "ensemble", "serving"]
# Tiny models tuned on dev alone: the point is many processes writing at once, not accuracy. A low bar
# ships labels from so little data, so the predictions compared hold labels and scores.
SHIP = {"precision_floor": 0.3, "confidence": 0.0}
TINY = {
    "linear": {"threshold_folds": 0, "n_jobs": 1},
    "textcnn": {
        "max_epochs": 1,
        "num_filters": 8,
        "max_len": 32,
        "embed_dim": 16,
        "threshold_folds": 2,
        "num_threads": 1,
    },
    "bert": {"max_epochs": 1, "max_len": 32, "batch_size": 32, "num_threads": 1},
    "knn": {"k": 5, "max_len": 32, "batch_size": 128, "num_threads": 1},
    "ensemble": {},
}
# 40-item days: the sample's deliberate dirt is a larger share than the 1% default allows, and label
# shares of so few items are noise (drift is not what these tests are about)
PREDICT_CONFIG = {"drift_min_items": 1_000_000, "drift_min_expected": 1_000_000.0}
BACKFILL_TIMEOUT_S = 600
SCORE_TOLERANCE = 1e-4


def model_ops(kinds: list[str] = KINDS) -> dict:
    return {f"models__{SCHEME}__{kind}": {"config": {**SHIP, **TINY[kind]}} for kind in kinds if kind in TINY}


@pytest.fixture(scope="module")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A home with the training days' corpus and datasets/p0_newcar, the backfill days' exports, a corpus
    config of p0_newcar alone and the two tiny encoders; the environment that points at them."""
    root = tmp_path_factory.mktemp("concurrency")
    home = root / "home"
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    config["schemes"] = {SCHEME: config["schemes"][SCHEME]}
    corpus_config = root / "corpus.yaml"
    corpus_config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    train_days = generate_landing(home / "landing", TRAIN_DAYS, TRAIN_START, TRAIN_ITEMS, 5)
    days = generate_landing(home / "landing", DAYS, START, ITEMS, 5)
    env = {
        "AUTOTAG_CORPUS_CONFIG": str(corpus_config),
        "AUTOTAG_QUARANTINE_LIMIT": "0.2",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "AUTOTAG_HOME": str(home)}.items():
            patch.setenv(name, value)
        defs = _definitions(home)
        with dg.instance_for_test() as instance:
            job = defs.resolve_job_def(INGEST_TO_CORPUS_JOB)
            for dt in train_days:
                assert job.execute_in_process(partition_key=dt, instance=instance).success
            datasets = defs.resolve_job_def(BUILD_DATASETS_JOB)
            assert datasets.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(["datasets", SCHEME])]
            ).success
    texts = pl.read_parquet(home / "lake" / "datasets" / SCHEME / "train.parquet")["text"].to_list()
    env["AUTOTAG_BERT_MODEL_DIR"] = str(tiny_bert_dir(root / "bert", texts))
    env["AUTOTAG_ENCODER_DIR"] = str(tiny_bert_dir(root / "encoder", texts, hidden=16, layers=1))
    return {"home": home, "env": env, "days": days}


def _definitions(home: Path) -> dg.Definitions:
    from dagster_autotag.definitions import build_definitions
    from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource

    return build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")),
        lake=LakeResource(home=str(home), quarantine_share_limit=0.2),
        mlflow=MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"),
    )


def fresh_home(base_home: dict, path: Path, dagster_yaml: str) -> tuple[Path, dict[str, str]]:
    """A copy of the base home (no MLflow store yet) with a DAGSTER_HOME of its own; its environment."""
    home = path / "home"
    shutil.copytree(base_home["home"], home)
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(dagster_yaml)
    env = {**os.environ, **base_home["env"], "AUTOTAG_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("AUTOTAG_MLFLOW_TRACKING_URI", None)
    return home, env


def materialize(env: dict[str, str], keys: list[str], run_config: dict, tmp: Path) -> subprocess.CompletedProcess:
    """`dagster asset materialize` as a data engineer types it: one run, the location's multiprocess
    executor (every step a process of its own)."""
    config = tmp / "run_config.yaml"
    config.write_text(yaml.safe_dump(run_config))
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dagster_autotag.definitions"]
    return subprocess.run(
        [*command, "--select", ",".join(keys), "-c", str(config)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def aliases(home: Path) -> dict:
    """registered model → alias → version, and the serving record's kind, version and champions."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    found = {m.name: dict(sorted(m.aliases.items())) for m in client.search_registered_models()}
    serving = client.get_registered_model(f"autotag.{SCHEME}").tags
    found["serving"] = {k: serving.get(f"serving.{k}") for k in ("kind", "version", "champions")}
    return found


def test_two_models_at_once_on_a_plain_instance(base_home: dict, tmp_path: Path) -> None:
    """The reported failure: linear and textcnn in one `dagster asset materialize` on a fresh home
    and a DAGSTER_HOME without `concurrency:`: both steps open the not-yet-created MLflow store."""
    home, env = fresh_home(base_home, tmp_path, "telemetry:\n  enabled: false\n")
    keys = [f"models/{SCHEME}/linear", f"models/{SCHEME}/textcnn"]
    out = materialize(env, keys, {"ops": model_ops(["linear", "textcnn"])}, tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert "CommandError" not in log and "STEP_FAILURE" not in log
    started = [line for line in log.splitlines() if "STEP_START" in line]
    assert len(started) == 2
    found = aliases_of_kinds(home, ["linear", "textcnn"])
    assert found == {k: {"challenger": 1, "champion": 1} for k in ("linear", "textcnn")}
    # the pool has no limit here: each training says so in the run log
    assert log.count("pool autotag_training has no limit") >= 2, log[-3000:]


def aliases_of_kinds(home: Path, kinds: list[str]) -> dict:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    return {k: dict(client.get_registered_model(f"autotag.{SCHEME}.{k}").aliases) for k in kinds}


def sequential_reference(base_home: dict, path: Path) -> Path:
    """The same work one run after another, in this process: every model kind, then each day end to end."""
    home, env = fresh_home(base_home, path, "telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "AUTOTAG_CORPUS_CONFIG",
            "AUTOTAG_QUARANTINE_LIMIT",
            "AUTOTAG_BERT_MODEL_DIR",
            "AUTOTAG_ENCODER_DIR",
        ):
            patch.setenv(name, env[name])
        patch.setenv("AUTOTAG_HOME", str(home))
        defs = _definitions(home)
        with dg.instance_for_test() as instance:
            selection = [dg.AssetKey(["models", SCHEME, kind]) for kind in KINDS]
            trained = defs.resolve_job_def(TRAIN_MODELS_JOB).execute_in_process(
                instance=instance, asset_selection=selection, run_config={"ops": model_ops()}
            )
            assert trained.success
            job = defs.resolve_job_def(INGEST_TO_PUBLISH_JOB)
            run_config = {"ops": {"predictions__daily_labels": {"config": PREDICT_CONFIG}}}
            daily = [k for k in job.asset_layer.executable_asset_keys if k.path[0] != "analytics"]
            for dt in base_home["days"]:
                ran = job.execute_in_process(
                    partition_key=dt, instance=instance, run_config=run_config, asset_selection=daily
                )
                assert ran.success
    return home


def refresh_while_running(home: Path, done: threading.Event, errors: list, counts: list) -> None:
    """(c): DuckDB refreshes, two at a time, while the backfill writes; each database must open and answer."""

    def refresh() -> None:
        try:
            counts.append(refresh_views(home / "lake", home / "autotag.duckdb", schemes=[SCHEME]))
            with duckdb.connect(str(home / "autotag.duckdb"), read_only=True) as con:
                con.execute("SELECT count(*) FROM corpus_items").fetchone()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    while not done.is_set():
        pair = [threading.Thread(target=refresh) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()
        time.sleep(0.5)


def lake_files(home: Path, layers: list[str], days: list[str]) -> dict[str, bytes]:
    lake = home / "lake"
    return {
        str(f.relative_to(lake)): f.read_bytes()
        for layer in layers
        for f in sorted((lake / layer).rglob("*.parquet"))
        if any(f"dt={dt}" in f.parts for dt in days)
    }


def predictions(home: Path, layer: str = "predictions") -> pl.DataFrame:
    """Every predicted row but when and by which run (run ids differ between stores)."""
    frame = pl.read_parquet(home / "lake" / layer / "daily_labels" / "*" / "*.parquet", hive_partitioning=True)
    return frame.drop("predicted_at", "model_run_id").sort("dt", "scheme", "itemid")


def assert_same_rows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same items, labels, rules and model versions; scores within SCORE_TOLERANCE (a model trained in
    a step process and one trained in this process differ in BLAS summation order, not in decisions)."""
    assert got.height > 0 and got.columns == want.columns
    exact = [c for c in got.columns if c not in ("gate_score", "scores")]
    assert got.select(exact).equals(want.select(exact))
    labels, scores = (pl.col("scores").list.eval(pl.element().struct.field(f)).explode() for f in ("label", "score"))
    assert got.select(labels).equals(want.select(labels))
    for column in (scores, pl.col("gate_score")):
        a, b = (f.select(column).to_series().drop_nulls().to_numpy() for f in (got, want))
        assert len(a) == len(b) and (len(a) == 0 or abs(a - b).max() < SCORE_TOLERANCE)


def test_stress_without_pool_limits(base_home: dict, tmp_path: Path) -> None:
    """(a) every model kind of a fresh scheme in one multiprocess run, (b) seven days as an asset backfill,
    four runs at once, (c) DuckDB refreshes while it writes; all on an instance limiting runs only."""
    instance_yaml = "telemetry:\n  enabled: false\nrun_queue:\n  dequeue_interval_seconds: 1\n"
    instance_yaml += "concurrency:\n  runs:\n    max_concurrent_runs: 4\n"
    home, env = fresh_home(base_home, tmp_path / "concurrent", instance_yaml)
    days = base_home["days"]

    out = materialize(env, [f"models/{SCHEME}/{k}" for k in KINDS], {"ops": model_ops()}, tmp_path)  # (a)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]

    daily = [["raw", t] for t in ("news_pool", "asr", "ocr", "tag_dim")]
    daily += [["clean", t] for t in ("news_items", "video_asr", "video_ocr", "tags")]
    daily += [["corpus", "items"], ["corpus", "label_distribution"], ["predictions", "daily_labels"]]
    daily += [["predictions", "published"]]
    params = {
        "assetSelection": [{"path": key} for key in daily],
        "partitionNames": days,
        "runConfigData": {
            "execution": {"config": {"in_process": {}}},
            "ops": {"predictions__daily_labels": {"config": PREDICT_CONFIG}},
        },
        "title": "stress backfill",
    }
    done, errors, counts = threading.Event(), [], []
    with dagster_dev(env) as url:
        launched = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]  # (b)
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        refresher = threading.Thread(target=refresh_while_running, args=(home, done, errors, counts))  # (c)
        refresher.start()
        try:
            deadline = time.monotonic() + BACKFILL_TIMEOUT_S
            while True:
                status = graphql(url, BACKFILL_STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
                if status.get("status") not in ("REQUESTED", "CANCELING", "FAILING"):
                    break
                assert time.monotonic() < deadline, f"backfill still {status} after {BACKFILL_TIMEOUT_S}s"
                time.sleep(2)
        finally:
            done.set()
            refresher.join()
    assert status == {"status": "COMPLETED_SUCCESS", "numPartitions": DAYS}, status
    assert not errors, errors
    assert counts, "no refresh ran while the backfill wrote"
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))
    spans = [(r.start_time, r.end_time) for r in records]
    overlap = max_overlap(spans)
    assert overlap >= 2, f"runs never overlapped ({spans}): nothing was tested"

    reference = sequential_reference(base_home, tmp_path / "sequential")
    layers = ["raw", "clean", "corpus", "quarantine"]
    got, want = lake_files(home, layers, days), lake_files(reference, layers, days)
    assert sorted(got) == sorted(want) and got == want  # raw → corpus: the same bytes
    assert aliases(home) == aliases(reference)  # every kind's aliases, and the serving choice
    assert_same_rows(predictions(home), predictions(reference))
    assert_same_rows(predictions(home, "published"), predictions(reference, "published"))
    final = refresh_views(home / "lake", home / "autotag.duckdb", schemes=[SCHEME])
    assert final == refresh_views(reference / "lake", reference / "autotag.duckdb", schemes=[SCHEME])
    assert not any((home / "lake" / "_staging").iterdir())
    assert json.loads((home / "lake" / "datasets" / SCHEME / "manifest.json").read_text())["labels"]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    from dagster_autotag_tests.automation.test_backfill import max_overlap as overlap

    return overlap(spans)
