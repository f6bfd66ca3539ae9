"""corpus/items and corpus/label_distribution (daily), datasets/<scheme> (one per configured scheme).

Thin: read the lake, call corpus/*.py, write, report. The corpus config is read once when the code
location loads, so a new scheme in corpus.yaml shows up as a new datasets/<scheme> asset.
"""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from dagster_autotag.corpus.chart import distribution_chart
from dagster_autotag.corpus.config import CorpusConfig, Scheme
from dagster_autotag.corpus.dataset import DatasetResult, build_dataset, distribution_text, markdown_table, window
from dagster_autotag.corpus.distribution import distribution_markdown, label_distribution
from dagster_autotag.corpus.items import CorpusItemsResult, build_corpus_items, item_label_counts
from dagster_autotag.corpus.schemes import scheme_label_set
from dagster_autotag.corpus.splits import SPLITS, SplitOptions, keys_in_two_splits
from dagster_autotag.lake import PART_FILE, read_partition, staged_partition, write_parquet, write_partition
from dagster_autotag.layers import (
    CLEAN_LAYER,
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DATASETS_LAYER,
    LABEL_DISTRIBUTION,
    NEWS_ITEMS,
    TAGS,
    VIDEO_ASR,
    VIDEO_OCR,
)
from dagster_autotag.metadata import NOT_EMPTY_SPEC, check_specs, counts_table, not_empty_check, path_value, preview
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.resources import LakeResource
from dagster_autotag.review.corrections import review_labels
from dagster_autotag.run_config import config_from_dataclass, dataclass_default

ITEMS_KEY = dg.AssetKey([CORPUS_LAYER, CORPUS_ITEMS])
DISTRIBUTION_KEY = dg.AssetKey([CORPUS_LAYER, LABEL_DISTRIBUTION])


def _clean(name: str) -> dg.AssetKey:
    return dg.AssetKey([CLEAN_LAYER, name])


def _tags(lake: LakeResource, dt: str) -> pl.DataFrame:
    return read_partition(lake.lake(), CLEAN_LAYER, TAGS, dt).collect()


def _md_frame(frame: pl.DataFrame) -> dg.MarkdownMetadataValue:
    return dg.MetadataValue.md(markdown_table(frame))


def build_corpus_assets(config: CorpusConfig) -> list[dg.AssetsDefinition]:
    datasets = [build_dataset_asset(s) for s in config.schemes.values()]
    return [build_items_asset(config), build_distribution_asset(config)] + datasets


def build_items_asset(config: CorpusConfig) -> dg.AssetsDefinition:
    @dg.asset(
        key=ITEMS_KEY,
        deps=[_clean(NEWS_ITEMS), _clean(VIDEO_ASR), _clean(VIDEO_OCR), _clean(TAGS)],
        partitions_def=daily_partitions,
        group_name="corpus",
        kinds={"polars", "parquet"},
        check_specs=check_specs(
            ITEMS_KEY, [("itemid_unique", True, "ERROR when the joins duplicated an item"), NOT_EMPTY_SPEC]
        ),
        description="Each clean news item with its labels per scheme, rule labels, and for videos the ASR/OCR "
        "text (left join; has_asr/has_ocr flags); `text` is the model input built by the configured template.",
    )
    def corpus_items(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        dt = context.partition_key
        root = lake.lake()
        result = build_corpus_items(
            read_partition(root, CLEAN_LAYER, NEWS_ITEMS, dt),
            read_partition(root, CLEAN_LAYER, VIDEO_ASR, dt),
            read_partition(root, CLEAN_LAYER, VIDEO_OCR, dt),
            _tags(lake, dt),
            config,
        )
        path = write_partition(root, CORPUS_LAYER, CORPUS_ITEMS, dt, result.items)
        return items_result(result, config, path)

    return corpus_items


def items_result(result: CorpusItemsResult, config: CorpusConfig, path: Path) -> dg.MaterializeResult:
    items = result.items
    duplicates = items.height - items["itemid"].n_unique()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": items.height,
            **result.stats,
            "path": path_value(path),
            "join_coverage": _md_frame(
                result.coverage.with_columns(
                    (pl.col("with_asr") / pl.col("items")).round(4).alias("asr_share"),
                    (pl.col("with_ocr") / pl.col("items")).round(4).alias("ocr_share"),
                )
            ),
            "label_counts": counts_table(item_label_counts(items, config), key="label"),
            "rule_hits": _md_frame(result.rule_hits),
            "top_unknown_tag_ids": counts_table(result.top_unknown_tag_ids, key="tag id (not in clean/tags)"),
            "preview": preview(items, ["itemid", "dtype", "text", "content_labels", "rule_labels"]),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="itemid_unique", passed=duplicates == 0, metadata={"duplicate_itemids": duplicates}
            ),
            not_empty_check(items.height),
        ],
    )


def build_distribution_asset(config: CorpusConfig) -> dg.AssetsDefinition:
    @dg.asset(
        key=DISTRIBUTION_KEY,
        deps=[ITEMS_KEY, _clean(TAGS)],
        partitions_def=daily_partitions,
        group_name="corpus",
        kinds={"polars", "parquet"},
        description="Per scheme: label counts and ratios, all-zero share, labels per item — Parquet, a Markdown "
        "table and a bar chart (Chinese labels, CJK font).",
    )
    def label_distribution_asset(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        dt = context.partition_key
        items = read_partition(lake.lake(), CORPUS_LAYER, CORPUS_ITEMS, dt).collect()
        tags = _tags(lake, dt)
        label_sets = {name: scheme_label_set(s, tags) for name, s in config.schemes.items()}
        dist = label_distribution(items, config, label_sets)
        chart = distribution_chart(dist, f"corpus/items {dt}")
        if chart.note:
            context.log.warning(f"label distribution chart: {chart.note}")
        with staged_partition(lake.lake(), CORPUS_LAYER, LABEL_DISTRIBUTION, dt) as staging:
            write_parquet(dist.to_arrow(), staging / PART_FILE)
            if chart.png is not None:
                (staging / "chart.png").write_bytes(chart.png)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dist.height,
                "chart": dg.MetadataValue.md(chart.markdown(f"label distribution {dt}")),
                "distribution": dg.MetadataValue.md(distribution_markdown(dist)),
                **chart.summary(),
                "path": path_value(lake.lake() / CORPUS_LAYER / LABEL_DISTRIBUTION / f"dt={dt}"),
            }
        )

    return label_distribution_asset


_RATIOS = dataclass_default(SplitOptions, "ratios")


class DatasetWindow(dg.Config):
    """What datasets/<scheme> reads and checks; SplitOptions' `ratios` as three numbers."""

    window_days: int = Field(90, description="corpus days in the window")
    end_date: str = Field("", description="newest partition to include (YYYY-MM-DD); empty = newest materialised")
    min_examples_per_split: int = Field(5, description="WARN check for non-rare labels with fewer in a split")
    train_ratio: float = Field(_RATIOS[0], description="share of the units in train (the three ratios sum to 1)")
    dev_ratio: float = Field(_RATIOS[1], description="share of the units in dev")
    test_ratio: float = Field(_RATIOS[2], description="share of the units in test")
    memory_budget_mb: int = Field(
        0, description="> 0: pass-2 batches sized to fit it; refuse a window whose keys alone exceed it"
    )
    apply_review_corrections: bool = Field(
        True, description="reviewed items (lake/review/corrections) take the reviewer's labels instead of the editors'"
    )


class DatasetRunConfig(config_from_dataclass(SplitOptions, base=DatasetWindow, exclude=("ratios",))):
    """Run config of datasets/<scheme> (defaults shown in the launchpad): DatasetWindow and every other
    SplitOptions option."""

    def to_dataclass(self) -> SplitOptions:
        return super().to_dataclass(ratios=(self.train_ratio, self.dev_ratio, self.test_ratio))


def build_dataset_asset(scheme: Scheme) -> dg.AssetsDefinition:
    key = dg.AssetKey([DATASETS_LAYER, scheme.name])
    specs = check_specs(
        key,
        [
            ("labels_in_every_split", False, "WARN listing non-rare labels with too few examples in a split"),
            ("no_item_in_two_splits", True, "ERROR when an itemid or an exact duplicate text is in two splits"),
            ("sub_label_implies_gate", True, "ERROR when a row has a sub-label but a negative gate"),
        ],
    )

    @dg.asset(
        key=key,
        # Not partitioned: it reads a trailing window (run config window_days) of the daily corpus.
        deps=[dg.AssetDep(ITEMS_KEY, partition_mapping=dg.AllPartitionMapping())],
        group_name="datasets",
        kinds={"polars", "parquet"},
        check_specs=specs,
        description=f"{scheme.description or scheme.name}: label-stratified train/dev/test Parquet over a trailing "
        "window of corpus/items, duplicates kept together, rare labels listed in manifest.json.",
    )
    def dataset(
        context: dg.AssetExecutionContext, config: DatasetRunConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        root = lake.lake()
        dts = window(root, config.window_days, config.end_date)
        labels = scheme_label_set(scheme, _tags(lake, dts[-1]))
        reviewed = review_labels(root, scheme.name) if config.apply_review_corrections else None
        result = build_dataset(
            root,
            scheme,
            labels,
            config.to_dataclass(),
            config.window_days,
            dts[-1],
            memory_budget_mb=config.memory_budget_mb,
            reviewed=reviewed,
        )
        table = distribution_text(result.distribution)
        context.log.info(table)
        checks = dataset_checks(result, config.min_examples_per_split)
        return dg.MaterializeResult(
            metadata={
                **{f"{s}_rows": result.manifest["rows"][s] for s in SPLITS},
                **result.stats,
                "window": f"{result.manifest['window']['start']} … {result.manifest['window']['end']}",
                "labels": len(labels),
                "rare_labels": dg.MetadataValue.json(result.manifest["rare_labels"]),
                "exclusive": dg.MetadataValue.json(result.manifest.get("exclusive") or {}),
                "distribution": _md_frame(result.distribution),
                "path": path_value(result.path),
            },
            check_results=checks,
        )

    return dataset


def dataset_checks(result: DatasetResult, min_examples: int) -> list[dg.AssetCheckResult]:
    """Computed from the rows actually written, not from the plan."""
    w = result.written
    rare = set(result.manifest["rare_labels"])
    offenders = []
    for row in result.distribution.iter_rows(named=True):
        label = row["label"]
        if label in result.manifest["labels"] and label not in rare:
            short = [s for s in SPLITS if result.manifest["rows"][s] and row[s] < min_examples]
            if short:
                offenders.append(f"{label} ({', '.join(f'{s}={row[s]}' for s in short)})")
    split = w["split"].to_numpy()
    straddling_items = keys_in_two_splits(w["itemid"].to_numpy(), split)
    straddling_texts = keys_in_two_splits(w["text_hash"].to_numpy(), split)
    inconsistent = result.stats["rows_with_sub_label_and_negative_gate"]
    return [
        dg.AssetCheckResult(
            check_name="labels_in_every_split",
            passed=not offenders,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"min_examples": min_examples, "offenders": dg.MetadataValue.json(offenders)},
            description="; ".join(offenders) if offenders else f"every non-rare label has ≥ {min_examples} per split",
        ),
        dg.AssetCheckResult(
            check_name="no_item_in_two_splits",
            passed=straddling_items == 0 and straddling_texts == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"itemids_in_two_splits": straddling_items, "texts_in_two_splits": straddling_texts},
        ),
        dg.AssetCheckResult(
            check_name="sub_label_implies_gate",
            passed=inconsistent == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_with_sub_label_and_negative_gate": inconsistent},
        ),
    ]
