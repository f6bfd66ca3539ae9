"""clean/tags → labels: every tag stands for itself and all its ancestors, named by path name.

An item tagged 新车资讯/新车上市/国产新车上市 carries the labels 新车资讯, 新车资讯/新车上市 and
新车资讯/新车上市/国产新车上市. Ancestors come from the tag's own path, so a deep tag still implies
its ancestors when an ancestor row is missing from the snapshot. Ids never leave this module.
"""

from dataclasses import dataclass

import polars as pl

from dagster_autotag.clean.tags import NAME_PATH_SEPARATOR

LABELS_TYPE = pl.List(pl.String)
TOP_UNKNOWN = 10


@dataclass
class ItemLabels:
    frame: pl.DataFrame  # itemid, content_labels (sorted label paths), unknown_tag_ids
    stats: dict[str, int]
    top_unknown: dict[str, int]  # tag id → items carrying it, most frequent first


def ancestor_paths(name_path: str) -> list[str]:
    parts = name_path.split(NAME_PATH_SEPARATOR)
    return [NAME_PATH_SEPARATOR.join(parts[: i + 1]) for i in range(len(parts))]


def tag_label_paths(tags: pl.DataFrame) -> pl.DataFrame:
    """tag_id → the label paths it implies (itself and its ancestors)."""
    return pl.DataFrame(
        {
            "tag_id": tags["tag_id"],
            "label_paths": [ancestor_paths(p) for p in tags["name_path"].to_list()],
        },
        schema={"tag_id": pl.String, "label_paths": LABELS_TYPE},
    )


def item_content_labels(items: pl.LazyFrame, tags: pl.DataFrame) -> ItemLabels:
    """items (itemid, tag_ids) → content label paths per item. Tag ids missing from the tag table
    (other tag types, retired or unknown ids: the export holds active content tags only) are kept
    per item in `unknown_tag_ids` and counted, never silently dropped."""
    exploded = (
        items.select("itemid", pl.col("tag_ids").alias("tag_id"))
        .explode("tag_id", empty_as_null=True)  # keep items without tags (polars 2 drops empty lists)
        .join(tag_label_paths(tags).lazy(), on="tag_id", how="left")
        .collect()
    )
    unknown = exploded.filter(pl.col("tag_id").is_not_null() & pl.col("label_paths").is_null())
    per_item = (
        exploded.lazy()
        .group_by("itemid")
        .agg(
            pl.col("label_paths")
            .list.explode(keep_nulls=False, empty_as_null=False)
            .drop_nulls()
            .unique()
            .sort()
            .alias("content_labels"),
            pl.col("tag_id")
            .filter(pl.col("label_paths").is_null())
            .drop_nulls()
            .unique()
            .sort()
            .alias("unknown_tag_ids"),
        )
        .with_columns(pl.col("content_labels").fill_null(pl.lit([], dtype=LABELS_TYPE)))
        .collect()
    )
    top = (
        unknown.group_by("tag_id")
        .agg(pl.col("itemid").n_unique().alias("items"))
        .sort("items", "tag_id", descending=[True, False])
    )
    stats = {
        "items_with_unknown_tag_ids": unknown["itemid"].n_unique(),
        "unknown_tag_id_occurrences": unknown.height,
        "distinct_unknown_tag_ids": top.height,
        "items_without_content_labels": int((per_item["content_labels"].list.len() == 0).sum()),
    }
    return ItemLabels(per_item, stats, dict(top.head(TOP_UNKNOWN).iter_rows()))
