"""datasets/<scheme>: a trailing window of corpus/items partitions → train/dev/test Parquet + manifest.

Two passes keep memory at one partition's text: pass 1 reads only ids, hashes and labels of the
whole window and plans the splits; pass 2 streams each partition's rows into the split files.
An itemid seen on several days counts once, with its newest labels.
"""

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.corpus.splits import SPLITS, SplitOptions, distribution_table, label_mask, plan_splits
from dagster_autotag.lake import PART_FILE, parquet_writer, partition_dir, staged_directory
from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER, DATASETS_LAYER

MANIFEST = "manifest.json"
OUTPUT_COLUMNS = ["itemid", "dt", "dtype", "create_time", "text", "text_hash", "gate", "labels", "copy"]


class EmptyWindowError(ValueError):
    pass


@dataclass
class DatasetResult:
    path: Path
    manifest: dict
    distribution: pl.DataFrame  # label | train | train % | dev | … (from the written rows)
    written: pl.DataFrame  # split, itemid, text_hash, mask, gate, n_labels per written row
    stats: dict[str, int] = field(default_factory=dict)


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


def build_dataset(
    lake: Path, scheme: Scheme, labels: list[str], options: SplitOptions, window_days: int, end_date: str = ""
) -> DatasetResult:
    dts = window(lake, window_days, end_date)
    gate, label_col = scheme.gate_column, scheme.labels_column

    def scan(dt: str, columns: list[str]) -> pl.LazyFrame:
        path = partition_dir(lake, CORPUS_LAYER, CORPUS_ITEMS, dt) / PART_FILE
        return pl.scan_parquet(path).select(columns).with_columns(pl.lit(date.fromisoformat(dt)).alias("dt"))

    everything = pl.concat([scan(dt, ["itemid", "text_hash", gate, label_col]) for dt in dts]).collect()
    in_scope = everything.filter(pl.col(gate).is_not_null())
    counts = {"rows_in_window": everything.height, "out_of_scope_items": everything.height - in_scope.height}
    del everything  # only the counts are needed later; at 30 days of 1M news rows this is gigabytes
    items = (
        in_scope.sort("dt", descending=True)
        .unique("itemid", keep="first", maintain_order=True)
        .select("itemid", "dt", "text_hash", label_mask(gate, label_col, labels))
    )
    counts["itemids_repeated_across_days"] = in_scope.height - items.height
    del in_scope
    if items.is_empty():
        raise EmptyWindowError(f"{scheme.name}: no in-scope items in {dts[0]}…{dts[-1]}")
    plan = plan_splits(items, labels, options)
    keep = plan.assignment.join(items.select("itemid", "dt"), on="itemid")

    written = []
    target = lake / DATASETS_LAYER / scheme.name
    with staged_directory(lake, target) as staging:
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for dt in reversed(dts):
                rows = (
                    scan(dt, ["itemid", "dtype", "create_time", "text", "text_hash", gate, label_col])
                    .join(keep.lazy(), on=["itemid", "dt"], how="inner")
                    .filter(pl.col("copies") > 0)
                    .with_columns(pl.int_ranges(0, "copies").alias("copy"))
                    .explode("copy")
                    .rename({gate: "gate", label_col: "labels"})
                    .with_columns(pl.col("copy").cast(pl.Int32), label_mask("gate", "labels", labels))
                    .sort("itemid", "copy")  # joins do not keep order: same input, same bytes
                    .collect()
                )
                for split in SPLITS:
                    part = rows.filter(pl.col("split") == split)
                    if part.is_empty():
                        continue
                    table = part.select(OUTPUT_COLUMNS).to_arrow()
                    if split not in writers:
                        writers[split] = parquet_writer(staging / f"{split}.parquet", table.schema)
                    writers[split].write_table(table)
                written.append(
                    rows.select(
                        "split", "itemid", "text_hash", "mask", "gate", pl.col("labels").list.len().alias("n_labels")
                    )
                )
        finally:
            for w in writers.values():
                w.close()
        written_rows = pl.concat(written) if written else pl.DataFrame()
        distribution = distribution_table(written_rows.select("split", "mask"), labels, "+".join(scheme.gate))
        manifest = {
            "scheme": scheme.name,
            "gate": list(scheme.gate),
            "labels": labels,
            "rare_labels": plan.rare_labels,
            "support": plan.support,
            "window": {"start": dts[0], "end": dts[-1], "days": window_days, "partitions": len(dts)},
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()},
            "rows": {s: int((written_rows["split"] == s).sum()) for s in SPLITS},
            "files": {s: f"{s}.parquet" for s in SPLITS if s in writers},
            "columns": OUTPUT_COLUMNS,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        (staging / "distribution.md").write_text(markdown_table(distribution), encoding="utf-8")
    stats = {
        **plan.stats,
        "partitions_read": len(dts),
        **counts,
    }
    return DatasetResult(target, manifest, distribution, written_rows, stats)


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
