"""Reviewers' annotations → corrections, and what they change (pure: no Dagster, no HTTP).

- `annotation_rows`: Label Studio's exported tasks → one row per completed annotation (skipped ones
  are counted, not kept): itemid, scheme, the labels ticked, annotator, when, and the annotation id.
- `upsert`: the corrections table keyed by annotation id; an edited annotation replaces its row, a
  re-pull changes nothing, and an annotation deleted in Label Studio stays (never lost).
- `apply_corrections`: a reviewed item's labels replace the editors' tags (gate and sub-labels), by
  the newest annotation of that item; used by datasets/<scheme>.
- `audited_precision`: each label's precision on its uniform audit sample over a trailing window,
  with the same Clopper–Pearson interval shipping uses; a label whose interval lies below the floor
  is flagged.
"""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from dagster_autotag.layers import REVIEW_CORRECTIONS, REVIEW_LAYER
from dagster_autotag.review.tasks import labels_of

CORRECTIONS_FILE = "corrections.parquet"  # lake/review/corrections/

CORRECTION_SCHEMA = {
    "annotation_id": pl.Int64,
    "itemid": pl.String,
    "scheme": pl.String,
    "labels": pl.List(pl.String),  # the boxes the reviewer ticked (gate name and/or sub-labels)
    "annotator": pl.String,
    "annotated_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "task_id": pl.Int64,
    "stream": pl.String,
    "dt": pl.String,  # the day the task was sent for
}


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def annotation_rows(exported: list[dict], scheme: str, users: dict[int, str]) -> tuple[pl.DataFrame, int]:
    """(CORRECTION_SCHEMA rows, annotations skipped by the reviewer)."""
    rows, skipped = [], 0
    for task in exported:
        data = task.get("data", {})
        for annotation in task.get("annotations", []):
            if annotation.get("was_cancelled"):
                skipped += 1
                continue
            by = annotation.get("completed_by")
            by = by.get("id") if isinstance(by, dict) else by
            rows.append(
                {
                    "annotation_id": int(annotation["id"]),
                    "itemid": str(data["itemid"]),
                    "scheme": data.get("scheme", scheme),
                    "labels": labels_of(annotation.get("result", [])),
                    "annotator": users.get(by, str(by)) if by is not None else None,
                    "annotated_at": _time(annotation.get("created_at")),
                    "updated_at": _time(annotation.get("updated_at") or annotation.get("created_at")),
                    "task_id": int(task["id"]),
                    "stream": data.get("stream"),
                    "dt": data.get("dt"),
                }
            )
    return pl.DataFrame(rows, schema=CORRECTION_SCHEMA), skipped


def upsert(existing: pl.DataFrame | None, new: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """(the merged table, counts: added / updated / unchanged). The newer `updated_at` wins; on a tie the
    pulled row (identical content: a re-pull)."""
    new = new.select(list(CORRECTION_SCHEMA)).cast(CORRECTION_SCHEMA)
    if existing is None or existing.is_empty():
        return new.sort("annotation_id"), {"added": new.height, "updated": 0, "unchanged": 0}
    existing = existing.select(list(CORRECTION_SCHEMA)).cast(CORRECTION_SCHEMA)
    known = existing.join(new.select("annotation_id", pl.col("updated_at").alias("_new")), on="annotation_id")
    updated = int((known["_new"] > known["updated_at"]).sum())
    merged = (
        pl.concat([existing.with_columns(pl.lit(0).alias("_o")), new.with_columns(pl.lit(1).alias("_o"))])
        .sort("annotation_id", "updated_at", "_o")
        .unique("annotation_id", keep="last", maintain_order=True)
        .drop("_o")
    )
    return merged, {"added": new.height - known.height, "updated": updated, "unchanged": known.height - updated}


def latest_labels(corrections: pl.DataFrame, scheme: str) -> pl.DataFrame:
    """itemid → labels of the newest annotation of each reviewed item of `scheme`."""
    return (
        corrections.filter(pl.col("scheme") == scheme)
        .sort("updated_at", "annotation_id")
        .unique("itemid", keep="last")
        .select("itemid", pl.col("labels").alias("_reviewed"))
    )


def read_corrections(lake: Path) -> pl.DataFrame | None:
    path = lake / REVIEW_LAYER / REVIEW_CORRECTIONS / CORRECTIONS_FILE
    return pl.read_parquet(path) if path.exists() else None


def review_labels(lake: Path, scheme: str) -> pl.DataFrame | None:
    """latest_labels of the lake's corrections, or None when nothing was reviewed yet."""
    corrections = read_corrections(lake)
    return None if corrections is None else latest_labels(corrections, scheme)


def apply_corrections(
    frame: pl.LazyFrame, reviewed: pl.DataFrame, gate_name: str, gate_col: str, labels_col: str
) -> pl.LazyFrame:
    """`frame` with the reviewed items' gate and sub-labels replaced by the reviewer's (`reviewed`:
    latest_labels). The gate holds when its box or any sub-label was ticked; nothing ticked = negative.
    Adds `reviewed` (bool) so callers can count the rows that changed hands."""
    if reviewed.is_empty():
        return frame.with_columns(pl.lit(False).alias("reviewed"))
    subs = pl.col("_reviewed").list.filter(pl.element() != gate_name)
    has = pl.col("_reviewed").is_not_null()
    return (
        frame.join(reviewed.lazy(), on="itemid", how="left", maintain_order="left")  # file order: same bytes
        .with_columns(
            pl.when(has)
            .then(pl.col("_reviewed").list.contains(gate_name) | (subs.list.len() > 0))
            .otherwise(pl.col(gate_col))
            .alias(gate_col),
            pl.when(has).then(subs.list.sort()).otherwise(pl.col(labels_col)).alias(labels_col),
            has.alias("reviewed"),
        )
        .drop("_reviewed")
    )


def audited_precision(
    tasks: pl.DataFrame,
    corrections: pl.DataFrame,
    gate_name: str,
    end: str,
    window_days: int,
    floor: float,
    confidence: float,
) -> pl.DataFrame:
    """Per label: audited items in (end − window_days, end], how many the reviewers confirmed, the
    precision and its interval, and `flagged` when the upper bound is below `floor`.

    tasks: review/tasks rows (itemid, dt, stream, audit_labels); corrections: CORRECTION_SCHEMA rows
    of the scheme. A sub-label confirms the gate (it implies it)."""
    from dagster_autotag.train.thresholds import precision_interval

    start = (date.fromisoformat(end) - timedelta(days=window_days - 1)).isoformat()
    sampled = (
        tasks.filter((pl.col("stream") == "audit") & pl.col("dt").is_between(pl.lit(start), pl.lit(end)))
        .select("itemid", pl.col("audit_labels").alias("label"))
        .explode("label")
        .drop_nulls("label")
    )
    reviewed = latest_labels(corrections, corrections["scheme"][0]) if not corrections.is_empty() else None
    if reviewed is None or sampled.is_empty():
        return pl.DataFrame(
            schema={"label": pl.String, "audited": pl.Int64, "confirmed": pl.Int64, "precision": pl.Float64,
                    "lower": pl.Float64, "upper": pl.Float64, "flagged": pl.Boolean}
        )  # fmt: skip
    joined = sampled.join(reviewed, on="itemid", how="inner").with_columns(
        pl.when(pl.col("label") == gate_name)
        .then(pl.col("_reviewed").list.len() > 0)
        .otherwise(pl.col("_reviewed").list.contains(pl.col("label")))
        .alias("ok")
    )
    table = (
        joined.group_by("label")
        .agg(pl.len().cast(pl.Int64).alias("audited"), pl.col("ok").sum().cast(pl.Int64).alias("confirmed"))
        .sort("label")
    )
    lower, upper = precision_interval(table["confirmed"].to_numpy(), table["audited"].to_numpy(), confidence)
    return table.with_columns(
        (pl.col("confirmed") / pl.col("audited")).alias("precision"),
        pl.Series("lower", lower, dtype=pl.Float64),
        pl.Series("upper", upper, dtype=pl.Float64),
    ).with_columns((pl.col("upper") < floor).alias("flagged"))
