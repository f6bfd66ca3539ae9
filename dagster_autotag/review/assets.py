"""review/tasks (daily: items sent to Label Studio) and review/corrections (the reviewers' answers).

Thin: read the lake, call review/sending.py, review/selection.py and review/corrections.py, talk to Label Studio through
review/label_studio.py, write atomically, report. Label Studio is asked first: a server that is down
or refuses the token fails the run with that message before anything is written. review/tasks is
idempotent: items of the day already in the scheme's project are recorded with their existing task
ids instead of being sent again (also after a run that failed between sending and writing).
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import PART_FILE, partition_dir, staged_directory, staged_partition, write_parquet
from dagster_autotag.layers import (
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DAILY_LABELS,
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
from dagster_autotag.review.selection import ReviewOptions
from dagster_autotag.review.sending import TASK_COLUMNS, gate_name, read_tasks, send_scheme
from dagster_autotag.review.tasks import project_title

# two groups, so each job runs whole groups (test_definitions): sending and pulling run apart
TASKS_GROUP, CORRECTIONS_GROUP = "review_tasks", "review_corrections"
TASKS_KEY = dg.AssetKey([REVIEW_LAYER, REVIEW_TASKS])
CORRECTIONS_KEY = dg.AssetKey([REVIEW_LAYER, REVIEW_CORRECTIONS])
AUDIT_FILE = "audited_precision.parquet"


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
            try:
                frame, scheme_counts, note = send_scheme(
                    client, root, mlflow.uri(), scheme, dt, rows, corpus, config.options()
                )
            except LabelStudioError as exc:
                raise dg.Failure(description=str(exc)) from None
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
