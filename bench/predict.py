"""Prediction benchmark: predictions/daily_labels over one 100k-item corpus partition with the serving
model (the measured choice of models/p0_newcar/serving; the setup trains a TextCNN), end to end (load
model, read, predict, drift checks, write); BERT on a subset, extrapolated.

    .venv/bin/python bench/predict.py                      # setup (a few minutes) + the timed run
    .venv/bin/python bench/predict.py --reuse              # keep the work dir; a rerun skips the setup
    .venv/bin/python bench/predict.py --reuse --bert-dir /tmp/e5 --bert-items 1000   # BERT as well
    # the encoder: bash ../shared/tools/make_pretrained_encoder.sh /tmp/e5 .venv/bin/python (~10 s);
    # $AUTOTAG_BERT_MODEL_DIR works as --bert-dir

Setup (not timed against the target; its figures are printed), in $WORKDIR/textcnn as AUTOTAG_HOME
and DAGSTER_HOME=$WORKDIR/textcnn/dagster, with the jobs run in-process as `autotag demo` runs them:
sample exports for --train-days days × --train-items items → ingest_to_corpus → build_datasets →
models/p0_newcar/textcnn (TEXTCNN below: the TrainRunConfig architecture defaults, fewer epochs, which
changes nothing at inference) registered and promoted to champion in MLflow (sqlite), then
models/p0_newcar/serving records the measured choice among the scheme's champions. Then one more day
with --items items (the day after the training days) → ingest_to_corpus: the corpus/items partition under test.

Timed, each in a fresh interpreter (as a Dagster step process starts), peak RSS = the child's own
ru_maxrss (wait4):
1. `asset`: job predict_and_publish with only predictions/daily_labels selected, run config
   schemes [p0_newcar] (no kind pinned: the serving record decides), execute_in_process against the instance.
   Wall = spawn to exit: interpreter start, `import dagster`, loading the code location, the run.
   The run's own phases come from the timestamps of its event log (step start, the asset's
   "predicting with" and "predicted n / N" lines, the materialisation, step end).
   --repeat N runs it N times.
2. `steps`: the asset's work as the functions it calls (read_partition; load_champion as its two
   halves, the serving record's model (else the kind's champion) and load_scheme_model, after timing
   the imports they trigger; predict_items,
   scheme_label_drift, corpus_input_drift, the metadata tables, the Parquet write to a scratch lake),
   each timed; predict's tokenising, gate model and sub-label model are timed by wrappers set on the
   loaded model objects (bench side only; the rest of predict is deciding and building the table).
   The drift reference (the champion predicting dev+test) is also extrapolated to the asset's
   default cap of 20,000 rows, which a real 90-day window reaches.
3. `bert` (with --bert-dir or $AUTOTAG_BERT_MODEL_DIR): setup in $WORKDIR/bert: --bert-train-items
   items of one day, datasets, models/p0_newcar/bert (1 epoch, --bert-max-len) as champion. Timed
   like `steps` on --bert-items items sampled from the same 100k partition; predict is extrapolated
   to the whole partition (linear in items), the other steps are measured.

Torch threads: as the project leaves them (TextCNN inference never sets them: torch's default, the
core count; loading a BERT sets its config's num_threads, 2); --torch-threads overrides for TextCNN.
Load averages (os.getloadavg) are printed at the start and end: the machine is shared.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STARTED = time.time()  # in a child: the interpreter is up, nothing heavy imported yet

SCHEME = "p0_newcar"
TRAIN_START = "2024-05-01"
TARGET_S = 60.0
# models/p0_newcar/textcnn run config: TextCNNRunConfig's architecture (char, max_len 128, embedding
# 128, kernels 2,3,4 × 128 filters), fewer epochs than its 10 so the setup stays short.
TEXTCNN = {"max_epochs": 3, "patience": 1}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def load_text() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def big_day(args) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(TRAIN_START) + timedelta(days=args.train_days)).isoformat()


# ---------------------------------------------------------------- children (each in its own interpreter)


class Timer:
    """Named wall-clock sections, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class Section:
            def __enter__(self):
                self.started = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.started

        return Section()


def train_model(kind: str, config: dict, serving: bool = True) -> dict:
    """models/<SCHEME>/<kind> and then models/<SCHEME>/serving (the measured choice among the
    scheme's champions) through the train_models job, as demo.run_train_models does. serving=False:
    the model only (a BERT on CPU is over the default inference budget, so none could serve)."""
    import dagster as dg

    from dagster_autotag.definitions import defs
    from dagster_autotag.demo import QUIET_CONSOLE, quiet_mlflow
    from dagster_autotag.jobs import TRAIN_MODELS_JOB

    quiet_mlflow()
    job = defs.resolve_job_def(TRAIN_MODELS_JOB)
    run_config = {**QUIET_CONSOLE, "ops": {f"models__{SCHEME}__{kind}": {"config": config}}}
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            asset_selection=[dg.AssetKey(["models", SCHEME, kind])]
            + ([dg.AssetKey(["models", SCHEME, "serving"])] if serving else []),
        )
    if not result.success:
        raise SystemExit(f"training models/{SCHEME}/{kind} (or choosing the serving model) failed")
    events = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    meta = events[kind]
    keep = ("registered_model", "promotion", "test_micro_f1", "test_macro_f1", "shipped_labels")
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "serving": str(events.get("serving", {}).get("serving_model")),
    } | {k: getattr(meta[k], "value", str(meta[k])) for k in keep if k in meta}


def build_home(days: int, items: int, seed: int) -> dict:
    """Sample exports → ingest_to_corpus per day → build_datasets, in the current AUTOTAG_HOME."""
    from dagster_autotag.demo import ensure_dagster_home, run_build_datasets, run_ingest_to_corpus
    from dagster_autotag.layers import DATASETS_LAYER
    from dagster_autotag.sample.generator import generate_landing
    from dagster_autotag.settings import lake_dir, landing_dir

    ensure_dagster_home()
    started = time.perf_counter()
    dts = generate_landing(landing_dir(), days, TRAIN_START, items, seed)
    generated = time.perf_counter() - started
    runs = run_ingest_to_corpus(dts)
    if not all(r.success for r in runs):
        raise SystemExit(f"ingest_to_corpus failed: {[r.dt for r in runs if not r.success]}")
    datasets = run_build_datasets(window_days=days)
    if not datasets.success:
        raise SystemExit("build_datasets failed")
    manifest = json.loads((lake_dir() / DATASETS_LAYER / SCHEME / "manifest.json").read_text(encoding="utf-8"))
    return {
        "generate_s": round(generated, 1),
        "daily_s": round(sum(r.seconds for r in runs), 1),
        "datasets_s": round(datasets.seconds, 1),
        "dataset_rows": manifest["rows"],
    }


def child_setup_textcnn(args) -> dict:
    home = build_home(args.train_days, args.train_items, args.seed)
    return home | {"model": train_model("textcnn", TEXTCNN)}


def child_setup_bert(args) -> dict:
    home = build_home(1, args.bert_train_items, args.seed)
    # model_dir given: an empty one does not fall back to $AUTOTAG_BERT_MODEL_DIR (train/assets.py)
    config = {
        "model_dir": str(args.bert_dir.resolve()),
        "max_epochs": 1,
        "patience": 1,
        "max_len": args.bert_max_len,
        "batch_size": 16,
    }
    return home | {"model": train_model("bert", config, serving=False), "config": config}


def child_big_day(args) -> dict:
    import polars as pl

    from dagster_autotag.demo import ensure_dagster_home, run_ingest_to_corpus
    from dagster_autotag.lake import read_partition
    from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER
    from dagster_autotag.sample.generator import generate_landing
    from dagster_autotag.settings import lake_dir, landing_dir

    ensure_dagster_home()
    dt = big_day(args)
    started = time.perf_counter()
    generate_landing(landing_dir(), 1, dt, args.items, args.seed)
    generated = time.perf_counter() - started
    (run,) = run_ingest_to_corpus([dt])
    if not run.success:
        raise SystemExit(f"ingest_to_corpus {dt} failed")
    rows = read_partition(lake_dir(), CORPUS_LAYER, CORPUS_ITEMS, dt).select(pl.len()).collect().item()
    return {"dt": dt, "generate_s": round(generated, 1), "daily_s": round(run.seconds, 1), "corpus_rows": rows}


def set_torch_threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def child_asset(args) -> dict:
    """predictions/daily_labels for the big day, as one run; phase times from the run's event log."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    stamps = {"main": STARTED}
    import dagster as dg

    stamps["dagster"] = time.time()
    from dagster_autotag.definitions import defs
    from dagster_autotag.demo import QUIET_CONSOLE, ensure_dagster_home
    from dagster_autotag.jobs import PREDICT_AND_PUBLISH_JOB
    from dagster_autotag.predict.assets import LABELS_KEY

    stamps["code_location"] = time.time()
    set_torch_threads(args.torch_threads)
    ensure_dagster_home()
    ops = {"predictions__daily_labels": {"config": {"schemes": [SCHEME]}}}  # the measured serving model
    job = defs.resolve_job_def(PREDICT_AND_PUBLISH_JOB)
    with dg.DagsterInstance.get() as instance:
        stamps["run_start"] = time.time()
        result = job.execute_in_process(
            partition_key=big_day(args),
            instance=instance,
            raise_on_error=False,
            run_config={**QUIET_CONSOLE, "ops": ops},
            asset_selection=[LABELS_KEY],
        )
        stamps["run_end"] = time.time()
        records = instance.all_logs(result.run_id)
    if not result.success:
        raise SystemExit("predictions/daily_labels failed; see the log")
    import torch

    meta = result.get_asset_materialization_events()[0].materialization.metadata
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.metadata["severity"].value
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    return {
        "stamps": stamps | run_phases(records),
        "rows": meta["dagster/row_count"].value,
        "items": meta["items"].value,
        "champion": meta[f"champion/{SCHEME}"].value,
        "checks": checks,
        "torch_threads": torch.get_num_threads(),
        "done": time.time(),
    }


def run_phases(records) -> dict:
    """Timestamps of the run's landmarks: step start, champion loaded ("predicting with"), first and
    last "predicted n / N" line, the materialisation, step success."""
    out = {}
    for record in records:
        event = record.dagster_event
        kind = event.event_type_value if event else None
        message = record.user_message or ""
        if kind == "STEP_START":
            out.setdefault("step_start", record.timestamp)
        elif kind is None and ": predicting with " in message:
            out["champion_loaded"] = record.timestamp
        elif kind is None and ": predicted " in message:
            out.setdefault("first_batch", record.timestamp)
            out["predicted"] = record.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            out["materialized"] = record.timestamp
        elif kind == "STEP_SUCCESS":
            out["step_success"] = record.timestamp
    return out


def timed_model(model, timer: Timer) -> None:
    """Wrap the gate and sub-label models' predict_proba (and a TextCNN vocabulary's encode_batch) of a
    SchemeModel with timers: instance attributes on the loaded objects, the package is untouched."""

    def wrap(obj, attr: str, name: str) -> None:
        inner = getattr(obj, attr)

        def timed(*a, **kw):
            with timer(name):
                return inner(*a, **kw)

        setattr(obj, attr, timed)

    for part, sub in (("gate", model.gate_model), ("labels", model.label_model)):
        if sub is None:
            continue
        wrap(sub, "predict_proba", f"model {part}")
        if hasattr(sub, "vocab"):
            wrap(sub.vocab, "encode_batch", f"tokenise {part}")


def run_steps(timer: Timer, lake, home_lake, dt: str, kind: str, n_items: int | None, torch_threads: int) -> dict:
    """The asset's work as the functions it calls, each timed (see predict/assets.py daily_labels)."""
    from datetime import UTC, datetime

    import polars as pl

    with timer("import"):
        from dagster_autotag.lake import PART_FILE, read_partition, staged_partition, write_parquet
        from dagster_autotag.layers import CORPUS_ITEMS, CORPUS_LAYER, DAILY_LABELS, DATASETS_LAYER, PREDICTIONS_LAYER
        from dagster_autotag.metadata import counts_table, preview
        from dagster_autotag.predict.assets import (
            CORPUS_COLUMNS,
            RUNNER_UP_LABELS,
            TABLE_COLUMNS,
            PredictRunConfig,
            label_drift_check,
            scheme_label_drift,
        )
        from dagster_autotag.predict.batch import label_counts, predict_items, with_model_columns
        from dagster_autotag.predict.champion import Champion, find_champion, read_serving_record
        from dagster_autotag.predict.inputs import corpus_input_drift
        from dagster_autotag.predict.reference import reference_rows
        from dagster_autotag.train.registry import default_tracking_uri, load_scheme_model
    set_torch_threads(torch_threads)
    config = PredictRunConfig(schemes=[SCHEME], model_kinds={SCHEME: kind})
    with timer("read corpus"):
        corpus = read_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, dt).select(CORPUS_COLUMNS).collect()
    corpus_rows = corpus.height
    if n_items:
        corpus = corpus.sample(n_items, seed=0)
    # load_champion's work, in parts: the imports it triggers, the registry lookup, the model load
    with timer("champion: import torch"):
        import torch
    with timer("champion: import mlflow"):
        import mlflow
        import mlflow.pyfunc
    with timer("champion: import train.pyfunc"):  # what unpickling the pyfunc imports: sklearn, matplotlib
        import dagster_autotag.train.pyfunc  # noqa: F401
    with timer("champion: registry lookup"):
        mlflow.set_tracking_uri(default_tracking_uri())
        client = mlflow.MlflowClient(default_tracking_uri())
        record = read_serving_record(client, SCHEME)  # the measured choice, as the asset uses it
        found = (
            (record.kind, record.name, record.version, record.run_id)
            if record is not None
            else find_champion(client, SCHEME, [kind])
        )
    with timer("champion: load model"):
        champion = Champion(SCHEME, *found, load_scheme_model(f"models:/{found[1]}/{found[2]}"))
    predict_timer = Timer()
    timed_model(champion.model, predict_timer)
    with timer("predict"):
        rows = predict_items(corpus, champion.model, config.batch_size)
    predict_parts = dict(predict_timer.seconds)
    dataset_dir = home_lake / DATASETS_LAYER / SCHEME
    reference_n = reference_rows(dataset_dir, config.reference_splits, config.reference_max_rows).height
    cache = home_lake.parent / "scratch" / "reference-cache"
    shutil.rmtree(cache, ignore_errors=True)  # the first day of a champion: the reference is computed
    with timer("label drift (reference)"):
        drift = scheme_label_drift(champion, rows, dataset_dir, cache, config)
    with timer("label drift (cached reference)"):
        scheme_label_drift(champion, rows, dataset_dir, cache, config)
    with timer("assemble"):
        rows = with_model_columns(rows, champion.name, champion.version, champion.run_id, datetime.now(UTC))
        no_runner_up = pl.lit(None, pl.List(pl.String)).alias(RUNNER_UP_LABELS)  # as the asset writes it
        table = rows.with_columns(no_runner_up, pl.lit(SCHEME).alias("scheme")).select(TABLE_COLUMNS)
    with timer("input drift"):
        inputs = corpus_input_drift(lake, dt, corpus, config.input_reference_days, config.thresholds())
    with timer("metadata"):
        counts_table(label_counts(table, corpus), key="scheme: label")
        label_drift_check({SCHEME: drift}, config.thresholds())
        preview(table, ["scheme", "itemid", "dtype", "labels", "gate_score", "labels_all"])
    with timer("write"):
        with staged_partition(home_lake.parent / "scratch", PREDICTIONS_LAYER, DAILY_LABELS, dt) as staging:
            write_parquet(table.to_arrow(), staging / PART_FILE)
    return {
        "seconds": timer.seconds,
        "predict_parts": predict_parts,
        "items": corpus.height,
        "corpus_rows": corpus_rows,
        "reference_rows": reference_n,
        "reference_cap": config.reference_max_rows,
        "label_drift": drift if isinstance(drift, str) else drift.severity,
        "input_drift": inputs.severity if inputs else "no reference days",
        "torch_threads": torch.get_num_threads(),
        "champion": champion.describe(),
    }


def child_steps(args) -> dict:
    from dagster_autotag.settings import lake_dir

    lake = lake_dir()
    return run_steps(Timer(), lake, lake, big_day(args), "textcnn", None, args.torch_threads)


def child_bert(args) -> dict:
    from dagster_autotag.settings import lake_dir

    lake = args.workdir / "textcnn" / "lake"  # the big partition lives in the TextCNN home
    return run_steps(Timer(), lake, lake_dir(), big_day(args), "bert", args.bert_items, 0)


CHILDREN = {
    "setup-textcnn": child_setup_textcnn,
    "big-day": child_big_day,
    "setup-bert": child_setup_bert,
    "asset": child_asset,
    "steps": child_steps,
    "bert": child_bert,
}


# ---------------------------------------------------------------- parent


def child_env(args, home: str) -> dict:
    env = dict(os.environ)
    env["AUTOTAG_HOME"] = str(args.workdir / home)
    env["DAGSTER_HOME"] = str(args.workdir / home / "dagster")
    env.pop("AUTOTAG_MLFLOW_TRACKING_URI", None)
    env.pop("AUTOTAG_BERT_MODEL_DIR", None)
    if home == "bert":
        env["AUTOTAG_BERT_MODEL_DIR"] = str(args.bert_dir)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return env


def in_child(args, mode: str, home: str) -> tuple[dict, dict]:
    """Run one child in a fresh interpreter; its output goes to $WORKDIR/logs/<mode>.log, its result
    to $WORKDIR/results/<mode>.json. Returns (result, {spawn, exit, wall_s, rss_mb, cpu_s})."""
    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)
    (args.workdir / "results").mkdir(parents=True, exist_ok=True)
    out = args.workdir / "results" / f"{mode}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", mode, *child_args(args)]
    load1 = os.getloadavg()[0]
    with open(args.workdir / "logs" / f"{mode}.log", "w") as logfile:
        spawn = time.time()
        proc = subprocess.Popen(command, env=child_env(args, home), stdout=logfile, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode or not out.exists():
        tail = (args.workdir / "logs" / f"{mode}.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"{mode} failed (exit code {proc.returncode}); log tail:\n{tail}")
    run = {
        "load1": load1,
        "spawn": spawn,
        "exit": ended,
        "wall_s": ended - spawn,
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }
    return json.loads(out.read_text()), run


def child_args(args) -> list[str]:
    return [
        f"--workdir={args.workdir}",
        f"--items={args.items}",
        f"--train-days={args.train_days}",
        f"--train-items={args.train_items}",
        f"--seed={args.seed}",
        f"--torch-threads={args.torch_threads}",
        f"--bert-items={args.bert_items}",
        f"--bert-train-items={args.bert_train_items}",
        f"--bert-max-len={args.bert_max_len}",
    ]


def cached(args, state: dict, name: str, params: dict, mode: str, home: str) -> dict:
    """A setup step's result: reused when --reuse and it ran with the same parameters, else run now."""
    if args.reuse and state.get(name, {}).get("params") == params:
        log(f"{name}: reusing the earlier setup ({params})")
        return state[name]["result"]
    log(f"{name}: setting up ({params}) ...")
    if name != "big_day":  # a fresh home; the big day goes into the TextCNN home
        shutil.rmtree(args.workdir / home, ignore_errors=True)
    result, run = in_child(args, mode, home)
    state[name] = {"params": params, "result": result | {"wall_s": round(run["wall_s"], 1)}}
    (args.workdir / "state.json").write_text(json.dumps(state, indent=1))
    log(f"{name}: done in {run['wall_s']:.0f} s: {json.dumps(result, ensure_ascii=False)}")
    return state[name]["result"]


def print_steps(result: dict, scale: float = 1.0) -> None:
    champion = sum(v for k, v in result["seconds"].items() if k.startswith("champion:"))
    for name, seconds in result["seconds"].items():
        extra = ""
        if scale != 1 and name == "predict":
            extra = f"  → {seconds * scale:6.1f} s at {result['corpus_rows']:,} items (extrapolated)"
        print(f"    {name:30s} {seconds:7.2f} s{extra}")
        if name == "champion: load model":
            print(f"    {'champion: all of the above':30s} {champion:7.2f} s")
        if name == "predict":
            for part, part_s in result["predict_parts"].items():
                print(f"      {part:28s} {part_s:7.2f} s")


def reference_at_cap(result: dict) -> str:
    per_item = result["seconds"]["predict"] / result["items"]
    return (
        f"    drift reference at the default cap of {result['reference_cap']:,} dev+test rows (a 90-day window): "
        f"≈ {per_item * result['reference_cap']:,.0f} s per run (extrapolated from predict's items/s)"
    )


def asset_phases(asset: dict, run: dict) -> list[tuple[str, float]]:
    s = asset["stamps"]
    marks = [
        ("interpreter start", run["spawn"], s["main"]),
        ("import dagster", s["main"], s["dagster"]),
        ("load code location", s["dagster"], s["code_location"]),
        ("instance + run setup", s["code_location"], s["step_start"]),
        ("read + load champion", s["step_start"], s["champion_loaded"]),
        ("predict: first batch", s["champion_loaded"], s["first_batch"]),
        ("predict: other batches", s["first_batch"], s["predicted"]),
        ("drift, write, metadata", s["predicted"], s["materialized"]),
        ("checks, step end", s["materialized"], s["step_success"]),
        ("run end", s["step_success"], s["run_end"]),
        ("bench: run's results", s["run_end"], asset["done"]),
        ("interpreter teardown, exit", asset["done"], run["exit"]),
    ]
    return [(name, end - start) for name, start, end in marks]


def report_asset(runs: list[tuple[dict, dict]]) -> list[float]:
    asset = runs[0][0]
    items = asset["items"]
    print(
        f"\nTextCNN, predictions/daily_labels for {items:,} items ({asset['rows']:,} rows written), "
        f"each run in a fresh process; champion {asset['champion']}, torch threads {asset['torch_threads']}, "
        f"checks {asset['checks']}"
    )
    walls = [run["wall_s"] for _, run in runs]
    for i, (_, run) in enumerate(runs, 1):
        verdict = "met" if run["wall_s"] <= TARGET_S else "MISSED"
        print(
            f"  run {i}: wall {run['wall_s']:5.1f} s (≤ {TARGET_S:.0f} s: {verdict}), "
            f"{items / run['wall_s']:,.0f} items/s end to end, CPU {run['cpu_s']:.1f} s, "
            f"peak RSS {run['rss_mb']:,.0f} MB, load average {run['load1']:.1f} when it started"
        )
    print("  phases, from the run's event log:" + "".join(f"   run {i}" for i in range(1, len(runs) + 1)))
    table = [asset_phases(result, run) for result, run in runs]
    for k, (name, _) in enumerate(table[0]):
        print(f"    {name:32s}" + "".join(f" {phases[k][1]:7.2f}" for phases in table))
    print(
        f"    {'(the run itself)':32s}"
        + "".join(f" {r['stamps']['run_end'] - r['stamps']['run_start']:7.2f}" for r, _ in runs)
    )
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="items in the partition under test")
    parser.add_argument("--train-days", type=int, default=3, help="sample days the TextCNN trains on")
    parser.add_argument("--train-items", type=int, default=3000, help="items per training day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_predict"))
    parser.add_argument("--reuse", action="store_true", help="keep the work dir and reuse its setup")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of the asset (each a fresh process)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch threads for TextCNN inference (0: as the project leaves them)",
    )
    parser.add_argument(
        "--bert-dir",
        type=Path,
        default=Path(os.environ["AUTOTAG_BERT_MODEL_DIR"]) if os.environ.get("AUTOTAG_BERT_MODEL_DIR") else None,
        help="local transformers encoder to fine-tune (default $AUTOTAG_BERT_MODEL_DIR; none: no BERT part)",
    )
    parser.add_argument("--bert-items", type=int, default=1000, help="items BERT predicts (then extrapolated)")
    parser.add_argument("--bert-train-items", type=int, default=500, help="items of BERT's one training day")
    parser.add_argument("--bert-max-len", type=int, default=64, help="BERT max_len (training and inference)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()

    if args.child:
        result = CHILDREN[args.child](args)
        (args.workdir / "results" / f"{args.child}.json").write_text(json.dumps(result, ensure_ascii=False))
        return

    load_start = load_text()
    log(f"load average at start (1/5/15 min): {load_start}; work dir {args.workdir}")
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    state_file = args.workdir / "state.json"
    state = json.loads(state_file.read_text()) if args.reuse and state_file.exists() else {}

    textcnn_params = {"days": args.train_days, "items": args.train_items, "seed": args.seed, "config": TEXTCNN}
    setup = cached(args, state, "textcnn", textcnn_params, "setup-textcnn", "textcnn")
    if state.get("big_day", {}).get("params", {}).get("setup") != textcnn_params:
        state.pop("big_day", None)  # a rebuilt home lost it
    big_params = {"items": args.items, "dt": big_day(args), "setup": textcnn_params}
    big = cached(args, state, "big_day", big_params, "big-day", "textcnn")

    runs = []
    for i in range(args.repeat):
        log(f"timed run {i + 1}/{args.repeat}: predictions/daily_labels in a fresh process ...")
        runs.append(in_child(args, "asset", "textcnn"))
        log(f"  {runs[-1][1]['wall_s']:.1f} s")
    log("per-step run: the asset's functions in a fresh process ...")
    steps, steps_run = in_child(args, "steps", "textcnn")
    bert = None
    if args.bert_dir:
        bert_params = {
            "dir": str(args.bert_dir.resolve()),
            "items": args.bert_train_items,
            "max_len": args.bert_max_len,
            "seed": args.seed,
        }
        bert_setup = cached(args, state, "bert", bert_params, "setup-bert", "bert")
        log(f"BERT: the asset's functions on {args.bert_items:,} items in a fresh process ...")
        bert, bert_run = in_child(args, "bert", "bert")
    load_end = load_text()

    print(
        f"\nSetup: {args.train_days} days × {args.train_items:,} items → datasets/{SCHEME} rows "
        f"{setup['dataset_rows']}; TextCNN {TEXTCNN} over TrainRunConfig defaults: {setup['model']}"
    )
    print(
        f"  setup {setup['wall_s']:.0f} s (generate {setup['generate_s']} s, ingest_to_corpus {setup['daily_s']} s, "
        f"datasets {setup['datasets_s']} s, training {setup['model']['seconds']} s)"
    )
    print(
        f"Partition {big['dt']}: {big['corpus_rows']:,} corpus/items rows from {args.items:,} generated items; "
        f"generate {big['generate_s']} s, ingest_to_corpus {big['daily_s']} s (not in the figures below)"
    )
    walls = report_asset(runs)
    total = sum(steps["seconds"].values())
    print(
        f"\n  the same work as functions, fresh process: {total:.1f} s in steps "
        f"(+ {steps_run['wall_s'] - total:.1f} s interpreter start and exit), peak RSS {steps_run['rss_mb']:,.0f} MB, "
        f"predict {steps['items'] / steps['seconds']['predict']:,.0f} items/s "
        f"(drift reference: {steps['reference_rows']:,} dev+test rows; label drift {steps['label_drift']}, "
        f"input drift {steps['input_drift']})"
    )
    print_steps(steps)
    print(reference_at_cap(steps))
    if bert:
        scale = bert["corpus_rows"] / bert["items"]
        predict_s = bert["seconds"]["predict"]
        rest = sum(s for name, s in bert["seconds"].items() if name != "predict")
        print(
            f"\nBERT ({args.bert_dir}, max_len {args.bert_max_len}; trained on {bert_setup['dataset_rows']} rows, "
            f"1 epoch: {bert_setup['model']}):"
        )
        print(
            f"  {bert['items']:,} of the {bert['corpus_rows']:,} items: predict {predict_s:.1f} s = "
            f"{bert['items'] / predict_s:.1f} items/s ({len(bert['predict_parts']) * bert['items'] / predict_s:.1f} "
            f"docs/s over the gate and sub-label encoders), torch threads {bert['torch_threads']}, peak RSS {bert_run['rss_mb']:,.0f} MB"
        )
        print_steps(bert, scale)
        print(reference_at_cap(bert))
        print(
            f"  EXTRAPOLATED to {bert['corpus_rows']:,} items: predict {predict_s * scale / 60:.1f} min; end to end "
            f"≈ {(predict_s * scale + rest) / 60:.1f} min (other steps as measured; drift reference on "
            f"{bert['reference_rows']:,} rows, {bert['seconds']['label drift (reference)']:.1f} s)"
        )
    print(f"\nload average (1/5/15 min) at start {load_start}, at end {load_end}")
    print(
        f"TextCNN end to end: {', '.join(f'{w:.1f}' for w in walls)} s (best {min(walls):.1f} s) for "
        f"{runs[0][0]['items']:,} items; target ≤ {TARGET_S:.0f} s on 2 cores"
    )
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
