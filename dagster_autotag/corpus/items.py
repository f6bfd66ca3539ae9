"""clean/* of one day → corpus/items: each news item with its video text, input text and labels."""

from dataclasses import dataclass

import polars as pl

from dagster_autotag.corpus.config import CorpusConfig
from dagster_autotag.corpus.input_text import TEXT, input_text_column, text_hash
from dagster_autotag.corpus.rules import rule_hits, rule_label_column
from dagster_autotag.corpus.schemes import scheme_columns, scheme_label_set
from dagster_autotag.corpus.taxonomy import item_content_labels

VIDEO_DTYPE = "yichehao_video"


@dataclass
class CorpusItemsResult:
    items: pl.DataFrame
    label_sets: dict[str, list[str]]
    coverage: pl.DataFrame  # per dtype: items, with_asr, with_ocr, with_both
    rule_hits: pl.DataFrame
    top_unknown_tag_ids: dict[str, int]
    stats: dict[str, int]


def build_corpus_items(
    news: pl.LazyFrame, asr: pl.LazyFrame, ocr: pl.LazyFrame, tags: pl.DataFrame, config: CorpusConfig
) -> CorpusItemsResult:
    """Videos (dtype yichehao_video, itemid = video_id) get ASR/OCR text by left join; has_asr /
    has_ocr say which parts were present. Title, summary, asr_text and ocr_text stay separate;
    `text` is the model input built from them by the configured template."""
    labels = item_content_labels(news.select("itemid", "tag_ids"), tags)
    asr_text = asr.select(pl.col("video_id").alias("itemid"), "asr_text", pl.lit(True).alias("_asr"))
    ocr_text = ocr.select(pl.col("video_id").alias("itemid"), "ocr_text", pl.lit(True).alias("_ocr"))
    is_video = pl.col("dtype") == VIDEO_DTYPE
    joined = (
        news.select("itemid", "dtype", "create_time", "title", "summary")
        .join(asr_text, on="itemid", how="left", maintain_order="left")
        .join(ocr_text, on="itemid", how="left", maintain_order="left")
        .with_columns(
            (is_video & pl.col("_asr").is_not_null()).alias("has_asr"),
            (is_video & pl.col("_ocr").is_not_null()).alias("has_ocr"),
        )
        .with_columns(  # an article never takes a video's text, whatever its id
            pl.when(pl.col("has_asr")).then(pl.col("asr_text")).alias("asr_text"),
            pl.when(pl.col("has_ocr")).then(pl.col("ocr_text")).alias("ocr_text"),
        )
        .drop("_asr", "_ocr")
        .join(labels.frame.lazy(), on="itemid", how="left", maintain_order="left")
        .with_columns(input_text_column(config.input_text))
        .with_columns(rule_label_column(config.rules))
        .collect()
    )
    label_sets = {name: scheme_label_set(s, tags) for name, s in config.schemes.items()}
    items = joined.with_columns(
        text_hash(joined[TEXT]),
        *[e for name, s in config.schemes.items() for e in scheme_columns(s, label_sets[name])],
    )
    columns = [
        "itemid", "dtype", "create_time", "title", "summary", "asr_text", "ocr_text", "has_asr", "has_ocr",
        TEXT, "text_hash", "content_labels", "unknown_tag_ids", "rule_labels",
    ]  # fmt: skip
    columns += [c for s in config.schemes.values() for c in (s.gate_column, s.labels_column)]
    items = items.select(columns)
    coverage = (
        items.group_by("dtype")
        .agg(
            pl.len().alias("items"),
            pl.col("has_asr").sum().alias("with_asr"),
            pl.col("has_ocr").sum().alias("with_ocr"),
            (pl.col("has_asr") & pl.col("has_ocr")).sum().alias("with_both"),
        )
        .sort("dtype")
    )
    pool_ids = items.filter(is_video).select("itemid")
    stats = {
        "items": items.height,
        "videos": pool_ids.height,
        "asr_videos_not_in_pool": asr.select("video_id")
        .collect()
        .join(pool_ids, left_on="video_id", right_on="itemid", how="anti")
        .height,
        "ocr_videos_not_in_pool": ocr.select("video_id")
        .collect()
        .join(pool_ids, left_on="video_id", right_on="itemid", how="anti")
        .height,
        "items_with_rule_labels": int((items["rule_labels"].list.len() > 0).sum()),
        **labels.stats,
    }
    return CorpusItemsResult(
        items=items,
        label_sets=label_sets,
        coverage=coverage,
        rule_hits=rule_hits(items, config.rules),
        top_unknown_tag_ids=labels.top_unknown,
        stats=stats,
    )


def item_label_counts(items: pl.DataFrame, config: CorpusConfig) -> dict[str, int]:
    """Items without a content label; per scheme gate +/−, items without a sub-label, and each label."""
    label_counts = {"(no content label, 全0样本)": int((items["content_labels"].list.len() == 0).sum())}
    for scheme in config.schemes.values():
        gate = items[scheme.gate_column]
        label_counts[f"{scheme.name}: gate +"] = int(gate.sum() or 0)
        label_counts[f"{scheme.name}: gate −"] = int((~gate).sum() or 0)
        label_counts[f"{scheme.name}: no sub-label (全0样本)"] = int(
            (items[scheme.labels_column].list.len() == 0).sum()
        )
        for label, n in (
            items[scheme.labels_column].list.explode(keep_nulls=False, empty_as_null=False).value_counts().iter_rows()
        ):
            label_counts[label] = n
    return label_counts
