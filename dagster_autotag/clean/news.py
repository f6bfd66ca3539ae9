"""raw/news_pool (one row per item × tag) → clean/news_items (one row per itemid)."""

from dataclasses import dataclass

import polars as pl

from dagster_autotag.clean.text import normalise_columns

TEXT_COLUMNS = ["title", "summary"]


@dataclass
class NewsItemsResult:
    items: pl.DataFrame
    stats: dict[str, int]


def build_news_items(raw: pl.LazyFrame) -> NewsItemsResult:
    """Rows are merged per itemid in ingest order (file, line): the first non-null title, summary,
    dtype and create_time win; tag ids from every row and every comma list become one de-duplicated,
    numerically sorted list."""
    rows = raw.sort("_file", "_line").collect()
    tag_ids = (
        rows.lazy()
        .select("itemid", pl.col("relate_app_tag_id").str.split(",").alias("tag_id"))
        .explode("tag_id")
        .with_columns(pl.col("tag_id").str.strip_chars())
        .filter(pl.col("tag_id").is_not_null() & (pl.col("tag_id") != ""))
        .unique(["itemid", "tag_id"])
        .sort("itemid", pl.col("tag_id").cast(pl.Int64, strict=False), "tag_id", nulls_last=True)
        .group_by("itemid", maintain_order=True)
        .agg(pl.col("tag_id").alias("tag_ids"))
    )
    items = (
        rows.lazy()
        .group_by("itemid", maintain_order=True)
        .agg(
            pl.col("title").drop_nulls().first(),
            pl.col("summary").drop_nulls().first(),
            pl.col("dtype").drop_nulls().first(),
            pl.col("create_time").drop_nulls().first(),
            pl.len().cast(pl.Int32).alias("source_rows"),
        )
        .join(tag_ids, on="itemid", how="left", maintain_order="left")
        .with_columns(pl.col("tag_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .sort("itemid")
        .collect()
    )
    # Normalised after merging: a null stays null and a value never becomes null, so the first
    # non-null value is the same either way, and there are a third as many items as rows.
    items = normalise_columns(items, TEXT_COLUMNS)
    stats = {
        "rows_in": len(rows),
        "rows_out": len(items),
        "items_with_several_rows": int((items["source_rows"] > 1).sum()),
        "items_without_tags": int((items["tag_ids"].list.len() == 0).sum()),
        "items_without_title": int(items["title"].is_null().sum() + (items["title"] == "").sum()),
    }
    return NewsItemsResult(items=items, stats=stats)
