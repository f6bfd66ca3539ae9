"""The clean half of each table's Dagster step (table_steps.py): the spec, checks and body of clean/*.

Each clean asset is daily partitioned and materialised in its raw table's step; this module defines
no asset itself. Thin: read the raw partition, call clean/*.py, write, report.
"""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import polars as pl

from dagster_autotag.clean.news import build_news_items
from dagster_autotag.clean.tags import build_tags
from dagster_autotag.clean.video import VideoTextResult, build_video_asr, build_video_ocr
from dagster_autotag.lake import partition_dir, read_partition, write_partition
from dagster_autotag.layers import CLEAN_LAYER, QUARANTINE_LAYER, RAW_LAYER
from dagster_autotag.metadata import (
    NOT_EMPTY_SPEC,
    QUARANTINE_SPEC,
    check_specs,
    not_empty_check,
    path_value,
    preview,
    quarantine_check,
)
from dagster_autotag.resources import LakeResource


@dataclass(frozen=True)
class CleanAsset:
    """One clean asset: what it is built from, its spec and checks, and how to materialise it."""

    raw_table: str
    spec: dg.AssetSpec
    check_specs: list[dg.AssetCheckSpec]
    materialize: Callable[[dg.AssetExecutionContext, LakeResource], dg.MaterializeResult]


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey([CLEAN_LAYER, name])


def _spec(name: str, raw_table: str, description: str) -> dg.AssetSpec:
    # skippable: the shared step leaves it out when a blocking check on its raw asset fails
    return dg.AssetSpec(
        _key(name),
        deps=[dg.AssetKey([RAW_LAYER, raw_table])],
        group_name="clean",
        kinds={"polars", "parquet"},
        description=description,
        skippable=True,
    )


def _stats_metadata(stats: dict[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in stats.items()}


def _news_items(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    key, dt = _key("news_items"), context.partition_key
    result = build_news_items(read_partition(lake.lake(), RAW_LAYER, "news_pool", dt))
    path = write_partition(lake.lake(), CLEAN_LAYER, "news_items", dt, result.items)
    duplicates = result.items.height - result.items["itemid"].n_unique()
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            "dagster/row_count": result.items.height,
            **_stats_metadata(result.stats),
            "path": path_value(path),
            "preview": preview(result.items, ["itemid", "title", "dtype", "tag_ids"]),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=key,
                check_name="itemid_unique",
                passed=duplicates == 0,
                metadata={"duplicate_itemids": duplicates},
            ),
            not_empty_check(result.items.height, key),
        ],
    )


news_items = CleanAsset(
    raw_table="news_pool",
    spec=_spec(
        "news_items", "news_pool", "One row per itemid: normalised title/summary, dtype, create_time, merged tag ids."
    ),
    check_specs=check_specs(
        _key("news_items"), [("itemid_unique", True, "ERROR when an itemid appears twice"), NOT_EMPTY_SPEC]
    ),
    materialize=_news_items,
)


def _video_asset(
    name: str, raw_table: str, build: Callable[[pl.LazyFrame], VideoTextResult], text_column: str, description: str
) -> CleanAsset:
    key = _key(name)

    def materialize(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        dt = context.partition_key
        result = build(read_partition(lake.lake(), RAW_LAYER, raw_table, dt))
        path = write_partition(lake.lake(), CLEAN_LAYER, name, dt, result.videos)
        write_partition(lake.lake(), QUARANTINE_LAYER, name, dt, result.quarantine)
        return dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": result.videos.height,
                **_stats_metadata(result.stats),
                "path": path_value(path),
                "quarantine_path": path_value(partition_dir(lake.lake(), QUARANTINE_LAYER, name, dt)),
                "preview": preview(result.videos, ["video_id", text_column]),
            },
            check_results=[
                quarantine_check(
                    result.stats["quarantined"], result.stats["rows_in"], lake.quarantine_share_limit, key
                ),
                not_empty_check(result.videos.height, key),
            ],
        )

    return CleanAsset(
        raw_table=raw_table,
        spec=_spec(name, raw_table, description),
        check_specs=check_specs(key, [QUARANTINE_SPEC, NOT_EMPTY_SPEC]),
        materialize=materialize,
    )


video_asr = _video_asset(
    "video_asr",
    "asr",
    build_video_asr,
    "asr_text",
    "video_id → recognised speech as one text in time order; unknown JSON shapes quarantined.",
)
video_ocr = _video_asset(
    "video_ocr",
    "ocr",
    build_video_ocr,
    "ocr_text",
    "video_id → on-screen text with captions repeated across frames removed; unknown JSON shapes quarantined.",
)


def _tags(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    key, dt = _key("tags"), context.partition_key
    result = build_tags(read_partition(lake.lake(), RAW_LAYER, "tag_dim", dt))
    path = write_partition(lake.lake(), CLEAN_LAYER, "tags", dt, result.tags)
    write_partition(lake.lake(), QUARANTINE_LAYER, "tags", dt, result.quarantine)
    levels = result.tags.group_by("level").len().sort("level")
    return dg.MaterializeResult(
        asset_key=key,
        metadata={
            "dagster/row_count": result.tags.height,
            **_stats_metadata(result.stats),
            "tags_per_level": dg.MetadataValue.md(
                "| level | tags |\n|---:|---:|\n" + "\n".join(f"| {lv} | {n} |" for lv, n in levels.iter_rows())
            ),
            "path": path_value(path),
            "preview": preview(result.tags, ["tag_id", "level", "parent_id", "name_path"]),
        },
        check_results=[
            quarantine_check(result.stats["quarantined"], result.stats["rows_in"], lake.quarantine_share_limit, key),
            not_empty_check(result.tags.height, key),
        ],
    )


tags = CleanAsset(
    raw_table="tag_dim",
    spec=_spec("tags", "tag_dim", "Active content tags with level, parent, id path and name path (新车资讯/新车上市)."),
    check_specs=check_specs(_key("tags"), [QUARANTINE_SPEC, NOT_EMPTY_SPEC]),
    materialize=_tags,
)

CLEAN_ASSETS = [news_items, video_asr, video_ocr, tags]
