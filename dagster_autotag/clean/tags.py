"""raw/tag_dim → clean/tags: active content tags with their parsed hierarchy.

tag_path / tag_path_name hold the chain from the level-1 tag down to the tag itself
("30100,30101" / "新车资讯,谍照"). Separators `,` `/` `>` `|` are accepted. A row whose path does
not end in its own id, or whose id and name chains differ in length, is quarantined.
"""

from dataclasses import dataclass

import polars as pl

from dagster_autotag.ingest.tsv_format import NULL_LITERAL
from dagster_autotag.ingest.typecast import QUARANTINE_SCHEMA

PATH_SEPARATORS = r"\s*[,/>|]\s*"
NAME_PATH_SEPARATOR = "/"  # labels are named by path name: 新车资讯/新车上市


@dataclass
class TagsResult:
    tags: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int]


def build_tags(raw: pl.LazyFrame) -> TagsResult:
    rows = raw.sort("_file", "_line").collect()

    parsed = rows.with_columns(
        pl.col("id").str.strip_chars(),
        _split_path("tag_path").alias("id_path"),
        _split_path("tag_path_name").alias("name_chain"),
    ).with_columns(
        pl.when(pl.col("id_path").list.len() == 0)
        .then(pl.lit("empty tag_path"))
        .when(pl.col("id_path").list.last() != pl.col("id"))
        .then(pl.lit("tag_path does not end with the tag's own id"))
        .when(pl.col("id_path").list.len() != pl.col("name_chain").list.len())
        .then(pl.lit("tag_path and tag_path_name differ in length"))
        .when(pl.col("id").is_duplicated() & (pl.int_range(pl.len()).over("id") > 0))
        .then(pl.lit("duplicate tag id"))
        .alias("_reason")
    )
    bad = parsed.filter(pl.col("_reason").is_not_null())
    quarantine = bad.select(
        "_source",
        "_file",
        "_line",
        pl.concat_str(
            [
                pl.col(c).cast(pl.String).fill_null(NULL_LITERAL)
                for c in ("id", "tag_name", "tag_type_name", "tag_path", "tag_path_name", "status")
            ],
            separator="\t",
        ).alias("raw"),
        pl.col("_reason").alias("reason"),
    ).cast(QUARANTINE_SCHEMA)
    good = parsed.filter(pl.col("_reason").is_null())
    tags = good.select(
        pl.col("id").alias("tag_id"),
        pl.col("tag_name").str.strip_chars(),
        pl.col("id_path").list.len().cast(pl.Int8).alias("level"),
        pl.col("id_path").list.get(-2, null_on_oob=True).alias("parent_id"),
        "id_path",
        pl.col("name_chain").list.join(NAME_PATH_SEPARATOR).alias("name_path"),
    ).sort(pl.col("tag_id").cast(pl.Int64, strict=False), "tag_id")
    known = set(tags["tag_id"].to_list())
    missing_parent = tags.filter(pl.col("parent_id").is_not_null() & ~pl.col("parent_id").is_in(list(known)))
    stats = {
        "rows_in": len(rows),
        "rows_out": len(tags),
        "quarantined": len(quarantine),
        "tags_with_missing_parent": len(missing_parent),
        "max_level": int(tags["level"].max() or 0),
    }
    return TagsResult(tags=tags, quarantine=quarantine, stats=stats)


def _split_path(col: str) -> pl.Expr:
    cleaned = pl.col(col).str.strip_chars().str.strip_chars(",/>|")
    return (
        pl.when(cleaned.is_null() | (cleaned == ""))
        .then(pl.lit([], dtype=pl.List(pl.String)))
        .otherwise(cleaned.str.replace_all(PATH_SEPARATORS, ",").str.split(","))
    )
