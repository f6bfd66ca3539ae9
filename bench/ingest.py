"""Ingest benchmark: landing files of one big partition → raw → clean, ours vs. straightforward pandas.

    .venv/bin/python bench/ingest.py                    # 1M news rows, ~300k ASR + ~300k OCR rows
    .venv/bin/python bench/ingest.py --items 20000      # quick run

Each table's step (its raw asset, then its clean asset, as clean/table_steps.py runs them) runs in
its own process, as Dagster's multiprocess executor runs each step (forked from a forkserver that
imported dagster, like the location's executor; --start-method spawn for a fresh
interpreter per step): first up to --slots at a time (the job's wall time, start-ups included),
then one at a time for clean per-step figures. --dagster also times a real Dagster run. The pandas baseline runs whole in one child. Peak RSS is ru_maxrss from wait4 (the child's
own; the generator runs in a child too, because a child's ru_maxrss starts from its parent's size:
with the generator in the parent, every step reported its 2.7 GB).
Generation is timed too (the sample generator's target: 1M news rows in under a minute).
"""

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dagster_autotag.layers import CLEAN_LAYER, NEWS_ITEMS, RAW_LAYER, TAGS, VIDEO_ASR, VIDEO_OCR

DT = "2024-05-01"
TABLES = ("news_pool", "asr", "ocr", "tag_dim")


def generate(workdir: Path, items: int, video_share: float, seed: int) -> dict:
    from dagster_autotag.sample.generator import generate_day, write_landing

    started = time.perf_counter()
    day = generate_day(DT, items=items, seed=seed, video_share=video_share)
    generated = time.perf_counter() - started
    write_landing(workdir / "landing", day, files_per_table=4)
    return {
        "rows": {t: len(day.rows[t]) for t in TABLES},
        "generate_s": round(generated, 1),
        "write_s": round(time.perf_counter() - started - generated, 1),
        "landing_mb": round(sum(f.stat().st_size for f in (workdir / "landing").rglob("*") if f.is_file()) / 2**20, 1),
    }


# The ingest_to_corpus job runs one step per export table (clean/table_steps.py): the raw asset, then the clean
# asset built from it, in one process. Dagster starts ready steps in step-key order.
OUR_STEPS = ("asr", "news_pool", "ocr", "tag_dim")
CLEAN_OF = {"news_pool": NEWS_ITEMS, "asr": VIDEO_ASR, "ocr": VIDEO_OCR, "tag_dim": TAGS}


def run_our_step(workdir: Path, table: str) -> dict:
    """One table's step, as Dagster runs it: its own process (the default multiprocess executor)."""
    from dagster_autotag.clean.news import build_news_items
    from dagster_autotag.clean.tags import build_tags
    from dagster_autotag.clean.video import build_video_asr, build_video_ocr
    from dagster_autotag.ingest.landing import LandingExportReader
    from dagster_autotag.ingest.raw import ingest_partition, write_quarantine
    from dagster_autotag.ingest.tables import EXPORT_TABLES
    from dagster_autotag.lake import read_partition, write_partition

    lake = workdir / "lake_ours"
    name = CLEAN_OF[table]
    started = time.perf_counter()
    ingest_partition(LandingExportReader(workdir / "landing"), EXPORT_TABLES[table], DT, lake)
    raw_done = time.perf_counter()
    raw = read_partition(lake, RAW_LAYER, table, DT)
    if table == "news_pool":
        write_partition(lake, CLEAN_LAYER, name, DT, build_news_items(raw).items)
    elif table == "tag_dim":
        write_partition(lake, CLEAN_LAYER, name, DT, build_tags(raw).tags)
    else:
        result = (build_video_asr if table == "asr" else build_video_ocr)(raw)
        write_partition(lake, CLEAN_LAYER, name, DT, result.videos)
        write_quarantine(lake, name, DT, result.quarantine)
    done = time.perf_counter()
    return {"seconds": done - started, "raw_s": raw_done - started, "clean_s": done - raw_done}


def run_pandas(workdir: Path) -> dict:
    """The same transforms written the way most pandas code does them: read_csv, .map per row,
    groupby with Python aggregations."""
    import csv
    import html
    import re

    import pandas as pd

    from dagster_autotag.clean.media_json import MediaShapeError, asr_text, ocr_text
    from dagster_autotag.ingest.tables import EXPORT_TABLES

    out = workdir / "lake_pandas"
    out.mkdir(parents=True, exist_ok=True)
    started, stages = time.perf_counter(), {}

    def read(table):
        files = sorted((workdir / "landing" / table / f"dt={DT}").glob("0*"))
        frames = [
            pd.read_csv(
                f,
                sep="\t",
                header=None,
                names=EXPORT_TABLES[table].column_names,
                dtype=str,
                keep_default_na=False,
                na_values=["NULL"],
                quoting=csv.QUOTE_NONE,
                on_bad_lines="skip",
                encoding_errors="replace",
            )
            for f in files
        ]
        return pd.concat(frames, ignore_index=True)

    fullwidth = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
    tag_re = re.compile(r"<[^<>]{0,200}>")
    invisible = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\ufeff]")

    def normalise(text):
        if not isinstance(text, str):
            return text
        text = html.unescape(tag_re.sub("", text)).translate(fullwidth)
        return " ".join(invisible.sub("", text).split())

    t = time.perf_counter()
    news = read("news_pool")
    news = news[news["dtype"].isin(["news", "yichehao_news", "yichehao_video"])]
    news = news[news["recommend_grade"] != "Z"]
    news = news[~news["gc"].isin(["AGC-XIAOYI", "AGC-XIAOSHA"])]
    news["create_time"] = pd.to_datetime(news["create_time"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    news = news[news["itemid"].notna() & (news["itemid"].str.strip() != "")]
    news.to_parquet(out / "raw_news_pool.parquet")
    news["title"] = news["title"].map(normalise)
    news["summary"] = news["summary"].map(normalise)
    news["tag_id"] = news["relate_app_tag_id"].str.split(",")
    tag_lists = (
        news[["itemid", "tag_id"]]
        .explode("tag_id")
        .dropna()
        .groupby("itemid")["tag_id"]
        .agg(lambda s: sorted({x.strip() for x in s if x.strip()}, key=lambda x: (len(x), x)))
    )
    items = news.groupby("itemid").agg({"title": "first", "summary": "first", "dtype": "first", "create_time": "first"})
    items = items.join(tag_lists.rename("tag_ids")).reset_index()
    items.to_parquet(out / "clean_news_items.parquet")
    stages["news"] = time.perf_counter() - t

    for raw, column, parse in (("asr", "result_asr", asr_text), ("ocr", "ocr_info", ocr_text)):
        t = time.perf_counter()
        frame = read(raw)
        frame = frame[frame["video_id"].notna()]
        frame.to_parquet(out / f"raw_{raw}.parquet")

        def safe(value, parse=parse):
            if not isinstance(value, str):  # NULL reads as NaN
                return ""
            try:
                return parse(value)[0]
            except MediaShapeError:
                return None

        frame["text"] = frame[column].map(safe).map(normalise)
        frame = frame.dropna(subset=["text"])
        frame["chars"] = frame["text"].str.len()
        frame = frame.sort_values(["video_id", "chars"], ascending=[True, False]).drop_duplicates("video_id")
        frame[["video_id", "text"]].to_parquet(out / f"clean_{raw}.parquet")
        stages[raw] = time.perf_counter() - t

    t = time.perf_counter()
    tags = read("tag_dim")
    tags = tags[(tags["tag_type_name"] == "内容标签") & (tags["status"] == "1")].copy()
    tags["id_path"] = tags["tag_path"].str.split(",")
    tags["level"] = tags["id_path"].map(len)
    tags["parent_id"] = tags["id_path"].map(lambda p: p[-2] if len(p) > 1 else None)
    tags["name_path"] = tags["tag_path_name"].str.replace(",", "/")
    tags.to_parquet(out / "clean_tags.parquet")
    stages["tags"] = time.perf_counter() - t
    return {"seconds": time.perf_counter() - started, "stages": stages, "news_items": len(items)}


def start_child(mode: str, workdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--workdir", str(workdir), *extra], stdout=subprocess.PIPE
    )


def finish_child(proc: subprocess.Popen, mode: str, status: int, usage) -> tuple[dict, float]:
    """The child's result (plus `cpu`: its user + system seconds, interpreter start included) and its
    own peak RSS in MB. The child prints one short JSON line, so its pipe cannot fill up."""
    output = proc.stdout.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} pipeline failed with exit code {proc.returncode}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["cpu"] = usage.ru_utime + usage.ru_stime
    return result, usage.ru_maxrss / 1024


def in_child(mode: str, workdir: Path, *extra: str) -> tuple[dict, float]:
    """Run one pipeline in a fresh interpreter and wait for it."""
    proc = start_child(mode, workdir, *extra)
    _, status, usage = os.wait4(proc.pid, 0)
    return finish_child(proc, mode, status, usage)


def run_steps(workdir: Path, slots: int, start_method: str) -> tuple[float, dict[str, tuple[dict, float]]]:
    """Every table's step in its own process, at most `slots` at a time: how Dagster's multiprocess
    executor runs the ingest_to_corpus job (max_concurrent defaults to the CPU count), minus Dagster's own
    per-step work (instance, plan, event log). `forkserver` (the code location's executor) forks each
    step from a server that imported dagster once, and the step imports the code location; `spawn`
    starts a fresh interpreter per step. Returns the wall time from the first start to the last exit,
    start-ups included, and each step's result."""
    start, finish = (
        (_start_forked, _finish_forked) if start_method == "forkserver" else (_start_spawned, _finish_spawned)
    )
    if start_method == "forkserver":
        from dagster_autotag.automation.executor import PRELOAD_MODULES

        multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD_MODULES)
    started = time.perf_counter()
    pending, running, done = list(OUR_STEPS), {}, {}
    while pending or running:
        while pending and len(running) < slots:
            table = pending.pop(0)
            handle, proc = start(workdir, table)
            running[handle] = (table, proc)
        for handle, outcome in finish(running):
            done[running.pop(handle)[0]] = outcome
    return time.perf_counter() - started, {table: done[table] for table in OUR_STEPS}


def _start_spawned(workdir: Path, table: str):
    proc = start_child(table, workdir)
    return proc.pid, proc


def _finish_spawned(running: dict) -> list:
    """Waits for a step to end: [(its handle, (result, peak RSS MB))]."""
    pid, status, usage = os.wait4(-1, 0)
    table, proc = running[pid]
    return [(pid, finish_child(proc, table, status, usage))]


def _forked_step(workdir: Path, table: str, conn) -> None:
    import dagster_autotag.definitions  # noqa: F401  a Dagster step loads the code location after the fork

    result = run_our_step(workdir, table)
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this forked process's own, from the fork on
    conn.send({**result, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024})
    conn.close()


def _start_forked(workdir: Path, table: str):
    context = multiprocessing.get_context("forkserver")
    receive, send = context.Pipe(duplex=False)
    proc = context.Process(target=_forked_step, args=(workdir, table, send))
    proc.start()
    send.close()
    return proc.sentinel, (proc, receive)


def _finish_forked(running: dict) -> list:
    """Waits for steps to end: [(handle, (result, peak RSS MB))] for each that did."""
    ended = []
    for sentinel in multiprocessing.connection.wait(list(running)):
        table, (proc, receive) = running[sentinel]
        result = receive.recv() if receive.poll() else None
        proc.join()
        if proc.exitcode or result is None:
            raise SystemExit(f"{table} step failed with exit code {proc.exitcode}")
        ended.append((sentinel, (result, result["rss_mb"])))
    return ended


def run_dagster(workdir: Path) -> dict:
    """The real thing: `dagster asset materialize` of the ingest and clean groups for the partition,
    default executor, in a fresh DAGSTER_HOME whose landing folder is the generated one."""
    home = (workdir / "dagster_run").resolve()
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    (home / "landing").symlink_to((workdir / "landing").resolve())
    env = {**os.environ, "AUTOTAG_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["AUTOTAG_START_DATE"] = "2024-01-01"
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dagster_autotag.definitions"]
    command += ["--select", "group:ingest,group:clean", "--partition", DT]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(f"dagster run failed:\n{out.stderr[-3000:]}")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (record,) = instance.get_run_records()
    return {"cli_s": wall, "run_s": record.end_time - record.start_time}


def report(label: str, wall: float, steps: dict[str, tuple[dict, float]]) -> None:
    in_steps = sum(result["seconds"] for result, _ in steps.values())
    cpu = sum(result["cpu"] for result, _ in steps.values())
    rss = max(rss for _, rss in steps.values())
    print(f"{label}: {wall:6.1f} s wall (steps' own time {in_steps:.1f} s, CPU {cpu:.1f} s), peak RSS {rss:.0f} MB")
    for step, (result, step_rss) in steps.items():
        print(
            f"    {step:10s} {result['seconds']:5.1f} s (raw {result['raw_s']:4.1f}, clean/{CLEAN_OF[step]} "
            f"{result['clean_s']:4.1f})  {step_rss:5.0f} MB  cpu {result['cpu']:5.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=320_000, help="news items (≈3.1 news rows each)")
    parser.add_argument(
        "--video-share",
        type=float,
        default=0.93,
        help="share of items that are videos (0.93 gives the ~300k ASR/OCR rows the target names)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/ingest"))
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep and reuse the generated landing files")
    parser.add_argument(
        "--slots",
        type=int,
        default=os.cpu_count(),
        help="steps run at once (default: CPU count, Dagster's multiprocess default); "
        "above 1, a one-at-a-time pass follows for per-step figures",
    )
    parser.add_argument(
        "--start-method",
        choices=("forkserver", "spawn"),
        default="forkserver",
        help="how step processes start (default: forkserver, the code location's executor)",
    )
    parser.add_argument(
        "--dagster", action="store_true", help="also time a real `dagster asset materialize` run of the partition"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="job runs, each followed by the pandas run it is compared with"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.child == "generate":
            result = generate(args.workdir, args.items, args.video_share, args.seed)
        else:
            result = run_pandas(args.workdir) if args.child == "pandas" else run_our_step(args.workdir, args.child)
        print(json.dumps(result))
        return

    if not (args.reuse and (args.workdir / "landing").is_dir()):
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        # in a child: a child's ru_maxrss starts from its parent's size, and the generator is big
        gen, _ = in_child(
            "generate",
            args.workdir,
            "--items",
            str(args.items),
            "--video-share",
            str(args.video_share),
            "--seed",
            str(args.seed),
        )
        print(
            f"generated {gen['rows']} in {gen['generate_s']} s, written in {gen['write_s']} s ({gen['landing_mb']} MB)"
        )
    # This machine's speed drifts by a third within minutes (other tenants), so each pandas run
    # follows the job run it is compared with, and --repeat gives several such pairs.
    ratios = []
    for _ in range(args.repeat):
        job_wall, job_steps = run_steps(args.workdir, args.slots, args.start_method)
        report(f"ours, {args.slots} steps at a time ({args.start_method})", job_wall, job_steps)
        if not args.skip_pandas:
            pdr, pd_rss = in_child("pandas", args.workdir)
            ratios.append(pdr["seconds"] / job_wall)
            print(
                f"pandas : {pdr['seconds']:6.1f} s, peak RSS {pd_rss:6.0f} MB  "
                + ", ".join(f"{k} {v:.1f}s" for k, v in pdr["stages"].items())
                + f"  -> speed-up {ratios[-1]:.1f}x (job wall)"
            )
    if len(ratios) > 1:
        print(f"speed-up over {len(ratios)} pairs: " + ", ".join(f"{r:.1f}x" for r in ratios))
    if args.slots > 1:
        seq_wall, seq_steps = run_steps(args.workdir, 1, args.start_method)
        report(f"ours, one step at a time ({args.start_method})", seq_wall, seq_steps)
    if args.dagster:
        run = run_dagster(args.workdir)
        print(f"dagster asset materialize: run {run['run_s']:.1f} s (start to success), CLI {run['cli_s']:.1f} s")
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
