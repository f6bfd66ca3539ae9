"""Input drift of a corpus/items partition: its text lengths, dtype mix and ASR/OCR coverage against the
materialised days before it (pure: polars and the lake, no Dagster)."""

from datetime import date, timedelta
from pathlib import Path

import polars as pl

from dagster_autotag.corpus.dataset import corpus_partitions
from dagster_autotag.lake import read_partition
from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER
from dagster_autotag.quality.drift import DriftResult, DriftThresholds, input_drift

INPUT_COLUMNS = ["dtype", "text", "has_asr", "has_ocr"]


def corpus_input_drift(
    lake: Path, dt: str, corpus: pl.DataFrame, reference_days: int, thresholds: DriftThresholds
) -> DriftResult | None:
    """corpus/items of `dt` against the materialised days in the `reference_days` before it; None
    when there is none."""
    start = date.fromisoformat(dt) - timedelta(days=reference_days)
    earlier = [d for d in corpus_partitions(lake) if start <= date.fromisoformat(d) < date.fromisoformat(dt)]
    if not earlier:
        return None
    reference = pl.concat(
        [read_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, d).select(INPUT_COLUMNS).collect() for d in earlier]
    )
    result = input_drift(reference, corpus, thresholds)
    result.notes.append(f"reference days {earlier[0]} … {earlier[-1]} ({len(earlier)})")
    return result
