"""String rows from a source → typed raw rows, export-filtered, with bad rows set aside.

Both sources pass through here, so Hive and landing files produce identical raw Parquet. The export
filters are applied first (as Hive's WHERE would), then the row contract: required ids present,
timestamps and integers parseable. Nothing disappears silently: filtered rows are counted by
reason, failing rows are returned for quarantine with the reason and the raw values.
"""

from dataclasses import dataclass, field

import numpy as np
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
_MAX_SLICES = 256  # above this many runs of good rows, one filtered copy beats a table of slices
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
    # Predicates and conversions run in polars on the columns they need; the good rows' string
    # columns are taken from `batch` as they are (zero-copy where few rows go), because a round trip
    # through polars copied every kilobyte JSON payload twice.
    frame = pl.from_arrow(batch, rechunk=False)
    exported, removed = pl.lit(True), []
    for reason, keep in export_filters(table.name):
        removed.append((exported & ~keep).sum().alias(reason))  # counted once, by the first rule
        exported = exported & keep
    filtered = {k: v for k, v in frame.select(removed).row(0, named=True).items() if v} if removed else {}

    converted, problems = {}, []
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
            converted[col.name] = parsed
            problems.append(pl.when(value.is_not_null() & parsed.is_null()).then(pl.lit(f"unparsable {col.name}")))
        elif col.kind == "int":
            parsed = value.str.strip_chars().cast(pl.Int64, strict=False)
            converted[col.name] = parsed
            problems.append(
                pl.when(value.is_not_null() & parsed.is_null()).then(pl.lit(f"{col.name} is not an integer"))
            )
        if col.required:
            problems.append(
                pl.when(value.is_null() | (value.str.strip_chars() == "")).then(pl.lit(f"missing {col.name}"))
            )
    reason = pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit(None, pl.String)
    status = frame.with_columns(exported.alias("exported"), reason.alias("_reason"))  # literals broadcast
    is_bad = status["exported"] & status["_reason"].is_not_null() & (status["_reason"] != "")
    is_good = (status["exported"] & ~is_bad).fill_null(False)

    quarantine = frame.filter(is_bad).select(
        pl.lit(source).alias(SOURCE_COLUMN),
        pl.col(FILE_COLUMN),
        pl.col(LINE_COLUMN),
        pl.concat_str([pl.col(c).fill_null(NULL_LITERAL) for c in table.column_names], separator="\t").alias("raw"),
        status["_reason"].filter(is_bad).alias("reason"),
    )
    good = _rows_where(batch, is_good.to_numpy())
    typed = frame.filter(is_good).select(**converted).to_arrow() if converted else None
    schema = typed_schema(table)
    columns = [
        (typed if c.name in converted else good).column(c.name).cast(schema.field(c.name).type) for c in table.columns
    ]
    columns += [
        pa.repeat(pa.scalar(source, pa.string()), good.num_rows),
        good.column(FILE_COLUMN),
        good.column(LINE_COLUMN),
    ]
    return TypedBatch(rows=pa.Table.from_arrays(columns, schema=schema), quarantine=quarantine, filtered=filtered)


def _rows_where(batch: pa.Table, keep: np.ndarray) -> pa.Table:
    """Rows where `keep`, as zero-copy slices when they come in few runs (bad rows are rare in the
    media tables), else one filtered copy (news_pool's export filters drop rows all over)."""
    if keep.all():
        return batch
    edges = np.flatnonzero(np.diff(np.concatenate(([False], keep, [False])).astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) > _MAX_SLICES:
        return batch.filter(pa.array(keep))
    return pa.concat_tables([batch.slice(a, b - a) for a, b in zip(starts, ends)]) if len(starts) else batch.slice(0, 0)
