"""String rows from a source → typed raw rows, export-filtered, with bad rows set aside.

Both sources pass through here, so Hive and landing files produce identical raw Parquet. The export
filters are applied first (as Hive's WHERE would), then the row contract: required ids present,
timestamps and integers parseable. Nothing disappears silently: filtered rows are counted by
reason, failing rows are returned for quarantine with the reason and the raw values.
"""

from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from dagster_autotag.ingest.source import FILE_COLUMN, LINE_COLUMN
from dagster_autotag.ingest.tables import (
    CONTENT_TAG_TYPE,
    EXCLUDED_GC,
    EXCLUDED_GRADE,
    KEPT_DTYPES,
    ExportTable,
)
from dagster_autotag.ingest.tsv_format import NULL_LITERAL

TIMEZONE = "Asia/Shanghai"
SOURCE_COLUMN = "_source"
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
QUARANTINE_SCHEMA = {
    SOURCE_COLUMN: pl.String,
    FILE_COLUMN: pl.String,
    LINE_COLUMN: pl.Int64,
    "raw": pl.String,
    "reason": pl.String,
}
_ARROW_KIND = {"string": pa.string(), "int": pa.int64(), "timestamp": pa.timestamp("us", tz=TIMEZONE)}


def typed_schema(table: ExportTable) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, _ARROW_KIND[c.kind]) for c in table.columns]
        + [pa.field(SOURCE_COLUMN, pa.string()), pa.field(FILE_COLUMN, pa.string()), pa.field(LINE_COLUMN, pa.int64())]
    )


@dataclass
class TypedBatch:
    rows: pa.Table  # typed_schema(table)
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    filtered: dict[str, int] = field(default_factory=dict)  # export-filter reason -> rows removed


def export_filters(table_name: str) -> list[tuple[str, pl.Expr]]:
    """(reason, keep-predicate) pairs, identical to the WHERE clauses in sql/exports/*.sql."""
    if table_name == "news_pool":
        return [
            ("dtype not exported", pl.col("dtype").is_in(KEPT_DTYPES).fill_null(False)),
            (f"recommend_grade {EXCLUDED_GRADE}", pl.col("recommend_grade").ne_missing(EXCLUDED_GRADE)),
            ("excluded gc", ~pl.col("gc").is_in(EXCLUDED_GC).fill_null(False)),
        ]
    if table_name == "tag_dim":
        status = pl.col("status").str.strip_chars().cast(pl.Int64, strict=False)
        return [
            ("not a content tag", pl.col("tag_type_name").eq_missing(CONTENT_TAG_TYPE)),
            ("inactive tag", status.eq_missing(1)),
        ]
    return []


def type_batch(table: ExportTable, batch: pa.Table, source: str) -> TypedBatch:
    frame = pl.from_arrow(batch).with_columns(pl.lit(source).alias(SOURCE_COLUMN))
    filtered: dict[str, int] = {}
    for reason, keep in export_filters(table.name):
        mask = frame.select(keep.alias("keep"))["keep"]
        removed = len(frame) - int(mask.sum())
        if removed:
            filtered[reason] = removed
            frame = frame.filter(mask)

    converted, problems = [], []
    for col in table.columns:
        value = pl.col(col.name)
        if col.kind == "timestamp":
            stripped = value.str.strip_chars()
            parsed = pl.coalesce(
                [
                    stripped.str.to_datetime(f, strict=False, time_unit="us", time_zone=TIMEZONE)
                    for f in TIMESTAMP_FORMATS
                ]
            )
            converted.append(parsed.alias(col.name))
            problems.append(pl.when(value.is_not_null() & parsed.is_null()).then(pl.lit(f"unparsable {col.name}")))
        elif col.kind == "int":
            parsed = value.str.strip_chars().cast(pl.Int64, strict=False)
            converted.append(parsed.alias(col.name))
            problems.append(
                pl.when(value.is_not_null() & parsed.is_null()).then(pl.lit(f"{col.name} is not an integer"))
            )
        else:
            converted.append(value)
        if col.required:
            problems.append(
                pl.when(value.is_null() | (value.str.strip_chars() == "")).then(pl.lit(f"missing {col.name}"))
            )
    reason = pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit(None, pl.String)
    frame = frame.with_columns(reason.alias("_reason"))
    is_bad = pl.col("_reason").is_not_null() & (pl.col("_reason") != "")

    bad = frame.filter(is_bad)
    quarantine = bad.select(
        pl.col(SOURCE_COLUMN),
        pl.col(FILE_COLUMN),
        pl.col(LINE_COLUMN),
        pl.concat_str([pl.col(c).fill_null(NULL_LITERAL) for c in table.column_names], separator="\t").alias("raw"),
        pl.col("_reason").alias("reason"),
    )
    good = frame.filter(~is_bad).select(*converted, SOURCE_COLUMN, FILE_COLUMN, LINE_COLUMN)
    return TypedBatch(rows=good.to_arrow().cast(typed_schema(table)), quarantine=quarantine, filtered=filtered)
