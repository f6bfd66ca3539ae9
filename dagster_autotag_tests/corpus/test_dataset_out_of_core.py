"""datasets/<scheme> out of core (issue #16): the batch-streamed build writes exactly the rows an
in-memory reference writes, and a window far larger than the memory budget completes within it."""

import json
import os
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dagster_autotag.corpus.config import load_corpus_config
from dagster_autotag.corpus.dataset import OverBudgetError, build_dataset
from dagster_autotag.corpus.splits import SPLITS, SplitOptions, label_mask, plan_splits
from dagster_autotag.lake import PART_FILE, partition_dir, write_partition
from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER

SCHEME = load_corpus_config().scheme("p0_newcar")
LABELS = list(SCHEME.labels)[:6] if SCHEME.labels else [f"新车资讯/l{j}" for j in range(6)]
PREVALENCE = [0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
DAYS = [str(date(2024, 5, 1) + timedelta(days=k)) for k in range(4)]


def corpus_day(day: int, n: int, rng: np.random.Generator, text: str = "") -> pl.DataFrame:
    """n rows: ~70% in scope, 20% of those gate-positive with sub-labels; itemids r* recur every
    day with fresh labels; texts duplicated within and across days."""
    gate = rng.random(n) < 0.2
    scoped = rng.random(n) < 0.7
    y = (rng.random((n, len(LABELS))) < np.array(PREVALENCE)) & gate[:, None]
    itemid = [f"r{i}" if i < n // 10 else f"d{day}-{i}" for i in range(n)]  # r*: on every day
    text_hash = [f"h{rng.integers(0, n // 2)}" if rng.random() < 0.2 else f"u{day}-{i}" for i in range(n)]
    return pl.DataFrame(
        {
            "itemid": itemid,
            "dtype": ["news"] * n,
            "create_time": [None] * n,
            "text": [f"{text}{t}" for t in text_hash],
            "text_hash": text_hash,
            SCHEME.gate_column: [bool(g) if s else None for g, s in zip(gate, scoped, strict=True)],
            SCHEME.labels_column: [[LABELS[j] for j in np.flatnonzero(row)] for row in y],
        },
        schema_overrides={
            "create_time": pl.Datetime("us", "Asia/Shanghai"),
            SCHEME.gate_column: pl.Boolean,
            SCHEME.labels_column: pl.List(pl.String),
        },
    )


def write_window(lake: Path, n: int, seed: int = 0, text: str = "") -> None:
    rng = np.random.default_rng(seed)
    for k, dt in enumerate(DAYS):
        write_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, dt, corpus_day(k, n, rng, text))


def reference_rows(lake: Path, options: SplitOptions, hook=None) -> pl.DataFrame:
    """The simple in-memory way: every row of the window with its strings, newest row per itemid,
    plan, and each planned item expanded to its copies → split, itemid, dt, copy, labels."""
    gate, label_col = SCHEME.gate_column, SCHEME.labels_column
    everything = pl.concat(
        pl.read_parquet(partition_dir(lake, CORPUS_LAYER, CORPUS_ITEMS, dt) / PART_FILE).with_columns(
            pl.lit(date.fromisoformat(dt)).alias("dt")
        )
        for dt in DAYS
    )
    everything = hook(everything) if hook else everything
    items = (
        everything.filter(pl.col(gate).is_not_null())
        .sort("dt", descending=True, maintain_order=True)
        .unique("itemid", keep="first", maintain_order=True)
        .with_columns(label_mask(gate, label_col, LABELS))
    )
    plan = plan_splits(items.select("itemid", "dt", "text_hash", "mask"), LABELS, options)
    return (
        plan.assignment.join(items.select("itemid", "dt", pl.col(label_col).alias("labels")), on="itemid")
        .filter(pl.col("copies") > 0)
        .with_columns(pl.int_ranges(0, "copies", dtype=pl.Int32).alias("copy"))
        .explode("copy")
        .select("split", "itemid", "dt", "copy", "labels")
        .sort("itemid", "copy")
    )


def written_rows(path: Path) -> pl.DataFrame:
    frames = [
        pl.read_parquet(path / f"{s}.parquet").select(pl.lit(s).alias("split"), "itemid", "dt", "copy", "labels")
        for s in SPLITS
        if (path / f"{s}.parquet").exists()
    ]
    return pl.concat(frames).sort("itemid", "copy")


@pytest.mark.parametrize(
    "options",
    [
        SplitOptions(seed=3, all_zero_ratio=1.0, oversample_floor=0.05, oversample_target=0.1),
        SplitOptions(seed=4, holdout_newest_days=1),
    ],
    ids=["rebalanced", "holdout"],
)
def test_out_of_core_writes_the_same_splits_as_an_in_memory_reference(tmp_path, options):
    lake = tmp_path / "lake"
    write_window(lake, 3_000)
    # 256-row batches: every partition is read and written in many pieces
    result = build_dataset(lake, SCHEME, LABELS, options, window_days=4, batch_rows=256)
    assert result.stats["batch_rows"] == 256 and result.stats["write_batches"] > 4 * 10
    expected = reference_rows(lake, options)
    got = written_rows(result.path)
    assert got.height == expected.height > 2_000
    assert got.equals(expected)  # same rows, same split, same copies, the newest day's labels
    assert result.stats["itemids_repeated_across_days"] > 0 and (got.filter(pl.col("copy") > 0).height > 0) == (
        options.oversample_floor > 0
    )
    if not options.all_zero_ratio:  # nothing dropped: every planned item was written
        assert result.mask_counts["items"].sum() == expected["itemid"].n_unique()
    assert {s: n for s, n in result.manifest["rows"].items()} == {
        s: expected.filter(pl.col("split") == s).height for s in SPLITS
    }


def test_a_row_hook_edits_both_passes_alike(tmp_path):
    """The extension point for label-issue exclusion and review corrections: one hook, run on every
    batch of both passes, so the plan and the written rows agree."""
    lake = tmp_path / "lake"
    write_window(lake, 3_000)
    corrected = LABELS[4]

    def hook(batch: pl.DataFrame) -> pl.DataFrame:
        excluded = pl.col("itemid").str.ends_with("7")  # e.g. flagged by quality/label_issues
        reviewed = pl.col("itemid").str.starts_with("r1")  # e.g. review/corrections: a gate-positive label
        return batch.filter(~excluded).with_columns(
            pl.when(reviewed).then(True).otherwise(pl.col(SCHEME.gate_column)).alias(SCHEME.gate_column),
            pl.when(reviewed)
            .then(pl.lit([corrected], dtype=pl.List(pl.String)))
            .otherwise(pl.col(SCHEME.labels_column))
            .alias(SCHEME.labels_column),
        )

    options = SplitOptions(seed=5, oversample_floor=0.05, oversample_target=0.1)
    result = build_dataset(lake, SCHEME, LABELS, options, window_days=4, batch_rows=500, hook=hook)
    got = written_rows(result.path)
    assert got.equals(reference_rows(lake, options, hook))
    assert not got["itemid"].str.ends_with("7").any()
    reviewed = got.filter(pl.col("itemid").str.starts_with("r1"))
    assert reviewed.height >= 100 and (reviewed["labels"].list.first() == corrected).all()


def test_a_window_whose_keys_exceed_the_budget_is_refused_clearly(tmp_path):
    lake = tmp_path / "lake"
    write_window(lake, 3_000)
    with pytest.raises(OverBudgetError, match="memory_budget_mb=1"):
        build_dataset(lake, SCHEME, LABELS, SplitOptions(), window_days=4, memory_budget_mb=1)  # 12,000 rows
    assert not (lake / "datasets").exists()


CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dagster_autotag.corpus.config import load_corpus_config
    from dagster_autotag.corpus.dataset import build_dataset
    from dagster_autotag.corpus.splits import SplitOptions

    def status_kb(field):
        line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
        return int(line.split()[1])

    labels, budget, batch_rows = json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    scheme = load_corpus_config().scheme("p0_newcar")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on, not the imports'
    before = status_kb("VmRSS")
    build_dataset(Path(sys.argv[1]), scheme, labels, SplitOptions(), 4, memory_budget_mb=budget, batch_rows=batch_rows)
    print(json.dumps({"grown_mb": (status_kb("VmHWM") - before) / 1024}))
    """
)


def grown_mb(lake: Path, budget_mb: int, batch_rows: int = 0) -> float:
    """Peak RSS growth of build_dataset in a fresh interpreter (2 polars threads, as on the bench machine)."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(lake), json.dumps(LABELS), str(budget_mb), str(batch_rows)],
        capture_output=True,
        text=True,
        env={**os.environ, "POLARS_MAX_THREADS": "2"},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["grown_mb"]


def test_a_window_larger_than_the_memory_budget_completes_within_it(tmp_path):
    """4 days × 12,000 rows of ~6 KB text: ≈ 275 MB of text in memory (~1 MB on disk: it compresses).
    Under a 32 MB budget the build completes, its peak growth (≈ 120 MB of it the Arrow and polars
    runtimes') well below the window's text and a fraction of what whole-partition batches cost."""
    lake = tmp_path / "lake"
    write_window(lake, 12_000, seed=1, text="车" * 2_000)
    window_mb = 4 * 12_000 * 6_000 / 2**20
    bounded = grown_mb(lake, budget_mb=32)
    assert (lake / "datasets" / "p0_newcar" / "train.parquet").exists()
    whole_partitions = grown_mb(lake, budget_mb=0, batch_rows=12_000)
    assert bounded < window_mb / 1.5 and bounded < whole_partitions / 2.5, (bounded, whole_partitions, window_mb)
