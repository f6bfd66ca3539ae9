"""Lake files that expire: staging leftovers, old partitions of bulky layers, unused token caches.

Never deleted: anything a published day or a dataset's training window needs. A published day
(lake/published/daily_labels/dt=D) keeps its corpus and predictions partitions, which consumers and
the DuckDB views read; a corpus day inside any datasets/<scheme>/manifest.json window is what the
current splits, and so the champions trained on them, came from. Raw and clean partitions are
inputs already turned into corpus: they expire by age alone. Deletion renames a partition out of
place first (one atomic step, like its writes), so a reader sees it whole or not at all.
"""

import json
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from dagster_autotag.layers import CORPUS_LAYER, DAILY_LABELS, DATASETS_LAYER, PREDICTIONS_LAYER, PUBLISHED_LAYER
from dagster_autotag.retention.options import RetentionOptions

STAGING = "_staging"
TOKEN_CACHE = "token_cache"  # datasets/<scheme>/token_cache (train/tokens.py)
MANIFEST = "manifest.json"
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
# Layers whose partition of a published day or training-window day is still read.
PROTECTED_BY_PUBLISHED = frozenset({CORPUS_LAYER, PREDICTIONS_LAYER})


@dataclass
class Deletion:
    kind: str  # staging, partition, token_cache
    path: Path
    bytes: int
    reason: str


@dataclass
class LakePlan:
    deletions: list[Deletion] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # expired by age but needed: why


def plan_lake(lake: Path, options: RetentionOptions, today: date, now: float | None = None) -> LakePlan:
    now = time.time() if now is None else now
    plan = LakePlan()
    _plan_staging(lake, options, now, plan)
    _plan_partitions(lake, options, today, plan)
    _plan_token_caches(lake, options, now, plan)
    return plan


def apply_lake(plan: LakePlan, lake: Path) -> int:
    """Deletes what the plan lists; returns the bytes freed. Paths gone meanwhile are skipped."""
    freed = 0
    for item in plan.deletions:
        if not item.path.exists():
            continue
        if item.path.is_dir():
            # out of place first: the partition vanishes in one rename, then is removed at leisure
            trash = lake / STAGING / f"expired-{uuid.uuid4().hex}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            item.path.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            item.path.unlink(missing_ok=True)
        freed += item.bytes
    return freed


def published_days(lake: Path) -> set[str]:
    return set(_partition_days(lake / PUBLISHED_LAYER / DAILY_LABELS))


def training_window_days(lake: Path) -> set[str]:
    days: set[str] = set()
    for manifest in (lake / DATASETS_LAYER).glob(f"*/{MANIFEST}"):
        window = json.loads(manifest.read_text(encoding="utf-8")).get("window") or {}
        if window.get("start") and window.get("end"):
            start, end = date.fromisoformat(window["start"]), date.fromisoformat(window["end"])
            days |= {(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)}
    return days


def _plan_staging(lake: Path, options: RetentionOptions, now: float, plan: LakePlan) -> None:
    cutoff = now - options.staging_hours * 3600
    for folder in sorted((lake / STAGING).glob("*")):
        try:
            stale = _newest_mtime(folder) < cutoff
        except FileNotFoundError:  # a write finishing right now removes its own folder
            continue
        if stale:
            plan.deletions.append(Deletion("staging", folder, _size(folder), f"untouched > {options.staging_hours} h"))


def _plan_partitions(lake: Path, options: RetentionOptions, today: date, plan: LakePlan) -> None:
    cutoff = (today - timedelta(days=options.keep_days)).isoformat()
    needed = {dt: "published" for dt in published_days(lake)}
    needed |= {dt: "in a dataset's training window" for dt in training_window_days(lake) if dt not in needed}
    for layer in options.bulky_layers:
        for table in sorted(p for p in (lake / layer).glob("*") if p.is_dir() and not p.name.startswith("_")):
            for dt, folder in sorted(_partition_days(table).items()):
                if dt >= cutoff:
                    continue
                if layer in PROTECTED_BY_PUBLISHED and dt in needed:
                    plan.kept.append((folder, needed[dt]))
                    continue
                reason = f"day {dt} older than {options.keep_days} days"
                plan.deletions.append(Deletion("partition", folder, _size(folder), reason))


def _plan_token_caches(lake: Path, options: RetentionOptions, now: float, plan: LakePlan) -> None:
    unused = now - options.token_cache_days * 86400
    leftover = now - options.staging_hours * 3600
    for path in sorted((lake / DATASETS_LAYER).glob(f"*/{TOKEN_CACHE}/*")):
        stat = path.stat()
        last_use = max(stat.st_mtime, stat.st_atime)
        if path.suffix == ".tmp" and stat.st_mtime < leftover:
            plan.deletions.append(Deletion("token_cache", path, stat.st_size, "unfinished write"))
        elif path.suffix != ".tmp" and last_use < unused:
            plan.deletions.append(Deletion("token_cache", path, stat.st_size, f"unused > {options.token_cache_days} d"))


def _partition_days(table: Path) -> dict[str, Path]:
    if not table.is_dir():
        return {}
    return {m.group(1): p for p in table.iterdir() if p.is_dir() and (m := _DT.match(p.name))}


def _newest_mtime(path: Path) -> float:
    return max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*")])


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
