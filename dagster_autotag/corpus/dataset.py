"""datasets/<scheme>: a trailing window of corpus/items partitions → train/dev/test Parquet + manifest.

Out of core, so a 90-day window (30M rows) fits beside a training run:
- pass 1 reads itemid, text_hash, gate and labels batch by batch and keeps only compact keys per
  in-scope row (64-bit hashes of itemid and text_hash, the label bit mask, the day: 28 bytes);
  deduplication (an itemid seen on several days counts once, with its newest labels) and the split
  plan (splits.plan_splits) run on those numpy arrays;
- pass 2 streams each partition in record batches (pyarrow's Parquet reader, polars per batch),
  looks each row up in that day's slice of the plan and appends it to the split files.
Why not DuckDB (memory_limit + spilling) or polars' streaming engine: once the window is reduced
to keys there is nothing big left to join or spill; what remains is a per-batch lookup and an
append to one Parquet file per split, which polars' sinks (one file per query) do not do and
polars' collect_batches is marked unstable. A batch reader bounds memory at a batch whatever a
partition's size, and keeps file order, so the same input writes the same bytes without a sort.

`hook` is the extension point for row-level edits (label-issue exclusion, review corrections): it
gets each batch of a partition as a DataFrame (itemid, text_hash, the scheme's gate and labels
columns, and in pass 2 the text columns) and returns it with rows dropped or labels replaced. It
runs in both passes, so the plan and the written rows see the same labels.
"""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.corpus.exclusivity import exclusivity_report
from dagster_autotag.corpus.splits import (
    SPLITS,
    SplitOptions,
    SplitPlan,
    distribution_table,
    item_keys,
    key_expr,
    label_mask,
    plan_splits,
)
from dagster_autotag.lake import PART_FILE, parquet_writer, partition_dir, staged_directory
from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER, DATASETS_LAYER
from dagster_autotag.review.corrections import apply_corrections

MANIFEST = "manifest.json"
OUTPUT_COLUMNS = ["itemid", "dt", "dtype", "create_time", "text", "text_hash", "gate", "labels", "copy"]
TEXT_COLUMNS = ["itemid", "dtype", "create_time", "text", "text_hash"]
# planning holds the window's keys a few times over (sorts, the unit table): bytes per window row
PLAN_BYTES_PER_ROW = 150  # measured ≈ 140 at 9.9M rows (BENCHMARKS.md)
MAX_BATCH_ROWS = 65_536

RowHook = Callable[[pl.DataFrame], pl.DataFrame]


class EmptyWindowError(ValueError):
    pass


class OverBudgetError(ValueError):
    pass


@dataclass
class DatasetResult:
    path: Path
    manifest: dict
    distribution: pl.DataFrame  # label | train | train % | dev | … (from the written rows)
    # per written row: split (index into SPLITS), itemid and text_hash as 64-bit keys — for the checks
    written: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    # mask, items: label combinations of the planned (deduplicated, in-scope) items — where a
    # statistic over the window's labels (e.g. an exclusive scheme's multi-label share) comes from
    mask_counts: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass
class WindowKeys:
    """Pass 1: one row per in-scope itemid (its newest day), as numpy arrays."""

    key: np.ndarray  # uint64 itemid key
    unit: np.ndarray  # uint64 text_hash key
    mask: np.ndarray  # int64 label bit mask (splits.label_mask)
    day: np.ndarray  # int32 days since 1970-01-01

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame({"itemid": self.key, "text_hash": self.unit, "mask": self.mask, "dt": self.day})


def corpus_partitions(lake: Path) -> list[str]:
    root = lake / CORPUS_LAYER / CORPUS_ITEMS
    if not root.is_dir():
        return []
    return sorted(p.name[3:] for p in root.glob("dt=*") if (p / PART_FILE).exists())


def window(lake: Path, window_days: int, end_date: str = "") -> list[str]:
    """The materialised corpus partitions in (end - window_days, end]; end defaults to the newest."""
    available = corpus_partitions(lake)
    if not available:
        raise EmptyWindowError(f"no corpus/items partitions under {lake / CORPUS_LAYER / CORPUS_ITEMS}")
    end = date.fromisoformat(end_date) if end_date else date.fromisoformat(available[-1])
    start = end - timedelta(days=window_days - 1)
    chosen = [d for d in available if start <= date.fromisoformat(d) <= end]
    if not chosen:
        raise EmptyWindowError(
            f"no corpus/items partitions between {start} and {end} (have {available[0]}…{available[-1]})"
        )
    return chosen


def peak_rss_mb() -> int:
    """This process's peak RSS so far (Linux VmHWM; 0 elsewhere): where in the step memory peaks."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def _day_number(dt: str) -> int:
    return (date.fromisoformat(dt) - date(1970, 1, 1)).days


def batch_rows_for(paths: list[Path], budget_mb: int) -> int:
    """Rows per pass-2 batch: a batch costs ≈ 9 times its uncompressed size at its peak (Arrow batch,
    polars frame, join, copies, Arrow per split, the split buffers), so 1/16 of the budget at the
    window's widest row — on top of ≈ 120 MB the Arrow and polars runtimes take anyway."""
    if not budget_mb:
        return MAX_BATCH_ROWS
    widest = 1.0
    for path in paths:
        meta = pq.read_metadata(path)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            widest = max(widest, group.total_byte_size / max(group.num_rows, 1))
    return int(min(MAX_BATCH_ROWS, max(256, budget_mb * 2**20 / 16 / widest)))


def partition_batches(path: Path, columns: list[str], batch_rows: int, hook: RowHook | None) -> Iterator[pl.DataFrame]:
    """A partition's rows in file order, `batch_rows` at a time, through the hook."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        frame = pl.from_arrow(batch)
        yield hook(frame) if hook else frame


def read_window_keys(
    paths: list[Path], days: list[int], gate: str, label_col: str, labels: list[str], hook: RowHook | None
) -> tuple[WindowKeys, dict[str, int]]:
    """Pass 1 over partitions given newest first: compact keys of the in-scope rows, deduplicated
    on itemid keeping the newest day's row."""
    total = sum(pq.read_metadata(p).num_rows for p in paths)
    key = np.empty(total, dtype=np.uint64)
    unit = np.empty(total, dtype=np.uint64)
    mask = np.empty(total, dtype=np.int64)
    day = np.empty(total, dtype=np.int32)
    filled = rows_read = 0
    for path, d in zip(paths, days, strict=True):
        for batch in partition_batches(path, ["itemid", "text_hash", gate, label_col], MAX_BATCH_ROWS, hook):
            rows_read += batch.height
            compact = batch.filter(pl.col(gate).is_not_null()).select(
                key_expr("itemid").alias("key"),
                key_expr("text_hash").alias("unit"),
                label_mask(gate, label_col, labels),
            )
            end = filled + compact.height
            if end > total:  # a hook that adds rows: grow (rare; corrections replace, exclusions drop)
                grow = end - total + total // 2
                key, unit, mask, day = (np.r_[a, np.empty(grow, a.dtype)] for a in (key, unit, mask, day))
                total += grow
            key[filled:end] = compact["key"].to_numpy()
            unit[filled:end] = compact["unit"].to_numpy()
            mask[filled:end] = compact["mask"].to_numpy()
            day[filled:end] = d
            filled = end
    counts = {"rows_in_window": rows_read, "out_of_scope_items": rows_read - filled}
    newest = pl.Series(key[:filled]).is_first_distinct().to_numpy()  # partitions came newest first
    keep = np.flatnonzero(newest)
    del newest
    counts["itemids_repeated_across_days"] = filled - len(keep)
    return WindowKeys(key[keep], unit[keep], mask[keep], day[keep]), counts


def corrections_hook(
    reviewed: pl.DataFrame, gate_name: str, gate: str, label_col: str, then: RowHook | None
) -> RowHook:
    """A row hook giving reviewed items the reviewer's gate and labels (review/corrections.py), before `then`."""

    def hook(batch: pl.DataFrame) -> pl.DataFrame:
        corrected = apply_corrections(batch.lazy(), reviewed, gate_name, gate, label_col).drop("reviewed").collect()
        return then(corrected) if then else corrected

    return hook


def build_dataset(
    lake: Path,
    scheme: Scheme,
    labels: list[str],
    options: SplitOptions,
    window_days: int,
    end_date: str = "",
    *,
    memory_budget_mb: int = 0,
    batch_rows: int = 0,
    hook: RowHook | None = None,
    reviewed: pl.DataFrame | None = None,
) -> DatasetResult:
    """memory_budget_mb > 0: pass-2 batches sized to fit it (batch_rows_for), and a clear error up front when
    the window's keys alone would not fit (0 = no budget, batches of MAX_BATCH_ROWS). batch_rows > 0
    sets the batch size directly. reviewed: review/corrections.latest_labels (itemid → the reviewer's
    labels): those items' labels replace the editors' tags in both passes (None: the editors' tags only)."""
    dts = window(lake, window_days, end_date)
    gate, label_col = scheme.gate_column, scheme.labels_column
    newest_first = list(reversed(dts))
    paths = [partition_dir(lake, CORPUS_LAYER, CORPUS_ITEMS, dt) / PART_FILE for dt in newest_first]
    if memory_budget_mb:
        rows = sum(pq.read_metadata(p).num_rows for p in paths)
        need = rows * PLAN_BYTES_PER_ROW / 2**20
        if need > memory_budget_mb:
            raise OverBudgetError(
                f"{scheme.name}: planning {rows:,} rows of {dts[0]}…{dts[-1]} needs ≈ {need:,.0f} MB, over "
                f"memory_budget_mb={memory_budget_mb}; raise the budget or shorten window_days"
            )
    if reviewed is not None:  # review corrections (issue #17) ride on the row hook
        hook = corrections_hook(reviewed, "+".join(scheme.gate), gate, label_col, hook)
    started = time.perf_counter()
    keys, counts = read_window_keys(paths, [_day_number(d) for d in newest_first], gate, label_col, labels, hook)
    if not len(keys.key):
        raise EmptyWindowError(f"{scheme.name}: no in-scope items in {dts[0]}…{dts[-1]}")
    read_s, peak_pass1 = time.perf_counter() - started, peak_rss_mb()
    plan = plan_splits(keys.frame(), labels, options)
    if reviewed is not None:  # reviewed items in the dataset
        counts["review_corrections"] = int(np.isin(plan.keys, item_keys(reviewed["itemid"])).sum())
    plan_day = keys.day[plan.order]
    del keys
    plan_s, peak_plan = time.perf_counter() - started - read_s, peak_rss_mb()

    target = lake / DATASETS_LAYER / scheme.name
    batch_rows = batch_rows or batch_rows_for(paths, memory_budget_mb)
    with staged_directory(lake, target) as staging:
        written, write_stats = write_splits(
            staging, plan, plan_day, dict(zip(newest_first, paths, strict=True)), scheme, labels, batch_rows, hook
        )
        distribution = distribution_table(write_stats.pop("mask_counts"), labels, "+".join(scheme.gate))
        manifest = {
            "scheme": scheme.name,
            "gate": list(scheme.gate),
            "labels": labels,
            "rare_labels": plan.rare_labels,
            "support": plan.support,
            "exclusive": exclusivity_report(plan.mask_counts, scheme.exclusive),
            "window": {"start": dts[0], "end": dts[-1], "days": window_days, "partitions": len(dts)},
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()},
            "rows": write_stats.pop("rows"),
            "files": write_stats.pop("files"),
            "columns": OUTPUT_COLUMNS,
            "review_corrections": counts.get("review_corrections", 0),  # issue #17
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        (staging / "distribution.md").write_text(markdown_table(distribution), encoding="utf-8")
    seconds = {"pass1_s": read_s, "plan_s": plan_s, "pass2_s": time.perf_counter() - started - read_s - plan_s}
    stats = {**plan.stats, "partitions_read": len(dts), **counts, **write_stats, "batch_rows": batch_rows}
    stats |= {k: round(v, 1) for k, v in seconds.items()}
    stats |= {"peak_mb_pass1": peak_pass1, "peak_mb_plan": peak_plan, "peak_mb_pass2": peak_rss_mb()}
    return DatasetResult(target, manifest, distribution, written, stats, plan.mask_counts)


def write_splits(
    staging: Path,
    plan: SplitPlan,
    plan_day: np.ndarray,
    paths: dict[str, Path],
    scheme: Scheme,
    labels: list[str],
    batch_rows: int,
    hook: RowHook | None,
) -> tuple[pl.DataFrame, dict]:
    """Pass 2: each partition (newest first), batch by batch: the rows whose itemid's newest day it
    is, `copies` times each, appended to their split's file. Returns the compact record of the
    written rows and the counts the manifest and checks need."""
    gate, label_col = scheme.gate_column, scheme.labels_column
    by_day = np.argsort(plan_day, kind="stable")  # within a day still ascending by key
    sorted_days = plan_day[by_day]
    writers: dict[str, pq.ParquetWriter] = {}
    record: list[pl.DataFrame] = []
    mask_counts: list[pl.DataFrame] = []
    inconsistent = batches = 0
    pending: dict[str, list[pa.Table]] = {s: [] for s in SPLITS}  # dev/test rows come in small pieces

    def flush(split: str) -> None:
        """One row group of ≈ batch_rows rows, not one per input batch."""
        if not pending[split]:
            return
        table = pa.concat_tables(pending[split])
        pending[split].clear()
        if split not in writers:
            writers[split] = parquet_writer(staging / f"{split}.parquet", table.schema)
        writers[split].write_table(table)

    try:
        for dt, path in paths.items():
            d = _day_number(dt)
            lo, hi = np.searchsorted(sorted_days, [d, d + 1])
            idx = by_day[lo:hi]
            day_plan = pl.DataFrame(
                {"_key": plan.keys[idx], "_split": plan.split[idx], "copies": plan.copies[idx]}
            ).filter(pl.col("copies") > 0)
            if day_plan.is_empty():
                continue
            for batch in partition_batches(path, TEXT_COLUMNS + [gate, label_col], batch_rows, hook):
                batches += 1
                rows = (
                    batch.with_columns(key_expr("itemid").alias("_key"))
                    .join(day_plan, on="_key", how="inner", maintain_order="left")
                    .with_columns(pl.int_ranges(0, "copies", dtype=pl.Int32).alias("copy"))
                    .explode("copy")
                    .rename({gate: "gate", label_col: "labels"})
                    .with_columns(pl.lit(date.fromisoformat(dt)).alias("dt"), label_mask("gate", "labels", labels))
                )
                if rows.is_empty():
                    continue
                inconsistent += rows.select(
                    ((pl.col("labels").list.len() > 0) & ~pl.col("gate").fill_null(False)).sum()
                ).item()
                record.append(rows.select("_split", "_key", key_expr("text_hash").alias("_unit")))
                mask_counts.append(rows.group_by("_split", "mask").len("n"))
                for k, split in enumerate(SPLITS):
                    part = rows.filter(pl.col("_split") == k)
                    if not part.is_empty():
                        pending[split].append(part.select(OUTPUT_COLUMNS).to_arrow())
                        if sum(t.num_rows for t in pending[split]) >= batch_rows:
                            flush(split)
        for split in SPLITS:
            flush(split)
    finally:
        for w in writers.values():
            w.close()
    written = (
        pl.concat(record, rechunk=True).rename({"_split": "split", "_key": "itemid", "_unit": "text_hash"})
        if record
        else pl.DataFrame(schema={"split": pl.Int8, "itemid": pl.UInt64, "text_hash": pl.UInt64})
    )
    counts = (
        pl.concat(mask_counts).group_by("_split", "mask").agg(pl.col("n").sum())
        if mask_counts
        else pl.DataFrame(schema={"_split": pl.Int8, "mask": pl.Int64, "n": pl.UInt32})
    )
    counts = counts.select(
        pl.col("_split").replace_strict(list(range(len(SPLITS))), list(SPLITS)).alias("split"), "mask", "n"
    )
    split_codes = written["split"].to_numpy()
    return written, {
        "mask_counts": counts,
        "rows": {s: int((split_codes == k).sum()) for k, s in enumerate(SPLITS)},
        "files": {s: f"{s}.parquet" for s in SPLITS if s in writers},
        "rows_with_sub_label_and_negative_gate": inconsistent,
        "write_batches": batches,
    }


def read_manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def markdown_table(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|---|" + "---:|" * (len(frame.columns) - 1)
    body = [
        "| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in frame.iter_rows()
    ]
    return "\n".join([head, rule, *body]) + "\n"


def distribution_text(frame: pl.DataFrame) -> str:
    """The seed's console table: 'Distribution in train/dev/test'."""
    with pl.Config(
        tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        return f"Distribution in train/dev/test\n{frame}"
