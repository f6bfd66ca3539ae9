"""The location's executor forks step processes from a forkserver; a day's ingest runs through it."""

import os
import subprocess
import sys

import dagster as dg
import polars as pl

from dagster_autotag.automation.executor import _forkserver_unless_chosen, forkserver_executor
from dagster_autotag.definitions import defs
from dagster_autotag.jobs import INGEST_TO_CORPUS_JOB
from dagster_autotag_tests.landing_data import write_partition

DT = "2024-05-01"


def test_multiprocess_runs_use_a_forkserver_unless_the_run_config_chooses():
    assert defs.resolve_job_def(INGEST_TO_CORPUS_JOB).executor_def is forkserver_executor
    assert _forkserver_unless_chosen({"multiprocess": {"max_concurrent": 2}}) == {
        "multiprocess": {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["dagster"]}}}
    }
    spawn = {"multiprocess": {"start_method": {"spawn": {}}}}
    assert _forkserver_unless_chosen(spawn) == spawn
    assert _forkserver_unless_chosen({"in_process": {}}) == {"in_process": {}}


def test_a_day_of_ingest_through_the_cli_with_the_default_executor(tmp_path):
    # Real step processes forked from the forkserver: had it imported a library that starts a thread
    # pool (polars), they would hang, so the run has a timeout.
    write_partition(tmp_path / "landing", DT, n_news=12)
    (tmp_path / "dagster").mkdir()
    env = {
        **os.environ,
        "AUTOTAG_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "AUTOTAG_START_DATE": "2024-01-01",
    }
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "dagster_autotag.definitions"]
        + ["--select", "group:ingest,group:clean", "--partition", DT],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        (run,) = instance.get_run_records()
        successes = instance.all_logs(run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        steps = {e.step_key for e in successes}
        config = run.dagster_run.run_config.get("execution", {})
    assert steps == {"ingest_news_pool", "ingest_asr", "ingest_ocr", "ingest_tag_dim"}
    assert "in_process" not in config.get("config", {})  # the default executor ran it: multiprocess
    items = pl.read_parquet(tmp_path / "lake/clean/news_items" / f"dt={DT}" / "part-0.parquet")
    assert items.height == 12
