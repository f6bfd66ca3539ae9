"""raw/asr and raw/ocr → clean/video_asr and clean/video_ocr (one row per video_id)."""

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from dagster_autotag.clean.media_json import MediaShapeError, asr_text, ocr_text
from dagster_autotag.clean.text import normalise_columns
from dagster_autotag.ingest.typecast import QUARANTINE_SCHEMA


@dataclass
class VideoTextResult:
    videos: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int]


def build_video_asr(raw: pl.LazyFrame) -> VideoTextResult:
    return _build(raw, "result_asr", "asr_text", asr_text, ("segments",))


def build_video_ocr(raw: pl.LazyFrame) -> VideoTextResult:
    return _build(raw, "ocr_info", "ocr_text", ocr_text, ("frames", "captions"))


def _build(
    raw: pl.LazyFrame, json_column: str, text_column: str, parse: Callable, count_names: tuple[str, ...]
) -> VideoTextResult:
    rows = raw.sort("_file", "_line").collect()
    parsed: list[tuple | None] = []
    reasons: list[str | None] = []
    # JSON shapes vary per row, so this is the one per-row Python loop in the clean layer.
    for value in rows[json_column].to_list():
        try:
            parsed.append(parse(value))
            reasons.append(None)
        except MediaShapeError as err:
            parsed.append(None)
            reasons.append(str(err))
    ok = [p is not None for p in parsed]
    good_values = [p for p in parsed if p is not None]
    good = (
        rows.filter(pl.Series(ok))
        .select("video_id", "_file", "_line")
        .with_columns(
            pl.Series(text_column, [p[0] for p in good_values], dtype=pl.String),
            *(pl.Series(name, [p[i + 1] for p in good_values], dtype=pl.Int32) for i, name in enumerate(count_names)),
        )
    )
    good = normalise_columns(good, [text_column])
    # A video exported more than once keeps its longest recognised text (ties: first in ingest order).
    videos = (
        good.with_columns(
            pl.col(text_column).str.len_chars().alias("_chars"), pl.len().over("video_id").alias("source_rows")
        )
        .sort(["video_id", "_chars", "_file", "_line"], descending=[False, True, False, False])
        .unique("video_id", keep="first", maintain_order=True)
        .select("video_id", text_column, *count_names, pl.col("source_rows").cast(pl.Int32))
    )
    quarantine = (
        rows.filter(~pl.Series(ok))
        .select(
            "_source",
            "_file",
            "_line",
            pl.col(json_column).alias("raw"),
            pl.Series("reason", [r for r in reasons if r]),
        )
        .cast(QUARANTINE_SCHEMA)
    )
    stats = {
        "rows_in": len(rows),
        "rows_out": len(videos),
        "quarantined": len(quarantine),
        "duplicate_rows": len(good) - len(videos),
        "videos_without_text": int((videos[text_column] == "").sum()),
    }
    return VideoTextResult(videos=videos, quarantine=quarantine, stats=stats)
