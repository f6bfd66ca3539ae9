"""Corpus benchmark: the big ingest partition's clean/* → corpus/items, then datasets/<scheme> over N days.

    .venv/bin/python bench/ingest.py --skip-pandas --reuse   # leaves .bench/ingest/lake_ours/clean
    .venv/bin/python bench/corpus.py                         # corpus/items + a 30-day p0_newcar split
    .venv/bin/python bench/corpus.py --partitions 7 --reuse  # quicker; keeps .bench/corpus for the next run
    .venv/bin/python bench/corpus.py --days 90 --items-per-day 330000   # issue #16: ≤ 6 GB, ≤ 10 min

Step 1 copies the four clean partitions of one day from .bench/ingest/lake_ours (another run of
bench/ingest.py may rewrite them at any time) into .bench/corpus/lake and builds corpus/items with
`build_corpus_items` + `write_partition`, exactly as the corpus/items asset does.
Step 2 synthesises the window's days from that one: each day holds --items-per-day rows (the
built partition's rows cycled; default its own size), itemid and text_hash prefixed per day and
cycle, so no text repeats across days — except --repeat-share of each day's rows, which carry the
same itemid and text every day (items exported again: deduplicated to their newest day). Labels
are unchanged. Then it runs `build_dataset` over the N-day window, as the datasets/<scheme> asset does. Both measured steps run in their own child
process, as Dagster's multiprocess executor runs each asset; peak RSS is ru_maxrss from wait4.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from dagster_autotag.layers import CLEAN_LAYER, CORPUS_ITEMS, CORPUS_LAYER, NEWS_ITEMS, TAGS, VIDEO_ASR, VIDEO_OCR

SOURCE = Path(".bench/ingest/lake_ours")
CLEAN_TABLES = (NEWS_ITEMS, VIDEO_ASR, VIDEO_OCR, TAGS)
TARGETS = {"corpus/items": (30.0, 3072.0)}  # seconds, peak RSS MB
DATASET_TARGET = (600.0, 6144.0)  # issue #16, for --days 90 --items-per-day 330000
DISK_MARGIN = 2 * 2**30  # leave this much free on the disk (the machine is shared)


def clean_days(lake: Path) -> list[str]:
    """Days whose four clean partitions all hold Parquet files."""
    days = None
    for table in CLEAN_TABLES:
        have = {p.name[3:] for p in (lake / CLEAN_LAYER / table).glob("dt=*") if any(p.glob("*.parquet"))}
        days = have if days is None else days & have
    return sorted(days or ())


def copy_clean(source: Path, lake: Path, dt: str) -> None:
    """The four clean partitions of `dt`, each copied into a staging folder and swapped into place;
    retried when the source is swapped under the copy (a concurrent bench/ingest.py run)."""
    import pyarrow.parquet as pq

    from dagster_autotag.lake import partition_dir, staged_partition

    for table in CLEAN_TABLES:
        src = partition_dir(source, CLEAN_LAYER, table, dt)
        for attempt in range(3):
            try:
                with staged_partition(lake, CLEAN_LAYER, table, dt) as staging:
                    for f in sorted(src.glob("*.parquet")):
                        shutil.copy2(f, staging / f.name)
                        pq.read_metadata(staging / f.name)  # a whole file, not a torn one
                break
            except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on a torn file
                if attempt == 2:
                    raise SystemExit(f"could not copy {src}: {exc}") from exc
                time.sleep(2)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run_items(lake: Path, dt: str) -> dict:
    """corpus/items for one day: the asset's work (assets.py corpus_items), metadata aside."""
    import polars as pl

    from dagster_autotag.corpus.config import load_corpus_config
    from dagster_autotag.corpus.items import build_corpus_items
    from dagster_autotag.lake import read_partition, write_partition

    started = time.perf_counter()
    config = load_corpus_config()
    result = build_corpus_items(
        read_partition(lake, CLEAN_LAYER, NEWS_ITEMS, dt),
        read_partition(lake, CLEAN_LAYER, VIDEO_ASR, dt),
        read_partition(lake, CLEAN_LAYER, VIDEO_OCR, dt),
        read_partition(lake, CLEAN_LAYER, TAGS, dt).collect(),
        config,
    )
    built = time.perf_counter()
    path = write_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, dt, result.items)
    done = time.perf_counter()
    items = result.items
    return {
        "seconds": done - started,
        "build_s": built - started,
        "write_s": done - built,
        "items": items.height,
        "videos": result.stats["videos"],
        "with_asr": int(items["has_asr"].sum()),
        "with_ocr": int(items["has_ocr"].sum()),
        "mb": folder_mb(path),
        "config": config.source,
        "polars": pl.__version__,
    }


def synthesise(lake: Path, dt: str, days: list[str], items_per_day: int, repeat_share: float) -> float:
    """The window's days from the built partition (see the module doc), written by the lake's own
    Parquet writer (same compression and row groups as the asset's). The newest day is always
    rewritten: the corpus/items step has just built it from the clean partition."""
    import numpy as np
    import polars as pl

    from dagster_autotag.lake import PART_FILE, partition_dir, write_partition

    started = time.perf_counter()
    source_path = lake / "source" / PART_FILE  # the built partition, kept aside: dt is rewritten too
    if not source_path.exists():
        source_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(partition_dir(lake, CORPUS_LAYER, CORPUS_ITEMS, dt) / PART_FILE, source_path)
    stamp = lake / "source" / "synthesised.json"
    recipe = {"items_per_day": items_per_day, "repeat_share": repeat_share}
    done = json.loads(stamp.read_text()) if stamp.exists() else {}
    if done.get("recipe") != recipe:  # --reuse with another recipe: every day is stale
        done = {"recipe": recipe, "days": []}
    # dt: the corpus/items step has just rewritten it from the clean partition
    missing = [dt, *(d for d in days if d not in done["days"])]
    done["days"] = [d for d in done["days"] if d != dt]
    if missing:
        source = pl.read_parquet(source_path)
        n = items_per_day or source.height
        cycle = np.arange(n) // source.height
        rows = source[np.arange(n) % source.height].with_columns(pl.Series("_cycle", cycle))
        repeated = pl.int_range(0, pl.len()) < int(repeat_share * n)
        for day in missing:
            prefix = pl.concat_str(pl.lit(f"d{day.replace('-', '')}c"), pl.col("_cycle").cast(pl.String), pl.lit("-"))
            prefix = pl.when(repeated).then(pl.lit("r-")).otherwise(prefix)
            frame = rows.with_columns(
                (prefix + pl.col("itemid")).alias("itemid"), (prefix + pl.col("text_hash")).alias("text_hash")
            ).drop("_cycle")
            write_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, day, frame)
            done["days"].append(day)
            stamp.write_text(json.dumps(done))
    return time.perf_counter() - started


def run_dataset(lake: Path, scheme_name: str, window_days: int, budget_mb: int) -> dict:
    """datasets/<scheme> over the window: the asset's work (assets.py dataset), checks aside."""
    from dagster_autotag.corpus.config import load_corpus_config
    from dagster_autotag.corpus.dataset import build_dataset, window
    from dagster_autotag.corpus.schemes import scheme_label_set
    from dagster_autotag.corpus.splits import SplitOptions
    from dagster_autotag.lake import read_partition

    started = time.perf_counter()
    scheme = load_corpus_config().scheme(scheme_name)
    dts = window(lake, window_days)
    labels = scheme_label_set(scheme, read_partition(lake, CLEAN_LAYER, TAGS, dts[-1]).collect())
    result = build_dataset(lake, scheme, labels, SplitOptions(), window_days, memory_budget_mb=budget_mb)
    return {
        "seconds": time.perf_counter() - started,
        "partitions": len(dts),
        "window": f"{dts[0]} … {dts[-1]}",
        "labels": len(labels),
        "rows": result.manifest["rows"],
        "rare_labels": len(result.manifest["rare_labels"]),
        "mb": folder_mb(result.path),
        **{k: v for k, v in result.stats.items() if isinstance(v, int | float)},
        "seconds_to_checks": time.perf_counter() - started,
        **checks(result),
    }


def checks(result) -> dict:
    """The figures the asset's blocking checks compute from the written rows (assets.dataset_checks)."""
    from dagster_autotag.corpus.splits import keys_in_two_splits

    started = time.perf_counter()
    w = result.written
    split = w["split"].to_numpy()
    return {
        "itemids_in_two_splits": keys_in_two_splits(w["itemid"].to_numpy(), split),
        "texts_in_two_splits": keys_in_two_splits(w["text_hash"].to_numpy(), split),
        "checks_s": time.perf_counter() - started,
    }


def in_child(workdir: Path, args: list[str]) -> tuple[dict, float, float]:
    """One step in a fresh interpreter → its result, its own peak RSS in MB and its CPU seconds.
    Peak RSS is the child's own VmHWM where Linux reports it: ru_maxrss carries the parent's
    high-water mark across exec, and the parent synthesises days (a 330k-row day is ~3 GB)."""
    command = [sys.executable, __file__, "--workdir", str(workdir), "--child", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"step {args[0]} failed with exit code {code}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    peak_mb = result.get("vmhwm_mb") or usage.ru_maxrss / 1024
    return result, peak_mb, usage.ru_utime + usage.ru_stime


def fitting_partitions(workdir: Path, wanted: int, partition_mb: float, present: int) -> int:
    """How many partitions fit: each new one costs a corpus partition plus (at most) its rows in the
    split files; DISK_MARGIN stays free."""
    free = shutil.disk_usage(workdir).free - DISK_MARGIN
    per_new = 2 * partition_mb * 2**20
    return max(1, min(wanted, present + int(free // per_new)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="lake with the big clean partition")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/corpus"))
    parser.add_argument(
        "--days", "--partitions", type=int, default=30, dest="partitions", help="days of corpus/items in the window"
    )
    parser.add_argument("--items-per-day", type=int, default=0, help="rows per synthesised day (0: the built day's)")
    parser.add_argument("--repeat-share", type=float, default=0.01, help="share of each day's rows seen every day")
    parser.add_argument("--budget-mb", type=int, default=0, help="datasets' memory_budget_mb (0 = none)")
    parser.add_argument("--scheme", default="p0_newcar")
    parser.add_argument("--reuse", action="store_true", help="reuse and keep the copied / synthesised partitions")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lake = args.workdir / "lake"

    if args.child:
        step, dt, *rest = args.child
        result = run_items(lake, dt) if step == "items" else run_dataset(lake, rest[1], int(rest[0]), int(rest[2]))
        from dagster_autotag.corpus.dataset import peak_rss_mb

        print(json.dumps(result | {"vmhwm_mb": peak_rss_mb()}, ensure_ascii=False))
        return

    days = clean_days(args.source)
    if not days and not (args.reuse and clean_days(lake)):
        print(
            f"no clean partition under {args.source / 'clean'} (need {', '.join(CLEAN_TABLES)} for one day).\n"
            "Create it first:  .venv/bin/python bench/ingest.py --skip-pandas --reuse",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
    if args.reuse and clean_days(lake):
        dt = clean_days(lake)[-1]
        print(f"reusing the clean partition {dt} already copied to {lake / 'clean'}")
    else:
        dt = days[-1]
        started = time.perf_counter()
        copy_clean(args.source, lake, dt)
        print(f"copied clean/* of {dt} from {args.source} ({time.perf_counter() - started:.1f} s)")
    if len(days) > 1:
        print(f"  ({len(days)} clean days in the source; using the newest)")

    steps: dict[str, tuple[dict, float, float]] = {}
    steps["corpus/items"] = in_child(args.workdir, ["items", dt])
    items = steps["corpus/items"][0]
    print(
        f"corpus/items {dt}: {items['items']:,} items ({items['videos']:,} videos, {items['with_asr']:,} with ASR, "
        f"{items['with_ocr']:,} with OCR), {items['mb']:.0f} MB; config {items['config']}"
    )

    wanted = max(1, args.partitions)
    newest = date.fromisoformat(dt)
    present = len(list((lake / CORPUS_LAYER / CORPUS_ITEMS).glob("dt=*"))) if args.reuse else 1
    day_mb = items["mb"] * (args.items_per_day or items["items"]) / items["items"]
    n = fitting_partitions(args.workdir, wanted, day_mb, present)
    if n < wanted:
        print(
            f"NOTE: only {n} of the {wanted} requested partitions fit in the free disk space "
            f"({shutil.disk_usage(args.workdir).free / 2**30:.1f} GB free, ~{2 * day_mb:.0f} MB each); "
            f"the split below reads {n} partitions"
        )
    older = [str(newest - timedelta(days=k)) for k in range(1, n)]
    stale = [p for p in (lake / CORPUS_LAYER / CORPUS_ITEMS).glob("dt=*") if p.name[3:] not in {dt, *older}]
    for p in stale:  # a --reuse run with fewer partitions: the window must hold exactly n
        shutil.rmtree(p)
    synth_s = synthesise(lake, dt, older, args.items_per_day, args.repeat_share)
    per_day = args.items_per_day or items["items"]
    print(
        f"synthesised {n} days ({older[-1] if older else dt} … {dt}) of {per_day:,} rows in {synth_s:.1f} s: "
        f"rows of {dt} cycled, itemid and text_hash prefixed per day and cycle, "
        f"{args.repeat_share:.0%} of each day's rows the same items every day"
    )
    print(f"disk free after synthesis: {shutil.disk_usage(args.workdir).free / 2**30:.1f} GB; load {os.getloadavg()}")

    steps[f"datasets/{args.scheme}"] = in_child(args.workdir, ["dataset", dt, str(n), args.scheme, str(args.budget_mb)])
    ds = steps[f"datasets/{args.scheme}"][0]
    print(
        f"datasets/{args.scheme}: {ds['partitions']} partitions ({ds['window']}), {ds['rows_in_window']:,} rows read, "
        f"{ds['items']:,} in scope, {ds['labels']} labels ({ds['rare_labels']} rare), "
        f"{ds['duplicate_groups']:,} duplicate-text groups; written "
        + ", ".join(f"{s} {r:,}" for s, r in ds["rows"].items())
        + f" ({ds['mb']:.0f} MB)"
    )
    print(
        f"  {ds['itemids_repeated_across_days']:,} rows of itemids repeated across days dropped for their newest; "
        f"checks: {ds['itemids_in_two_splits']} itemids / {ds['texts_in_two_splits']} texts in two splits "
        f"({ds['checks_s']:.1f} s); {ds['write_batches']:,} write batches of ≤ {ds['batch_rows']:,} rows; "
        f"pass 1 {ds['pass1_s']:.0f} s, plan {ds['plan_s']:.0f} s, pass 2 {ds['pass2_s']:.0f} s; peak RSS after "
        f"pass 1 {ds['peak_mb_pass1']:,} MB, plan {ds['peak_mb_plan']:,} MB, pass 2 {ds['peak_mb_pass2']:,} MB"
    )

    print(f"\n{'step':22s} {'seconds':>8s} {'peak RSS MB':>12s} {'cpu s':>7s}  target")
    for name, (result, rss, cpu) in steps.items():
        target = ""
        limits = TARGETS.get(name) or (DATASET_TARGET if n >= 90 and per_day >= 330_000 else None)
        if limits:
            max_s, max_mb = limits
            ok = result["seconds"] <= max_s and rss <= max_mb
            target = f"≤ {max_s:.0f} s, ≤ {max_mb / 1024:.0f} GB: {'met' if ok else 'MISSED'}"
        print(f"{name:22s} {result['seconds']:8.1f} {rss:12.0f} {cpu:7.1f}  {target}")
    print(
        f"{'':22s} corpus/items: build {items['build_s']:.1f} s + write {items['write_s']:.1f} s; "
        f"seconds exclude interpreter start, cpu includes it"
    )
    print(
        f"{'':22s} load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machines skew seconds)"
    )
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
