"""What review/tasks sends for one scheme and day, and the task records it keeps (pure: no Dagster).

The asset (review/assets.py) wires these: scheme_choices are the checkboxes, model_thresholds the
serving run's cuts for the hard-case stream, read_tasks what was sent before (never an item twice),
send_scheme the choice and the upload of one scheme's tasks.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import PART_FILE
from dagster_autotag.layers import DATASETS_LAYER, QUALITY_LAYER, REVIEW_LAYER, REVIEW_TASKS
from dagster_autotag.review.selection import LabelThreshold, choose_tasks, day_seed
from dagster_autotag.review.tasks import label_config, project_title, task_payloads

TASK_COLUMNS = {
    "scheme": pl.String,
    "itemid": pl.String,
    "stream": pl.String,
    "reasons": pl.List(pl.String),
    "audit_labels": pl.List(pl.String),
    "predicted": pl.List(pl.String),
    "model": pl.String,
    "project_id": pl.Int64,
    "task_id": pl.Int64,
    "sent_at": pl.Datetime("us", "UTC"),
}


def gate_name(scheme: Scheme) -> str:
    return "+".join(scheme.gate)


def scheme_choices(root: Path, scheme: Scheme, predictions: pl.DataFrame) -> list[str]:
    """The checkboxes: the gate, then the dataset's labels (all of them, shipped or not); without a
    dataset, the labels the model scored."""
    manifest = root / DATASETS_LAYER / scheme.name / "manifest.json"
    if manifest.exists():
        labels = json.loads(manifest.read_text(encoding="utf-8"))["labels"]
    else:
        labels = sorted({s["label"] for row in predictions["scores"].to_list() for s in row})
    return [gate_name(scheme), *[lb for lb in labels if lb != gate_name(scheme)]]


def model_thresholds(uri: str, run_ids: list[str]) -> tuple[dict[str, LabelThreshold], str]:
    """The serving model's thresholds (its run's evaluation/thresholds.json), and a note when unavailable."""
    if len(run_ids) != 1:
        return {}, f"{len(run_ids)} model runs labelled the day: no near-threshold or needs-data cases"
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_ids[0], artifact_path="evaluation/thresholds.json", tracking_uri=uri
        )
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["labels"]
    except Exception as exc:  # noqa: BLE001 — a missing artifact only narrows the hard-case stream
        return {}, f"no thresholds for run {run_ids[0]} ({type(exc).__name__}): no near-threshold or needs-data cases"
    return {r["label"]: LabelThreshold(float(r["threshold"]), r.get("status", "shipped")) for r in rows}, ""


def read_tasks(root: Path, scheme: str | None = None, exclude_dt: str | None = None) -> pl.DataFrame:
    """Every recorded review task (with `dt`), optionally of one scheme, leaving out one day."""
    folder = root / REVIEW_LAYER / REVIEW_TASKS
    files = sorted(folder.glob(f"dt=*/{PART_FILE}")) if folder.is_dir() else []
    frames = [
        pl.read_parquet(f).with_columns(pl.lit(f.parent.name[3:]).alias("dt"))
        for f in files
        if f.parent.name[3:] != exclude_dt
    ]
    empty = pl.DataFrame(schema={**TASK_COLUMNS, "dt": pl.String})
    tasks = pl.concat([empty, *frames], how="diagonal_relaxed") if frames else empty
    return tasks.filter(pl.col("scheme") == scheme) if scheme else tasks


def send_scheme(client, root, mlflow_uri, scheme, dt, rows, corpus, options) -> tuple[pl.DataFrame, dict, str]:
    """Choose one scheme's tasks for the day, send those not yet in its project; (rows, counts, note).
    Label Studio's refusals raise LabelStudioError."""
    choices = scheme_choices(root, scheme, rows)
    project = client.ensure_project(project_title(scheme.name), label_config(choices), f"autotag review: {scheme.name}")
    in_project = {
        t["data"]["itemid"]: (int(t["id"]), t["data"].get("dt")) for t in client.tasks(project) if "itemid" in t["data"]
    }  # fmt: skip
    sent = set(read_tasks(root, scheme.name, exclude_dt=dt)["itemid"].to_list())
    sent |= {i for i, (_, day) in in_project.items() if day != dt}
    thresholds, note = model_thresholds(mlflow_uri, rows["model_run_id"].unique().to_list())
    issues_file = root / QUALITY_LAYER / "label_issues" / scheme.name / "label_issues.parquet"
    issues = pl.read_parquet(issues_file) if issues_file.exists() else None
    editors = corpus.filter(pl.col(scheme.gate_column).fill_null(False)).select(
        "itemid", pl.concat_list(pl.lit([gate_name(scheme)]), pl.col(scheme.labels_column)).alias("labels")
    )
    tasks, counts = choose_tasks(
        rows, corpus.select("itemid", "text"), thresholds, sent, options, day_seed(dt, scheme.name), issues, editors
    )
    new = tasks.filter(~pl.col("itemid").is_in(list(in_project)))
    ids = client.import_tasks(project, task_payloads(new, scheme.name, dt, choices))
    known = {**{i: t for i, (t, _) in in_project.items()}, **dict(zip(new["itemid"].to_list(), ids))}
    frame = tasks.with_columns(
        pl.lit(scheme.name).alias("scheme"),
        pl.lit(project, dtype=pl.Int64).alias("project_id"),
        pl.col("itemid").replace_strict(known, default=None, return_dtype=pl.Int64).alias("task_id"),
        pl.lit(datetime.now(UTC)).cast(TASK_COLUMNS["sent_at"]).alias("sent_at"),
    ).select(list(TASK_COLUMNS))
    counts["sent_now"], counts["already_in_label_studio"] = len(ids), tasks.height - new.height
    return frame, counts, f"{scheme.name}: {note}" if note else ""
