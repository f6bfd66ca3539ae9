"""The raw half of each table's Dagster step (table_steps.py): the spec, checks and body of raw/<table>.

One raw asset per Hive export, daily partitioned, materialised in the same step as the clean asset
built from it; this module defines no asset itself. Thin: the work is in ingest/raw.py. It sits beside
the step that runs it, so ingest/ stays free of Dagster.
"""

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from dagster_autotag.automation.freshness import arrived_check, freshness_spec
from dagster_autotag.ingest.raw import ingest_partition
from dagster_autotag.ingest.tables import ExportTable
from dagster_autotag.ingest.typecast import typed_schema
from dagster_autotag.lake import PART_FILE
from dagster_autotag.layers import RAW_LAYER
from dagster_autotag.metadata import (
    NOT_EMPTY_SPEC,
    QUARANTINE_SPEC,
    check_specs,
    counts_table,
    not_empty_check,
    path_value,
    preview,
    quarantine_check,
)
from dagster_autotag.resources import ExportSource, LakeResource

PREVIEW_COLUMNS = {
    "news_pool": ["itemid", "title", "relate_app_tag_id", "dtype", "create_time"],
    "asr": ["video_id", "result_asr"],
    "ocr": ["video_id", "ocr_info"],
    "tag_dim": ["id", "tag_name", "tag_path_name", "status"],
}


def raw_key(table: ExportTable) -> dg.AssetKey:
    return dg.AssetKey([RAW_LAYER, table.name])


def raw_spec(table: ExportTable) -> dg.AssetSpec:
    return dg.AssetSpec(
        raw_key(table),
        group_name="ingest",
        kinds={"hive", "parquet"},
        description=f"`{table.hive_table}` export rows as typed Parquet, with source, file and line of each row.",
    )


def raw_check_specs(table: ExportTable) -> list[dg.AssetCheckSpec]:
    return check_specs(
        raw_key(table),
        [
            ("schema_contract", True, "ERROR when the written Parquet schema is not the raw contract"),
            QUARANTINE_SPEC,
            NOT_EMPTY_SPEC,
            freshness_spec(),
        ],
    )


def materialize_raw(
    context: dg.AssetExecutionContext, table: ExportTable, export_source: ExportSource, lake: LakeResource
) -> dg.MaterializeResult:
    key = raw_key(table)
    reader = export_source.reader()
    report = ingest_partition(reader, table, context.partition_key, lake.lake())
    context.log.info(f"{table.name} {report.dt}: {report.rows_out:,} rows, {report.quarantined:,} quarantined")
    written = pq.read_schema(report.path / PART_FILE)
    expected = typed_schema(table)
    sample = pl.read_parquet(report.path / PART_FILE, n_rows=5)
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            "dagster/row_count": report.rows_out,
            "rows_in": report.rows_in,
            "rows_out": report.rows_out,
            "quarantined": report.quarantined,
            "quarantine_reasons": counts_table(report.quarantine_reasons),
            "filtered_by_export_rules": counts_table(report.filtered),
            "source": reader.source_name,
            "files": report.files,
            "path": path_value(report.path),
            "preview": preview(sample, PREVIEW_COLUMNS[table.name]),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=key,
                check_name="schema_contract",
                passed=written.equals(expected),
                metadata={"expected": str(expected), "written": str(written)},
            ),
            quarantine_check(
                report.quarantined, report.rows_out + report.quarantined, lake.quarantine_share_limit, key
            ),
            not_empty_check(report.rows_out, key),
            arrived_check(key, context.partition_key),
        ],
    )
