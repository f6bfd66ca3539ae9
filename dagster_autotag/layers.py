"""The lake's layers and the tables more than one module reads or writes: one spelling each.

A table lives at `lake/<layer>/<table>/dt=<day>/` (lake.py). The layer names are also the first part of
the Dagster asset keys (`clean/tags`, `predictions/daily_labels`, …). Raw table names come from the
export tables (ingest/tables.py); clean/* asset names from clean/clean_step.py.
"""

RAW_LAYER = "raw"
QUARANTINE_LAYER = "quarantine"
CLEAN_LAYER = "clean"
CORPUS_LAYER = "corpus"
DATASETS_LAYER = "datasets"  # datasets/<scheme>: not partitioned
PREDICTIONS_LAYER = "predictions"
PUBLISHED_LAYER = "published"  # where consumers read predictions (analytics views, exports)
QUALITY_LAYER = "quality"  # quality/label_issues/<scheme>: not partitioned

# clean/*, read by corpus/items
NEWS_ITEMS, VIDEO_ASR, VIDEO_OCR, TAGS = "news_items", "video_asr", "video_ocr", "tags"
# corpus/*
CORPUS_ITEMS = "items"
LABEL_DISTRIBUTION = "label_distribution"
# predictions/* and published/*
DAILY_LABELS = "daily_labels"
# review/*: what went to Label Studio (daily) and what reviewers answered (one upserted table)
REVIEW_LAYER = "review"
REVIEW_TASKS, REVIEW_CORRECTIONS = "tasks", "corrections"
