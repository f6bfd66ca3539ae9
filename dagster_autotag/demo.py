"""`make demo`: sample exports for a week → every asset materialised per day → a summary.

Runs go into the persistent Dagster instance under $DAGSTER_HOME ($AUTOTAG_HOME/dagster by
default), so `make ui` shows them afterwards.
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from dagster_autotag.layers import (
    CLEAN_LAYER,
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DAILY_LABELS,
    DATASETS_LAYER,
    LABEL_DISTRIBUTION,
    NEWS_ITEMS,
    PREDICTIONS_LAYER,
    PUBLISHED_LAYER,
    QUARANTINE_LAYER,
    RAW_LAYER,
    TAGS,
    VIDEO_ASR,
    VIDEO_OCR,
)
from dagster_autotag.settings import autotag_home, lake_dir, landing_dir
from dagster_autotag.train.tracking import interval_text

LAYER_TABLES = [
    (RAW_LAYER, "news_pool"),
    (RAW_LAYER, "asr"),
    (RAW_LAYER, "ocr"),
    (RAW_LAYER, "tag_dim"),
    (CLEAN_LAYER, NEWS_ITEMS),
    (CLEAN_LAYER, VIDEO_ASR),
    (CLEAN_LAYER, VIDEO_OCR),
    (CLEAN_LAYER, TAGS),
    (CORPUS_LAYER, CORPUS_ITEMS),
    (CORPUS_LAYER, LABEL_DISTRIBUTION),
    (PREDICTIONS_LAYER, DAILY_LABELS),
    (PUBLISHED_LAYER, DAILY_LABELS),
]


@dataclass
class DemoRun:
    dt: str
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)


# One training at a time (pool autotag_training); backfills run two partitions at once, and the
# sensor's and the schedule's runs of the same day never overlap.
INSTANCE_CONCURRENCY = """concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""
# Pure modules log with the standard library (they import no Dagster); this brings their records,
# e.g. the Hive reader's connection lines, into each run's event log.
INSTANCE_PYTHON_LOGS = """python_logs:
  managed_python_loggers: [dagster_autotag]
  python_log_level: INFO
"""
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def failed_checks(result) -> list[str]:
    """`asset:check` for every check evaluation of a run that did not pass."""
    return [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(autotag_home() / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # the machines this runs on are offline: no telemetry, no banner
        config.write_text("telemetry:\n  enabled: false\n")
    for key, block in (("concurrency:", INSTANCE_CONCURRENCY), ("python_logs:", INSTANCE_PYTHON_LOGS)):
        if key not in config.read_text():
            with config.open("a") as f:
                f.write(block)
    return home


def run_ingest_to_corpus(dts: list[str]) -> list[DemoRun]:
    from dagster_autotag.jobs import INGEST_TO_CORPUS_JOB

    ensure_dagster_home()
    return run_per_day(INGEST_TO_CORPUS_JOB, dts, QUIET_CONSOLE, label="{dt}")


def run_per_day(job_name: str, dts: list[str], run_config: dict, label: str) -> list[DemoRun]:
    """One in-process run of `job_name` per partition, into the persistent instance; `label`
    names the run in the summary (`{dt}` is filled in)."""
    import dagster as dg

    from dagster_autotag.definitions import defs

    job = defs.resolve_job_def(job_name)
    runs = []
    with dg.DagsterInstance.get() as instance:
        for dt in dts:
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=dt, instance=instance, raise_on_error=False, run_config=run_config
            )
            runs.append(
                DemoRun(label.format(dt=dt), result.success, time.perf_counter() - started, failed_checks(result))
            )
    return runs


def run_build_datasets(window_days: int) -> DemoRun:
    """Every scheme's train/dev/test over the demo days, then their distribution tables."""
    import dagster as dg

    from dagster_autotag.corpus.config import load_corpus_config
    from dagster_autotag.definitions import defs
    from dagster_autotag.jobs import BUILD_DATASETS_JOB

    job = defs.resolve_job_def(BUILD_DATASETS_JOB)
    ops = {f"datasets__{name}": {"config": {"window_days": window_days}} for name in load_corpus_config().schemes}
    run_config = {**QUIET_CONSOLE, "ops": ops}
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)
        failed = failed_checks(result)
        print_distributions(list(load_corpus_config().schemes))
        return DemoRun("datasets", result.success, time.perf_counter() - started, failed)


def print_distributions(schemes: list[str]) -> None:
    """Each scheme's split table, from the dataset it wrote (a step's own prints go to Dagster's compute
    logs, and reach the console only now and then)."""
    from dagster_autotag.layers import DATASETS_LAYER
    from dagster_autotag.settings import lake_dir

    for scheme in schemes:
        table = lake_dir() / DATASETS_LAYER / scheme / "distribution.md"
        if table.exists():
            print(f"\nDistribution in train/dev/test ({scheme})\n{table.read_text(encoding='utf-8')}")


DEMO_TEXTCNN = {"max_epochs": 3, "num_filters": 64, "max_len": 96, "patience": 1}


def quiet_mlflow() -> None:
    """The demo prints its own summary: no MLflow progress bars, INFO lines or advice warnings."""
    import logging
    import warnings

    import mlflow  # noqa: F401 - configures its loggers on import; override them after

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*type hints to the `predict` method", category=UserWarning)


def run_train_models(scheme: str = "p0_newcar") -> DemoRun:
    """The linear model and a small TextCNN for one scheme, then their agreement ensemble: trained,
    logged to MLflow, registered, and the promotion gate run (the first version becomes champion);
    then models/<scheme>/serving scores the three champions and records which one labels the days."""
    import dagster as dg

    from dagster_autotag.definitions import defs
    from dagster_autotag.jobs import TRAIN_MODELS_JOB

    quiet_mlflow()
    job = defs.resolve_job_def(TRAIN_MODELS_JOB)
    selection = [dg.AssetKey(["models", scheme, kind]) for kind in ("linear", "textcnn", "ensemble", "serving")]
    run_config = {**QUIET_CONSOLE, "ops": {f"models__{scheme}__textcnn": {"config": DEMO_TEXTCNN}}}
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, asset_selection=selection
        )
        return DemoRun(f"models/{scheme}", result.success, time.perf_counter() - started)


def run_predict_and_publish(dts: list[str], scheme: str = "p0_newcar") -> list[DemoRun]:
    """The serving model labels each demo day; drift checks run; clean days are published."""
    from dagster_autotag.jobs import PREDICT_AND_PUBLISH_JOB

    quiet_mlflow()
    run_config = {**QUIET_CONSOLE, "ops": {"predictions__daily_labels": {"config": {"schemes": [scheme]}}}}
    return run_per_day(PREDICT_AND_PUBLISH_JOB, dts, run_config, label="predict {dt}")


def model_summary() -> list[str]:
    """One line per registered model: champion version and its test micro-F1."""
    import mlflow

    from dagster_autotag.train.registry import CHAMPION, default_tracking_uri

    client = mlflow.MlflowClient(default_tracking_uri())
    lines = []
    for model in client.search_registered_models():
        if model.name.count(".") < 2:  # autotag.<scheme>: the serving decision, no versions (serving_summary)
            continue
        champion = model.aliases.get(CHAMPION)
        run = client.get_run(client.get_model_version(model.name, champion).run_id) if champion else None
        f1 = run.data.metrics.get("test.micro_f1") if run else None
        lines.append(f"  {model.name:32s} champion v{champion}  test micro-F1 {f1:.3f}" if run else f"  {model.name}")
    return lines


def serving_summary(scheme: str = "p0_newcar") -> list[str]:
    """Which model labels the scheme's days and why: the decision models/<scheme>/serving recorded."""
    import mlflow

    from dagster_autotag.predict.champion import read_serving_record, serving_model_name
    from dagster_autotag.train.registry import default_tracking_uri

    record = read_serving_record(mlflow.MlflowClient(default_tracking_uri()), scheme)
    if record is None:
        return [f"  no serving decision for {scheme} (materialize models/{scheme}/serving)"]
    lines = [
        f"  {record.reason}",
        f"  (registry: {serving_model_name(scheme)}, tags serving.*; measured on {record.device})",
        f"    {'kind':10s} {'version':>7s} {record.metric + ' now':>13s} {'s / 100k items':>15s}",
    ]
    for r in record.rows:
        score = "not scored" if r["score"] is None else f"{r['score']:.4f}"
        cost = "unknown" if r["seconds_per_100k"] is None else f"{r['seconds_per_100k']:,.1f}"
        mark = "→" if r["chosen"] else " "
        lines.append(f"  {mark} {r['kind']:10s} {r['version']:>7s} {score:>13s} {cost:>15s}  {r['note']}")
    return lines


def serving_per_label(scheme: str = "p0_newcar") -> list[str]:
    """The serving model's per-label test figures (its run's evaluation/per_label.csv)."""
    import mlflow

    from dagster_autotag.predict.champion import read_serving_record
    from dagster_autotag.train.registry import default_tracking_uri

    client = mlflow.MlflowClient(default_tracking_uri())
    record = read_serving_record(client, scheme)
    if record is None:
        return [f"  no serving model for {scheme}"]
    name, version, run_id = record.name, record.version, record.run_id
    table = pl.read_csv(client.download_artifacts(run_id, "evaluation/per_label.csv"))
    data = json.loads(Path(client.download_artifacts(run_id, "evaluation/thresholds.json")).read_text(encoding="utf-8"))
    shipped = shipped_from_thresholds(data)
    lines = [f"  {name} v{version} on its test split; {shipping_legend(data)}:"]
    for r in table.iter_rows(named=True):
        mark = "✓" if shipped is None or r["label"] in shipped else "✗"
        why = f"  {r['status']}" if r.get("status") and mark == "✗" else ""
        interval = f"  tuned {interval_text(r)}" if r.get("precision_lower") is not None else ""
        lines.append(
            f"    {mark} {r['label']:24s} P {r['precision']:.2f}  R {r['recall']:.2f}  F1 {r['f1']:.2f}  "
            f"n={r['support']}{interval}{why}"
        )
    return lines + taxonomy_lines([t["label"] for t in data.get("labels", [])], scheme)


def shipping_legend(data: dict) -> str:
    """How shipping was decided, from thresholds.json (older files: the plain floor)."""
    counts = data.get("counts")
    if not counts or data.get("confidence") is None:
        return "✗ = below the precision floor, not shipped"
    conf = f"{data['confidence']:.0%} lower bound" if data["confidence"] else "point estimate"
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (
        f"✓ = shipped: the {conf} of its precision on {data.get('source', 'dev')} ≥ {data['precision_floor']}; {tally}"
    )


def taxonomy_lines(model_targets: list[str], scheme: str) -> list[str]:
    """The champion's labels against the current dataset's: new ones it cannot predict, retired ones masked."""
    manifest = lake_dir() / DATASETS_LAYER / scheme / "manifest.json"
    if not model_targets or not manifest.exists():
        return []
    data = json.loads(manifest.read_text(encoding="utf-8"))
    current = ["+".join(data["gate"]), *data["labels"]]
    added = [t for t in current if t not in model_targets]
    retired = [t for t in model_targets if t not in current]
    return [f"  {what}: {', '.join(names)}" for what, names in (
        ("new in the taxonomy, not predicted until retrained", added),
        ("retired from the taxonomy, masked at prediction", retired),
    ) if names]  # fmt: skip


def shipped_from_thresholds(data: dict) -> set[str] | None:
    """Shipped targets from a model's thresholds.json (an agreement ensemble written before it had
    its own table: shipped by all members)."""
    parts = data.get("agreement_of", [data])
    sets = [{t["label"] for t in part.get("labels", []) if t.get("shipped")} for part in parts if "labels" in part]
    return set.intersection(*sets) if sets else None


def label_issue_counts() -> list[str]:
    """Per scheme: the rows quality/label_issues flagged as possible tag errors, and where they are."""
    lines = []
    for path in sorted((lake_dir() / "quality" / "label_issues").glob("*/label_issues.parquet")):
        issues = pl.read_parquet(path, columns=["confident"])
        lines.append(
            f"  {path.parent.name:10s} {issues.height:,} possible tag errors ({int(issues['confident'].sum()):,} confident)  {path}"
        )
    return lines or ["  none (materialise quality/label_issues/<scheme>)"]


def drift_verdicts(dts: list[str]) -> list[str]:
    lines = []
    for dt in dts:
        path = lake_dir() / PREDICTIONS_LAYER / DAILY_LABELS / f"dt={dt}" / "drift.json"
        if not path.exists():
            lines.append(f"  {dt}  not predicted")
            continue
        verdict = json.loads(path.read_text(encoding="utf-8"))
        published = (lake_dir() / PUBLISHED_LAYER / DAILY_LABELS / f"dt={dt}").is_dir()
        lines.append(
            f"  {dt}  label drift {verdict['label_drift']:5s} input drift {verdict['input_drift']:5s} "
            f"{'published' if published else 'NOT published'}"
        )
    return lines


def model_change_lines(limit: int = 8) -> list[str]:
    """The newest entries of the audit log of model changes (predict/model_changes.py)."""
    from dagster_autotag.predict.model_changes import model_changes_path, read_changes

    path = model_changes_path(lake_dir())
    changes = read_changes(path)
    if not changes:
        return [f"  none yet ({path})"]
    lines = [f"  {path} ({len(changes)} entries; DuckDB view model_changes), newest last:"]
    return lines + [f"  {c.describe()}"[:220] for c in changes[-limit:]]


def duckdb_views() -> list[str]:
    import duckdb

    from dagster_autotag.analytics.views import DB_FILE

    path = autotag_home() / DB_FILE
    if not path.exists():
        return [f"  {path} (not refreshed)"]
    with duckdb.connect(str(path), read_only=True) as con:
        views = [
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        ]
        counts = {v: con.execute(f'SELECT count(*) FROM "{v}"').fetchone()[0] for v in views}
    return [f"  {path}  (duckdb -readonly {path})", "  " + ", ".join(f"{v} {n:,}" for v, n in counts.items())]


def chart_font() -> str:
    """The newest label-distribution chart's font, or why it has none (its asset metadata)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey([CORPUS_LAYER, LABEL_DISTRIBUTION]))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    font, note = meta.get("chart_font"), meta.get("chart_note")
    return " — ".join(str(m.value) for m in (font, note) if m is not None and m.value != "ok") or "unknown"


def layer_row_counts(dts: list[str]) -> pl.DataFrame:
    lake = lake_dir()
    rows = []
    for layer, table in LAYER_TABLES:
        for dt in dts:
            path = lake / layer / table / f"dt={dt}"
            n = pl.scan_parquet(str(path / "*.parquet")).select(pl.len()).collect().item() if path.is_dir() else None
            rows.append({"table": f"{layer}/{table}", "dt": dt, "rows": n})
    return pl.DataFrame(rows).pivot(on="dt", index="table", values="rows")


def quarantine_counts(dts: list[str]) -> dict[str, int]:
    base = lake_dir() / QUARANTINE_LAYER
    if not base.is_dir():
        return {}
    counts = {}
    for table_dir in sorted(base.iterdir()):
        files = [str(table_dir / f"dt={dt}" / "part-0.parquet") for dt in dts if (table_dir / f"dt={dt}").is_dir()]
        if files:
            counts[table_dir.name] = pl.scan_parquet(files).select(pl.len()).collect().item()
    return counts


def print_summary(dts: list[str], runs: list[DemoRun]) -> None:
    with pl.Config(
        tbl_rows=50, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        print("\nRows per layer and day:")
        print(layer_row_counts(dts))
    print("\nQuarantined rows (all days):", ", ".join(f"{k}={v}" for k, v in quarantine_counts(dts).items()) or "none")
    print("\nRuns:")
    for run in runs:
        status = "ok" if run.success else "FAILED"
        checks = f"; failed checks: {', '.join(run.failed_checks)}" if run.failed_checks else ""
        print(f"  {run.dt}  {status:6s} {run.seconds:5.1f}s{checks}")
    datasets = sorted(p for p in (lake_dir() / DATASETS_LAYER).glob("*") if p.is_dir())
    charts = lake_dir() / CORPUS_LAYER / LABEL_DISTRIBUTION / f"dt={dts[-1]}" / "chart.png"
    models = model_summary() if (autotag_home() / "mlflow").is_dir() else []
    if models:
        print("\nRegistered models (MLflow):\n" + "\n".join(models))
        print("\nServing model (p0_newcar):\n" + "\n".join(serving_summary("p0_newcar")))
        print("\nServing model per label (p0_newcar):\n" + "\n".join(serving_per_label("p0_newcar")))
        print("\nModel changes (audit log: promotion, serving, pin, rollback):\n" + "\n".join(model_change_lines()))
    print("\nLabel issues (cleanlab, train + dev):\n" + "\n".join(label_issue_counts()))
    print("\nPredictions (drift checks, publishing):\n" + "\n".join(drift_verdicts(dts)))
    print("\nDuckDB views for analysts:\n" + "\n".join(duckdb_views()))
    print(
        f"\nDatasets      : {', '.join(str(p) for p in datasets) or 'none'}\n"
        f"Label chart   : {charts}" + (f"  (font {chart_font()})" if charts.exists() else f"  (none: {chart_font()})")
    )
    print(
        f"\nLanding files : {landing_dir()}\n"
        f"Parquet lake  : {lake_dir()}  (e.g. {lake_dir() / CLEAN_LAYER / NEWS_ITEMS / '*' / '*.parquet'})\n"
        f"Dagster home  : {os.environ['DAGSTER_HOME']}\n"
        f"MLflow        : {autotag_home() / 'mlflow'}  (mlflow ui --backend-store-uri sqlite:///{autotag_home() / 'mlflow' / 'mlflow.db'})\n"
        f"Open the UI   : make ui   (dagster dev -w workspace.yaml)"
    )
