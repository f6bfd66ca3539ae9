"""Retention options: declared once here; run_config.py derives the job's run config from them."""

from dataclasses import dataclass

from dagster_autotag.layers import CLEAN_LAYER, QUARANTINE_LAYER, RAW_LAYER
from dagster_autotag.options import option

# Layers whose partitions consumers and models read: published days and training windows keep theirs.
NEVER_EXPIRE = frozenset({"published", "datasets", "quality", "analytics"})


@dataclass(frozen=True)
class RetentionOptions:
    bulky_layers: tuple[str, ...] = option(
        (RAW_LAYER, CLEAN_LAYER, QUARANTINE_LAYER),
        "lake layers whose daily partitions expire (raw/clean hold the large ASR/OCR payloads; corpus and "
        "predictions may be added: published days and training windows keep theirs)",
    )
    keep_days: int = option(60, "a partition of a bulky layer expires when its day is this many days before today")
    staging_hours: float = option(
        24.0, "a lake/_staging folder (or a token cache .tmp) untouched this long is a crashed write's leftover"
    )
    token_cache_days: int = option(14, "token-cache files (datasets/<scheme>/token_cache) unused this long expire")
    keep_versions: int = option(3, "the newest versions of each registered model keep their MLflow artifacts")
    archived_days: int = option(
        30, "a version without alias, not serving and not among the newest, loses its artifacts at this age"
    )
    dry_run: bool = option(False, "list what would be deleted, delete nothing")

    def __post_init__(self):
        forbidden = sorted(set(self.bulky_layers) & NEVER_EXPIRE)
        if forbidden:
            raise ValueError(f"retention never deletes partitions of {forbidden}")
        if self.keep_days < 1 or self.keep_versions < 1 or self.staging_hours <= 0:
            raise ValueError("keep_days and keep_versions must be ≥ 1 and staging_hours > 0")
        if self.token_cache_days < 0 or self.archived_days < 0:
            raise ValueError("token_cache_days and archived_days must be ≥ 0")
