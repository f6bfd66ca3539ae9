"""review/tasks (daily: items sent to Label Studio) and review/corrections (the reviewers' answers).

Thin: read the lake, call review/selection.py and review/corrections.py, talk to Label Studio through
review/label_studio.py, write atomically, report. Label Studio is asked first: a server that is down
or refuses the token fails the run with that message before anything is written. review/tasks is
idempotent: items of the day already in the scheme's project are recorded with their existing task
ids instead of being sent again (also after a run that failed between sending and writing).
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import PART_FILE, partition_dir, staged_directory, staged_partition, write_parquet
from dagster_autotag.layers import (
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DAILY_LABELS,
    DATASETS_LAYER,
    PREDICTIONS_LAYER,
    QUALITY_LAYER,
    REVIEW_CORRECTIONS,
    REVIEW_LAYER,
    REVIEW_TASKS,
)
from dagster_autotag.metadata import path_value, preview, table_value
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.resources import LabelStudioResource, LakeResource, MlflowResource
from dagster_autotag.review.corrections import (
    CORRECTIONS_FILE,
    annotation_rows,
    audited_precision,
    read_corrections,
    upsert,
)
from dagster_autotag.review.label_studio import LabelStudioError
from dagster_autotag.review.selection import LabelThreshold, ReviewOptions, choose_tasks, day_seed
from dagster_autotag.review.tasks import label_config, project_title, task_payloads

# two groups, so each job runs whole groups (test_definitions): sending and pulling run apart
TASKS_GROUP, CORRECTIONS_GROUP = "review_tasks", "review_corrections"
TASKS_KEY = dg.AssetKey([REVIEW_LAYER, REVIEW_TASKS])
CORRECTIONS_KEY = dg.AssetKey([REVIEW_LAYER, REVIEW_CORRECTIONS])
AUDIT_FILE = "audited_precision.parquet"
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


class ReviewTasksRunConfig(dg.Config):
    """Run config of review/tasks (ReviewOptions, per scheme and day)."""

    audit_per_label: int = Field(20, description="audit: uniform sample of each shipped label's predicted items")
    audit_max_items: int = Field(300, description="cap of the audit stream per scheme and day")
    hard_max_items: int = Field(100, description="cap of the hard-case stream per scheme and day")
    near_threshold: float = Field(0.05, description="|score − threshold| at most this is a near-threshold case")
    label_issues_per_day: int = Field(30, description="quality/label_issues items offered per day, worst first")

    def options(self) -> ReviewOptions:
        return ReviewOptions(
            self.audit_per_label, self.audit_max_items, self.hard_max_items, self.near_threshold,
            self.label_issues_per_day,
        )  # fmt: skip


class ReviewCorrectionsRunConfig(dg.Config):
    window_days: int = Field(
        28, description="audited precision over the tasks sent in this many days, up to the newest day sent"
    )
    precision_floor: float = Field(0.8, description="a label whose audited interval is below this is flagged")
    confidence: float = Field(0.95, description="one-sided Clopper–Pearson confidence of each bound")


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


def build_review_assets(schemes: list[Scheme]) -> list[dg.AssetsDefinition]:
    return [build_tasks_asset(schemes), build_corrections_asset(schemes)]


def build_tasks_asset(schemes: list[Scheme]) -> dg.AssetsDefinition:
    @dg.asset(
        key=TASKS_KEY,
        deps=[
            dg.AssetKey([PREDICTIONS_LAYER, DAILY_LABELS]),
            *(dg.AssetKey([QUALITY_LAYER, "label_issues", s.name]) for s in schemes),
        ],
        partitions_def=daily_partitions,
        group_name=TASKS_GROUP,
        kinds={"labelstudio", "parquet"},
        description="The day's items sent to Label Studio, one project per scheme (`autotag <scheme>`): an "
        "audit stream (a uniform sample of each shipped label's items, for unbiased precision) and a hard-case "
        "stream (near a threshold, a second kind disagrees, needs-data labels, quality/label_issues), capped, "
        "never an item twice; the model's labels pre-filled. Records each item's Label Studio task id.",
    )
    def review_tasks(
        context: dg.AssetExecutionContext,
        config: ReviewTasksRunConfig,
        lake: LakeResource,
        mlflow: MlflowResource,
        label_studio: LabelStudioResource,
    ) -> dg.MaterializeResult:
        dt, root = context.partition_key, lake.lake()
        client = _connected(label_studio)
        predictions = pl.read_parquet(partition_dir(root, PREDICTIONS_LAYER, DAILY_LABELS, dt) / PART_FILE)
        corpus = pl.read_parquet(partition_dir(root, CORPUS_LAYER, CORPUS_ITEMS, dt) / PART_FILE)
        frames, counts, notes = [], {}, []
        for scheme in schemes:
            rows = predictions.filter(pl.col("scheme") == scheme.name)
            if rows.is_empty():
                notes.append(f"{scheme.name}: no predictions on {dt}")
                continue
            frame, scheme_counts, note = send_scheme(
                client, root, mlflow.uri(), scheme, dt, rows, corpus, config.options()
            )
            frames.append(frame)
            counts.update({f"{scheme.name}: {k}": v for k, v in scheme_counts.items()})
            notes += [note] if note else []
        table = pl.concat(frames) if frames else pl.DataFrame(schema=TASK_COLUMNS)
        with staged_partition(root, REVIEW_LAYER, REVIEW_TASKS, dt) as staging:
            write_parquet(table.to_arrow(), staging / PART_FILE)
        for note in notes:
            context.log.info(note)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "label_studio": client.url,
                "counts": dg.MetadataValue.json(counts),
                "notes": "\n".join(notes) or "none",
                "path": path_value(partition_dir(root, REVIEW_LAYER, REVIEW_TASKS, dt)),
                "preview": preview(
                    table.with_columns(pl.col("reasons").list.join(", ")),
                    ["scheme", "itemid", "stream", "reasons", "task_id"],
                ),
            }  # fmt: skip
        )

    return review_tasks


def _connected(resource: LabelStudioResource):
    try:
        client = resource.client()
        client.check()
    except LabelStudioError as exc:
        raise dg.Failure(description=str(exc)) from None
    return client


def send_scheme(client, root, mlflow_uri, scheme, dt, rows, corpus, options) -> tuple[pl.DataFrame, dict, str]:
    """Choose one scheme's tasks for the day, send those not yet in its project; (rows, counts, note)."""
    choices = scheme_choices(root, scheme, rows)
    try:
        project = client.ensure_project(
            project_title(scheme.name), label_config(choices), f"autotag review: {scheme.name}"
        )
        in_project = {
            t["data"]["itemid"]: (int(t["id"]), t["data"].get("dt")) for t in client.tasks(project) if "itemid" in t["data"]
        }  # fmt: skip
    except LabelStudioError as exc:
        raise dg.Failure(description=str(exc)) from None
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
    try:
        ids = client.import_tasks(project, task_payloads(new, scheme.name, dt, choices))
    except LabelStudioError as exc:
        raise dg.Failure(description=str(exc)) from None
    known = {**{i: t for i, (t, _) in in_project.items()}, **dict(zip(new["itemid"].to_list(), ids))}
    frame = tasks.with_columns(
        pl.lit(scheme.name).alias("scheme"),
        pl.lit(project, dtype=pl.Int64).alias("project_id"),
        pl.col("itemid").replace_strict(known, default=None, return_dtype=pl.Int64).alias("task_id"),
        pl.lit(datetime.now(UTC)).cast(TASK_COLUMNS["sent_at"]).alias("sent_at"),
    ).select(list(TASK_COLUMNS))
    counts["sent_now"], counts["already_in_label_studio"] = len(ids), tasks.height - new.height
    return frame, counts, f"{scheme.name}: {note}" if note else ""


def build_corrections_asset(schemes: list[Scheme]) -> dg.AssetsDefinition:
    check = "audited_precision"

    @dg.asset(
        key=CORRECTIONS_KEY,
        deps=[TASKS_KEY],
        group_name=CORRECTIONS_GROUP,
        kinds={"labelstudio", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                check,
                asset=CORRECTIONS_KEY,
                description="WARN listing labels whose audited precision interval "
                "(uniform audit samples over the trailing window) lies below the floor",
            )
        ],  # fmt: skip
        description="Reviewers' completed annotations from Label Studio (itemid, scheme, labels, annotator, "
        "annotated_at, annotation id), upserted by annotation id into lake/review/corrections/; and each "
        "shipped label's audited precision with its interval (audited_precision.parquet).",
    )
    def review_corrections(
        context: dg.AssetExecutionContext,
        config: ReviewCorrectionsRunConfig,
        lake: LakeResource,
        label_studio: LabelStudioResource,
    ) -> dg.MaterializeResult:
        root = lake.lake()
        client = _connected(label_studio)
        pulled, skipped = [], 0
        try:
            users = client.users()
            for scheme in schemes:
                project = client.find_project(project_title(scheme.name))
                if project is None:
                    continue
                rows, n_skipped = annotation_rows(client.annotated_tasks(project), scheme.name, users)
                pulled.append(rows)
                skipped += n_skipped
        except LabelStudioError as exc:
            raise dg.Failure(description=str(exc)) from None
        new = pl.concat(pulled) if pulled else annotation_rows([], "", {})[0]
        merged, changes = upsert(read_corrections(root), new)
        tasks = read_tasks(root)
        end = tasks["dt"].max() or datetime.now(UTC).date().isoformat()  # the window ends at the newest day sent
        audits = [
            audited_precision(
                tasks.filter(pl.col("scheme") == s.name), merged.filter(pl.col("scheme") == s.name), gate_name(s),
                end, config.window_days, config.precision_floor, config.confidence,
            ).with_columns(pl.lit(s.name).alias("scheme"))
            for s in schemes
        ]  # fmt: skip
        audit = pl.concat(audits).select("scheme", pl.exclude("scheme"))
        target = root / REVIEW_LAYER / REVIEW_CORRECTIONS
        with staged_directory(root, target) as staging:
            write_parquet(merged.to_arrow(), staging / CORRECTIONS_FILE)
            write_parquet(audit.to_arrow(), staging / AUDIT_FILE)
        flagged = audit.filter(pl.col("flagged"))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": merged.height,
                **changes,
                "skipped_by_reviewer": skipped,
                "audited_precision": table_value(audit),
                "path": path_value(target),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=check,
                    passed=flagged.is_empty(),
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"flagged": table_value(flagged), "floor": config.precision_floor},
                    description=f"{flagged.height} label(s) below the floor: "
                    + (", ".join(f"{s}: {lb}" for s, lb in flagged.select("scheme", "label").iter_rows()) or "none"),
                )
            ],
        )

    return review_corrections
