"""The label distribution a prediction partition is compared with: the champion's own predictions on
the scheme's held-out splits (pure: no Dagster, no MLflow).

Predictions, not the editors' labels: a label predicted at recall 0.6 would otherwise look drifted
every day. dev + test by default: both keep the real distribution (train is rebalanced) and were not
trained on, and together halve the sampling noise of dev alone. Capped at `max_rows` (a fixed
sample), so the cost stays seconds when the window holds millions of rows.
"""

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from filelock import FileLock

from dagster_autotag.predict.batch import predict_items
from dagster_autotag.quality.drift import LabelProfile, label_profile

REFERENCE_SPLITS = ("dev", "test")
REFERENCE_MAX_ROWS = 20_000
LOCK_TIMEOUT_S = 3600.0  # BERT on CPU predicts the reference rows for many minutes


def reference_rows(dataset_dir: Path, splits: Sequence[str] = REFERENCE_SPLITS, max_rows: int = REFERENCE_MAX_ROWS):
    missing = [s for s in splits if not (dataset_dir / f"{s}.parquet").exists()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} split under {dataset_dir}")
    frame = pl.concat(
        [pl.read_parquet(dataset_dir / f"{s}.parquet", columns=["itemid", "dtype", "text"]) for s in splits]
    )
    return frame.sample(max_rows, seed=0) if frame.height > max_rows else frame


def prediction_profile(predictions: pl.DataFrame, model) -> LabelProfile:
    """Shares of a prediction table (batch.PREDICTION_SCHEMA) over the model's shipped sub-labels."""
    gate = model.targets[0]
    subs = [t for t in model.shipped_targets() if t != gate]
    return label_profile(predictions["gate"], predictions["labels"], gate, subs)


def reference_profile(
    model,
    dataset_dir: Path,
    splits: Sequence[str] = REFERENCE_SPLITS,
    max_rows: int = REFERENCE_MAX_ROWS,
    top_k: int | None = None,
) -> LabelProfile:
    rows = reference_rows(dataset_dir, splits, max_rows)
    return prediction_profile(predict_items(rows, model, top_k=top_k), model)


def cached_reference_profile(
    cache_dir: Path,
    model_id: str,
    model,
    dataset_dir: Path,
    splits: Sequence[str] = REFERENCE_SPLITS,
    max_rows: int = REFERENCE_MAX_ROWS,
    top_k: int | None = None,
) -> LabelProfile:
    """reference_profile, computed once per model version and dataset: it only changes when either
    does, and predicting 20k held-out rows costs seconds with a TextCNN, many minutes with BERT on CPU.
    model_id: e.g. `autotag.p0_newcar.textcnn v3`. The key also holds each split file's size and
    mtime, so a rebuilt dataset (same model) is profiled again. Partitions predicted at once compute
    it once: the others wait on the entry's lock, then read it. An unreadable entry is computed again."""
    files = [dataset_dir / f"{s}.parquet" for s in splits]
    stamps = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else (f.name, None) for f in files]
    key = json.dumps([model_id, list(splits), max_rows, top_k, str(dataset_dir), stamps], ensure_ascii=False)
    path = cache_dir / f"{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.json"
    cached = _read_entry(path, key)
    if cached is not None:
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock"), timeout=LOCK_TIMEOUT_S):
        cached = _read_entry(path, key)  # filled by the run that held the lock before
        if cached is not None:
            return cached
        profile = reference_profile(model, dataset_dir, splits, max_rows, top_k)
        staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # readers see the old file or the new
        staging.write_text(json.dumps({"key": key, "profile": profile.to_dict()}, ensure_ascii=False), encoding="utf-8")
        os.replace(staging, path)
    return profile


def _read_entry(path: Path, key: str) -> LabelProfile | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        return LabelProfile(**entry["profile"]) if entry.get("key") == key else None
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError):  # truncated or foreign: computed again
        return None
