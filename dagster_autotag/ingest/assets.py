"""raw/<table> assets: one per Hive export, daily partitioned. Thin: the work is in ingest/raw.py."""

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from dagster_autotag.ingest.raw import RAW_LAYER, ingest_partition
from dagster_autotag.ingest.source import ExportSource
from dagster_autotag.ingest.tables import EXPORT_TABLES, ExportTable
from dagster_autotag.ingest.typecast import typed_schema
from dagster_autotag.lake import PART_FILE
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
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.resources import LakeResource

PREVIEW_COLUMNS = {
    "news_pool": ["itemid", "title", "relate_app_tag_id", "dtype", "create_time"],
    "asr": ["video_id", "result_asr"],
    "ocr": ["video_id", "ocr_info"],
    "tag_dim": ["id", "tag_name", "tag_path_name", "status"],
}


def build_raw_asset(table: ExportTable) -> dg.AssetsDefinition:
    key = dg.AssetKey([RAW_LAYER, table.name])
    specs = check_specs(
        key,
        [
            ("schema_contract", True, "ERROR when the written Parquet schema is not the raw contract"),
            QUARANTINE_SPEC,
            NOT_EMPTY_SPEC,
        ],
    )

    @dg.asset(
        key=key,
        partitions_def=daily_partitions,
        group_name="ingest",
        kinds={"hive", "parquet"},
        check_specs=specs,
        description=f"`{table.hive_table}` export rows as typed Parquet, with source, file and line of each row.",
    )
    def raw_asset(
        context: dg.AssetExecutionContext, export_source: ExportSource, lake: LakeResource
    ) -> dg.MaterializeResult:
        report = ingest_partition(export_source, table, context.partition_key, lake.lake())
        context.log.info(f"{table.name} {report.dt}: {report.rows_out:,} rows, {report.quarantined:,} quarantined")
        written = pq.read_schema(report.path / PART_FILE)
        expected = typed_schema(table)
        sample = pl.read_parquet(report.path / PART_FILE, n_rows=5)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": report.rows_out,
                "rows_in": report.rows_in,
                "rows_out": report.rows_out,
                "quarantined": report.quarantined,
                "quarantine_reasons": counts_table(report.quarantine_reasons),
                "filtered_by_export_rules": counts_table(report.filtered),
                "source": export_source.source_name,
                "files": report.files,
                "path": path_value(report.path),
                "preview": preview(sample, PREVIEW_COLUMNS[table.name]),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="schema_contract",
                    passed=written.equals(expected),
                    metadata={"expected": str(expected), "written": str(written)},
                ),
                quarantine_check(report.quarantined, report.rows_out + report.quarantined, lake.quarantine_share_limit),
                not_empty_check(report.rows_out),
            ],
        )

    return raw_asset


raw_assets = [build_raw_asset(t) for t in EXPORT_TABLES.values()]
